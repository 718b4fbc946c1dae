"""Semantic segmentation as a :class:`~nas.tasks.Task`: an LR-ASPP head, per-pixel
cross-entropy, mean IoU.

The architecture's ``seg`` head (``searchspaces.model``) returns logits ``(N, C, R, R)`` at the
input resolution, so the loss and the metric compare them with the mask pixel for pixel; pixels
marked :data:`~nas.datasets.segmentation.IGNORE_INDEX` (VOC's object outlines) count for
neither.

Mean IoU comes from a confusion matrix accumulated over the whole validation split (not a mean
of per-image or per-batch IoUs, which would depend on the batch size and on which classes each
image or batch happens to hold): ``IoU_c = TP / (TP + FP + FN)``, averaged over the classes
that occur in the ground truth or in the prediction. A class absent from both has no IoU (0/0)
and is left out of the mean, as mmsegmentation's ``nanmean`` does; torchvision's reference
scripts take a plain mean, which is NaN then, and the VOC devkit's test set has every class.
Background is a class and counts, as in VOC's 21-class mIoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas.datasets.segmentation import IGNORE_INDEX
from nas.task_base import DatasetTask, train_steps


def confusion_matrix(prediction: torch.Tensor, target: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """The ``(C, C)`` int64 confusion matrix of one batch: entry ``[t, p]`` counts the pixels of
    true class ``t`` predicted as ``p``. Pixels whose target is :data:`IGNORE_INDEX` are not
    counted; ``prediction`` and ``target`` are class ids of the same shape."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    valid = target != IGNORE_INDEX
    target, prediction = target[valid].to(torch.int64), prediction[valid].to(torch.int64)
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target holds class ids outside 0..{num_classes - 1} (other than "
                         f"{IGNORE_INDEX}, ignore)")
    counts = torch.bincount(target * num_classes + prediction, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def scores(confusion: torch.Tensor) -> dict[str, float]:
    """``miou`` (over the classes present in the ground truth or the prediction; 0.0 when no
    pixel was counted) and ``pixel_accuracy`` of an accumulated confusion matrix."""
    confusion = confusion.to(torch.float64)
    hits = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    total = float(confusion.sum())
    miou = float((hits[present] / union[present]).mean()) if bool(present.any()) else 0.0
    return {"miou": miou, "pixel_accuracy": float(hits.sum()) / total if total else 0.0}


def batch_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """:func:`pixel_loss` averaged over the batch's counted pixels; 0 (no gradient) for a batch
    of ignored pixels only, where the mean would be 0/0."""
    counted = (masks != IGNORE_INDEX).sum().clamp(min=1)
    return pixel_loss(logits, masks, reduction="sum") / counted


def pixel_loss(logits: torch.Tensor, masks: torch.Tensor,
               reduction: str = "mean") -> torch.Tensor:
    """Per-pixel cross-entropy, ignoring :data:`IGNORE_INDEX` pixels (``mean``: over the
    counted pixels)."""
    return nn.functional.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX,
                                       reduction=reduction)


@dataclass
class SegmentationTask(DatasetTask):
    """Semantic segmentation on a VOC-layout folder (``task.data_dir``, written first when
    ``task.synthetic`` names the synthetic scenes): per-pixel cross-entropy, ``miou`` on the
    validation split. Datasets are cached per resolution, so a Ray actor reused across trials
    reads and checks the masks once per resolution."""

    head: ClassVar[str] = "seg"
    example: ClassVar[str] = "seg_c128_o8"

    def train_epoch(self, model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, schedule: Any = None) -> dict[str, float]:
        """One pass over ``loader``; ``schedule`` (an LR scheduler) steps after every batch."""
        return train_steps(model, loader, optimizer, schedule, lambda images, masks: (
            batch_loss(model(images.to(device)), masks.to(device))))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        """``miou``, ``pixel_accuracy`` and ``val_loss`` (per counted pixel) over ``loader``;
        ``accuracy`` repeats ``miou``, the key the search ranks every task by."""
        model.eval()
        confusion: torch.Tensor | None = None
        loss, pixels = 0.0, 0
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            logits = model(images)
            loss += float(pixel_loss(logits, masks, reduction="sum"))
            pixels += int((masks != IGNORE_INDEX).sum())
            batch = confusion_matrix(logits.argmax(1), masks, logits.shape[1])
            confusion = batch if confusion is None else confusion + batch
        result = scores(confusion) if confusion is not None else scores(torch.zeros(1, 1))
        return {**result, "accuracy": result["miou"], "val_loss": loss / max(pixels, 1)}
