"""The segmentation task: mean IoU and pixel accuracy on hand-made masks with known values, the
ignore-aware per-pixel loss, and a short training of an LR-ASPP candidate on synthetic scenes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import strict_loads
from nas.cli import main
from nas.config import TaskConfig, TrainingConfig
from nas.datasets.segmentation import IGNORE_INDEX
from nas.datasets.synthetic import SceneSpec, write_segmentation_dataset
from nas.final import WEIGHTS, load_weights, model_from_weights
from nas.segmentation import (
    SegmentationTask,
    confusion_matrix,
    pixel_loss,
    scores,
)
from nas.tasks import make_task, train
from searchspaces.genome import Architecture
from searchspaces.model import PRED_STD
from searchspaces.spaces import get_space

X = IGNORE_INDEX  # an ignored mask pixel
pytestmark = pytest.mark.usefixtures("one_thread")


def _scores(prediction: list, target: list, num_classes: int) -> dict[str, float]:
    return scores(confusion_matrix(torch.tensor(prediction), torch.tensor(target),
                                   num_classes))


def test_miou_of_a_hand_made_mask() -> None:
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 2, FP 1 -> 2/3
    got = _scores([[0, 1], [1, 1]], [[0, 0], [1, 1]], 2)
    assert got["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert got["pixel_accuracy"] == pytest.approx(3 / 4)


def test_confusion_matrix_counts_true_by_predicted() -> None:
    cm = confusion_matrix(torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 0, 1, 1, 2, X]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_ignored_pixels_count_for_nothing() -> None:
    # the wrong predictions all sit on ignored pixels: a perfect score
    got = _scores([[2, 1, 0], [0, 1, 2]], [[X, 1, 0], [0, X, 2]], 3)
    assert got == {"miou": 1.0, "pixel_accuracy": 1.0}
    assert pixel_loss(torch.zeros(1, 3, 1, 2), torch.tensor([[[X, X]]])).isnan()  # 0/0
    assert float(pixel_loss(torch.zeros(1, 3, 1, 2), torch.tensor([[[X, X]]]),
                            reduction="sum")) == 0.0


def test_classes_absent_from_truth_and_prediction_are_left_out() -> None:
    # 4 classes, only 0 and 1 occur anywhere: the mean is over those two
    got = _scores([[0, 1], [1, 1]], [[0, 0], [1, 1]], 4)
    assert got["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a class only predicted (a false positive everywhere it appears) counts with IoU 0
    got = _scores([[0, 3], [1, 1]], [[0, 0], [1, 1]], 4)
    assert got["miou"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    # a class only in the ground truth (never found) counts with IoU 0
    got = _scores([[0, 0], [0, 0]], [[0, 0], [0, 2]], 3)
    assert got["miou"] == pytest.approx((3 / 4 + 0) / 2)


def test_nothing_counted_scores_zero() -> None:
    assert _scores([[0, 1]], [[X, X]], 2) == {"miou": 0.0, "pixel_accuracy": 0.0}


def test_accumulated_batches_equal_the_whole_and_match_per_class_sets() -> None:
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 5, (6, 9, 9)))
    target[torch.from_numpy(rng.random((6, 9, 9)) < 0.1)] = X
    prediction = torch.from_numpy(rng.integers(0, 5, (6, 9, 9)))
    whole = confusion_matrix(prediction, target, 5)
    parts = sum(confusion_matrix(prediction[i:i + 2], target[i:i + 2], 5) for i in (0, 2, 4))
    assert torch.equal(whole, parts)
    valid = target != X
    ious = []
    for c in range(5):
        t, p = (target == c) & valid, (prediction == c) & valid
        ious.append(float((t & p).sum()) / float((t | p).sum()))
    assert scores(whole)["miou"] == pytest.approx(float(np.mean(ious)))
    assert scores(whole)["pixel_accuracy"] == pytest.approx(
        float((prediction == target)[valid].float().mean()))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="class ids outside 0..1"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([[0, 1]]), 2)


def test_pixel_loss_is_cross_entropy_over_the_counted_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    masks = torch.randint(0, 3, (2, 4, 4), generator=generator)
    masks[0, 0] = X
    keep = masks != X
    flat = logits.permute(0, 2, 3, 1)[keep]
    expected = torch.nn.functional.cross_entropy(flat, masks[keep])
    assert float(pixel_loss(logits, masks)) == pytest.approx(float(expected), rel=1e-6)


def _task() -> SegmentationTask:
    return SegmentationTask(TaskConfig())


def test_evaluate_scores_the_whole_split_and_repeats_miou_as_accuracy() -> None:
    """An identity "model" on one-hot logits predicts exactly the given masks: evaluate over two
    batches equals the metric of the whole prediction, not a mean of the batches'."""
    prediction = torch.tensor([[[0, 1], [1, 1]], [[2, 2], [0, 0]], [[2, 2], [2, 2]]])
    target = torch.tensor([[[0, 0], [1, 1]], [[2, X], [0, 1]], [[2, 2], [2, 2]]])
    logits = torch.nn.functional.one_hot(prediction, 3).permute(0, 3, 1, 2).float()
    batches = [(logits[:2], target[:2]), (logits[2:], target[2:])]
    got = _task().evaluate(torch.nn.Identity(), batches, torch.device("cpu"))
    expected = scores(confusion_matrix(prediction, target, 3))
    assert got["miou"] == pytest.approx(expected["miou"])
    assert got["miou"] == pytest.approx((1 / 2 + 2 / 4 + 5 / 5) / 3)
    assert got["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    assert got["accuracy"] == got["miou"]
    assert got["val_loss"] == pytest.approx(float(pixel_loss(logits, target)), rel=1e-6)


def test_train_epoch_learns_and_survives_a_batch_of_ignored_pixels_only() -> None:
    torch.manual_seed(0)
    images = torch.randn(8, 3, 6, 6)
    masks = (images[:, 0] > 0).long()  # learnable by a 1x1 convolution
    ignored = torch.full((2, 6, 6), X)
    batches = [(images[:4], masks[:4]), (images[:2], ignored), (images[4:], masks[4:])]
    model = torch.nn.Conv2d(3, 2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    task, cpu = _task(), torch.device("cpu")
    losses = [task.train_epoch(model, batches, optimizer, cpu)["train_loss"] for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] / 2
    assert task.evaluate(model, batches, cpu)["miou"] > 0.9


# -- training a candidate end to end ------------------------------------------------------------
SCENES = SceneSpec(num_images=48, ignore_border=1)
# a small candidate (stride 8, skip branch at stride 4): a second or two per epoch on one core
SMALL = ("r32_w1.0_d8:stem_c8_s1-ibn_k3_e1_c8_r1_s2-ibn_k3_e4_c16_r1_s2-ibn_k3_e4_c24_r1_s2-"
         "seg_c16_o4")


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_segmentation_dataset(tmp_path_factory.mktemp("seg") / "voc", SCENES, seed=1)


def test_the_space_baseline_trains_end_to_end(voc: Path) -> None:
    """The ``mbv2-small`` baseline with its LR-ASPP head, at resolution 32, trained by the
    search's own loop: logits at the input resolution, a falling loss, mIoU in [0, 1]."""
    baseline = get_space("mbv2-small", 8, True, head="seg").baseline()
    arch = dataclasses.replace(baseline, resolution=32)
    task = make_task(TaskConfig(kind="segmentation", dataset="voc-segmentation",
                                data_dir=str(voc)), seed=0)
    assert isinstance(task, SegmentationTask) and task.metric == "miou"
    data = task.data(32)
    assert data.num_classes == 4 and task.data(32) is data  # cached per resolution
    model = task.model(arch, data)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)
    for branch in model.seg.values():  # prediction convs start near zero, not at Kaiming's scale
        assert float(branch.pred.weight.detach().std()) == pytest.approx(PRED_STD, rel=0.3)
    with pytest.raises(ValueError, match="needs an architecture ending in a seg head"):
        task.model(Architecture.from_string(SMALL.replace("seg_c16_o4", "head_c16")), data)
    rows: list[dict[str, float]] = []
    training = TrainingConfig(epochs=2, batch_size=16, lr=2e-3)
    train(task, arch, training, 0, torch.device("cpu"), lambda e, m: rows.append(m))
    assert len(rows) == 2
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    for row in rows:
        assert 0.0 <= row["miou"] <= 1.0 and row["accuracy"] == row["miou"]
        assert 0.0 <= row["pixel_accuracy"] <= 1.0 and np.isfinite(row["val_loss"])


def seg_config(folder: Path, voc: Path) -> Path:
    """A segmentation search config on ``voc``, tracking to ``folder``."""
    path = folder / "seg.yaml"
    path.write_text(yaml.safe_dump({
        "name": "seg-final", "seed": 2,
        "task": {"kind": "segmentation", "dataset": "voc-segmentation", "data_dir": str(voc)},
        "training": {"batch_size": 16, "lr": 0.005},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "seg"}}))
    return path


