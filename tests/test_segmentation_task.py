"""The segmentation task: mean IoU and pixel accuracy on hand-made masks with known values, the
ignore-aware per-pixel loss, and a short training of an LR-ASPP candidate on synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.config import TaskConfig
from nas.datasets.segmentation import IGNORE_INDEX
from nas.segmentation import SegmentationTask, confusion_matrix, pixel_loss, scores

X = IGNORE_INDEX  # an ignored mask pixel


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


def test_train_epoch_learns_and_skips_a_batch_of_ignored_pixels_only() -> None:
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
