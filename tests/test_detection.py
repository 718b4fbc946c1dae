from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

from conftest import strict_loads
from nas.cli import main
from nas.config import TaskConfig, TrainingConfig
from nas.datasets import detection_collate, make_detection_datasets
from nas.datasets.synthetic import PRESENCE, write_detection_dataset
from nas.detection import DetectionTask
from nas.detection_coding import (
    IDEAL_CELLS,
    assign_scale,
    decode,
    detection_loss,
    encode,
    gaussian_radius,
)
from nas.detection_metrics import average_precision, mean_average_precision
from nas.final import WEIGHTS, load_weights, model_from_weights
from nas.tasks import make_task, train
from searchspaces.genome import Architecture
from searchspaces.spaces import get_space


def _gt(*boxes: tuple[float, float, float, float], labels: list[int] | None = None) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels or [0] * len(boxes), dtype=torch.int64)}


def _det(boxes: list, scores: list[float], labels: list[int] | None = None) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores), "labels": torch.tensor(labels or [0] * len(scores))}


pytestmark = pytest.mark.usefixtures("one_thread")

A, B, C = (0, 0, 10, 10), (20, 20, 30, 30), (40, 0, 60, 20)


# --------------------------------------------------------------------------- mAP@0.5


def test_perfect_predictions_score_one() -> None:
    targets = [_gt(A, B, labels=[0, 1]), _gt(C, labels=[1])]
    detections = [_det([A, B], [0.9, 0.8], [0, 1]), _det([C], [0.3], [1])]
    result = mean_average_precision(detections, targets, num_classes=2)
    assert result == {"map": 1.0, "ap_0": 1.0, "ap_1": 1.0}


def test_false_positive_ranked_first() -> None:
    # ranks: FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1; the envelope is 2/3
    targets = [_gt(A, B)]
    detections = [_det([C, A, B], [0.9, 0.8, 0.7])]
    assert mean_average_precision(detections, targets, 1)["map"] == pytest.approx(2 / 3)
    # ranked last it costs nothing: recall is complete before it
    detections = [_det([C, A, B], [0.1, 0.8, 0.7])]
    assert mean_average_precision(detections, targets, 1)["map"] == pytest.approx(1.0)


def test_missed_object_and_duplicate() -> None:
    targets = [_gt(A), _gt(B)]
    assert mean_average_precision([_det([A], [0.9]), _det([], [])], targets, 1)["map"] == 0.5
    # a second box on A is a false positive even though its IoU is perfect
    detections = [_det([A, A], [0.9, 0.8]), _det([B], [0.7])]
    # TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 0.5 * 1 + 0.5 * 2/3
    assert mean_average_precision(detections, targets, 1)["map"] == pytest.approx(5 / 6)


def test_iou_threshold_and_wrong_class() -> None:
    shifted = (0, 0, 10, 16)  # IoU with A = 100 / 160 = 0.625
    assert mean_average_precision([_det([shifted], [0.9])], [_gt(A)], 1)["map"] == 1.0
    assert mean_average_precision([_det([shifted], [0.9])], [_gt(A)], 1,
                                  iou_threshold=0.7)["map"] == 0.0
    assert mean_average_precision([_det([A], [0.9], [1])], [_gt(A)], 2)["map"] == 0.0


def test_class_without_ground_truth_is_ignored() -> None:
    targets = [_gt(A, labels=[0])]
    # class 1 has no ground truth: its (false) detection neither adds a class nor costs AP
    detections = [_det([A, B], [0.5, 0.9], [0, 1])]
    assert mean_average_precision(detections, targets, 3) == {"map": 1.0, "ap_0": 1.0}
    # class 2 has ground truth but no detection: AP 0, in the mean
    targets = [_gt(A, B, labels=[0, 2])]
    assert mean_average_precision(detections, targets, 3) == {"map": 0.5, "ap_0": 1.0,
                                                               "ap_2": 0.0}
    assert mean_average_precision([_det([A], [0.9])], [_gt()], 1) == {"map": 0.0}


def test_ranking_is_across_images() -> None:
    # image 1's FP outranks image 0's TP: FP, TP -> precision 1/2 at recall 1
    detections = [_det([A], [0.5]), _det([B], [0.9])]
    assert mean_average_precision(detections, [_gt(A), _gt()], 1)["map"] == 0.5
    assert average_precision(torch.tensor([True, False, True, False]), 4) == pytest.approx(
        0.25 + 0.25 * 2 / 3)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 detection lists for 1 images"):
        mean_average_precision([_det([], []), _det([], [])], [_gt()], 1)
    with pytest.raises(ValueError, match=r"detections\[0\]"):
        mean_average_precision([{**_det([A], [0.9]), "scores": torch.ones(2)}], [_gt(A)], 1)