def test_hwnas_train_and_export_a_segmenter_that_onnx_runtime_matches(
        voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``hwnas train`` trains a segmenter under a segmentation config and reports its mIoU;
    ``hwnas export --weights`` writes ONNX that ONNX Runtime runs to torch's logits."""
    import onnxruntime as ort

    config = seg_config(tmp_path, voc)
    out = tmp_path / "final"
    assert main(["train", SMALL, "--config", str(config), "--epochs", "1", "--out", str(out),
                 "--json"]) == 0
    summary = strict_loads(capsys.readouterr().out)
    assert summary["metric"] == "miou" and 0.0 <= summary["final"]["miou"] <= 1.0
    assert summary["best"]["miou"] == summary["final"]["miou"]
    onnx = tmp_path / "seg.onnx"
    assert main(["export", "--weights", str(out / WEIGHTS), "--format", "onnx", "--out",
                 str(onnx), "--json"]) == 0
    assert strict_loads(capsys.readouterr().out)["input_shape"] == [1, 3, 32, 32]
    model = model_from_weights(load_weights(out / WEIGHTS)).model
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(images).numpy()
    assert expected.shape == (3, 4, 32, 32) and np.abs(expected).max() > 1e-2
    got = np.concatenate([session.run(None, {"input": images[i:i + 1].numpy()})[0]
                          for i in range(len(images))])
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_hwnas_train_refuses_a_classifier_under_a_segmentation_config(
        voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classifier = SMALL.replace("seg_c16_o4", "head_c16")
    code = main(["train", classifier, "--config", str(seg_config(tmp_path, voc)), "--epochs",
                 "1", "--out", str(tmp_path / "final")])
    stderr = capsys.readouterr().err
    assert code != 0 and "segmentation task trains architectures ending in a 'seg' head" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "final").exists() and not (tmp_path / "mlflow.db").exists()