# --------------------------------------------------------------------------- targets and decoding


def _maps(n: int, num_classes: int, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.zeros(n, num_classes + 4, s, s) for s in sizes]


def test_gaussian_radius_and_scale_assignment() -> None:
    # CenterNet's code: for a square of side a the third quadratic binds, and its root is
    # r = (-2.8 a + sqrt(11.2) a) / 2 ~ 0.27 a (the formula's 1 / 2a written as 1 / 2)
    assert gaussian_radius(10, 10) == pytest.approx((-28 + math.sqrt(28 ** 2 + 4 * 2.8 * 30)) / 2)
    assert gaussian_radius(20, 20) == pytest.approx(2 * gaussian_radius(10, 10))
    assert gaussian_radius(4, 40) < gaussian_radius(40, 40)
    # strides 8 and 4: boxes larger than about IDEAL_CELLS * 8 / sqrt(2) px go coarse
    edge = IDEAL_CELLS * 8 / math.sqrt(2)
    scales = assign_scale(torch.tensor([4.0, edge - 1, edge + 1, 30.0]), [8.0, 4.0])
    assert scales.tolist() == [1, 1, 0, 0]
    assert assign_scale(torch.tensor([1.0, 100.0]), [8.0]).tolist() == [0, 0]


def test_encoding_peaks_at_centres() -> None:
    target = _gt((2, 2, 10, 12), (6, 6, 32, 32), labels=[1, 0])
    (heat_c, reg_c, centre_c), (heat_f, reg_f, centre_f) = encode(
        [target], _maps(1, 2, (4, 8)), resolution=32)
    # the 8x10 box goes to the stride-4 map, the 26x26 one to stride 8
    assert centre_f.sum() == 1 and centre_c.sum() == 1
    assert heat_f[0, 1, 1, 1] == 1 and heat_f[0, 0].max() == 0  # centre (6, 7) / 4
    assert heat_c[0, 0, 2, 2] == 1 and heat_c[0, 1].max() == 0  # centre (19, 19) / 8
    assert int(heat_f.eq(1).sum() + heat_c.eq(1).sum()) == 2
    assert reg_f[0, :, 1, 1].tolist() == pytest.approx([0.5, 0.75, math.log(2), math.log(2.5)])
    assert reg_c[0, :, 2, 2].tolist() == pytest.approx([0.375, 0.375] + [math.log(26 / 8)] * 2)


def _ideal_outputs(targets: list[dict], sizes: tuple[int, ...], num_classes: int,
                   resolution: int) -> list[torch.Tensor]:
    """Head outputs that say exactly what the encoded targets say."""
    encoded = encode(targets, _maps(len(targets), num_classes, sizes), resolution)
    return [torch.cat([torch.logit(heat.clamp(1e-4, 1 - 1e-4)), reg], 1)
            for heat, reg, _ in encoded]


def test_decode_inverts_encode() -> None:
    targets = [_gt((2, 2, 10, 12), (6, 6, 32, 32), labels=[1, 0]),
               _gt((1, 20, 14, 31), labels=[0]), _gt()]
    outputs = _ideal_outputs(targets, (4, 8), 2, 32)
    decoded = decode(outputs, 32)
    for det, gt in zip(decoded, targets):
        assert len(det["boxes"]) == len(gt["boxes"])
        if len(gt["boxes"]):
            iou = box_iou(det["boxes"], gt["boxes"])
            best = iou.argmax(1)
            assert torch.all(iou.max(1).values > 0.9)
            assert torch.equal(det["labels"], gt["labels"][best])
            assert torch.all(det["scores"] > 0.99)
    assert mean_average_precision(decoded, targets, 2)["map"] == 1.0
    # and the loss of those outputs is small next to an untrained head's
    perfect = float(detection_loss(outputs, targets, 32))
    blank = float(detection_loss([torch.zeros_like(o) for o in outputs], targets, 32))
    assert perfect < 0.05 < blank


class _TinyDetector(nn.Module):
    """A few convs with two CenterNet outputs (strides 8 and 4 at 32 px)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.f1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                                nn.ReLU())
        self.f2 = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.fine, self.coarse = nn.Conv2d(32, num_classes + 4, 1), nn.Conv2d(32,
                                                                               num_classes + 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.f1(x)
        return self.coarse(self.f2(a)), self.fine(a)


def test_loss_decreases_on_synthetic_scenes(tmp_path: Path) -> None:
    spec = dataclasses.replace(PRESENCE, image_size=32, num_images=24)
    data = make_detection_datasets(32, data_dir=write_detection_dataset(tmp_path / "d", spec))
    torch.manual_seed(0)
    model = _TinyDetector(data.num_classes)
    loader = DataLoader(data.train, batch_size=8, shuffle=True, collate_fn=detection_collate,
                        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        for images, targets in loader:
            loss = detection_loss(model(images), targets, 32)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    assert len(losses) >= 30 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


# --------------------------------------------------------------------------- the task

# two scales, 8x8 and 16x16 at 32 px: a few thousand parameters, so MLflow and the exporters
# take a test's time, not training
TINY = "r32_w1.0_d8:stem_c8_s1-ibn_k3_e1_c8_r1_s2-ibn_k3_e2_c16_r1_s2-det_c16_n2"



@pytest.fixture(scope="module")
def presence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The presence scenes (a 'person' triangle among circles and squares), 48 of them."""
    spec = dataclasses.replace(PRESENCE, num_images=48)
    return write_detection_dataset(tmp_path_factory.mktemp("det") / "presence", spec, seed=1)


def _config(data_dir: Path) -> TaskConfig:
    return TaskConfig(kind="detection", dataset="coco-detection", data_dir=str(data_dir))


def _arch(scales: int, resolution: int = 32) -> Architecture:
    base = get_space("mbv2-small", 8, True, head="det").baseline()
    return dataclasses.replace(base, head_scales=scales, resolution=resolution)


def test_task_is_registered_and_builds_a_detector(presence: Path) -> None:
    task = make_task(_config(presence), seed=0)
    assert isinstance(task, DetectionTask) and task.metric == "map50"
    data = task.data(32)
    assert task.data(32) is data and data.num_classes == 1
    model = task.model(_arch(2), data)
    outputs = model(torch.zeros(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outputs] == [(2, 5, 4, 4), (2, 5, 8, 8)]  # stride 8, 4
    with pytest.raises(ValueError, match="det head"):
        task.model(get_space("mbv2-small", 8, True).baseline(), data)
    with pytest.raises(ValueError, match="data_dir"):
        DetectionTask(TaskConfig(kind="detection", dataset="coco-detection")).data(32)


def test_search_training_reports_map50(presence: Path) -> None:
    """``nas.tasks.train``, the loop every trial runs, trains the det space's baseline on CPU."""
    reports: list[tuple[int, dict]] = []
    config = _config(presence).model_copy(update={"max_train": 16, "max_val": 8})
    training = TrainingConfig(epochs=2, batch_size=8, lr=0.01)
    train(make_task(config, seed=0), _arch(2), training, seed=0, device=torch.device("cpu"),
          report=lambda epoch, m: reports.append((epoch, m)))
    assert [epoch for epoch, _ in reports] == [1, 2]
    for _, metrics in reports:
        assert 0.0 <= metrics["map50"] <= 1.0 and metrics["accuracy"] == metrics["map50"]
        assert math.isfinite(metrics["val_loss"]) and math.isfinite(metrics["train_loss"])


def test_hwnas_train_and_export_a_detector(presence: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``hwnas train`` trains, logs and exports a detector; ``hwnas export --weights`` writes an
    ONNX file with one output per scale that ONNX Runtime computes as torch does."""
    config = {"name": "det-final", "seed": 1,
              "task": {"kind": "detection", "dataset": "coco-detection",
                       "data_dir": str(presence)},
              "training": {"batch_size": 8, "lr": 0.01},
              "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "det"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code = main(["train", TINY, "--config", str(tmp_path / "c.yaml"), "--epochs", "1",
                 "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = strict_loads(captured.out)
    assert summary["metric"] == "map50" and 0.0 <= summary["final"]["map50"] <= 1.0
    # the MLflow model (pt2) of a tuple-output network is logged and computes the same maps
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    client = MlflowClient(config["tracking"]["uri"])
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["task"] == "detection"
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.status == "READY"
    onnx = tmp_path / "det.onnx"
    assert main(["export", "--weights", str(tmp_path / "out" / WEIGHTS), "--format", "onnx",
                 "--out", str(onnx)]) == 0
    model = model_from_weights(load_weights(tmp_path / "out" / WEIGHTS)).model
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits_0", "logits_1"]
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = [o.numpy() for o in model(images)]
    got = session.run(None, {"input": images.numpy()})
    assert [g.shape for g in got] == [(1, 5, 8, 8), (1, 5, 16, 16)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4)
    with torch.no_grad():
        again = mlflow.pytorch.load_model(logged.model_uri)(images)
    for a, e in zip(again, expected, strict=True):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-4, atol=1e-5)
