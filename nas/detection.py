"""Object detection as a :class:`~nas.tasks.Task`: a CenterNet head scored by mAP@0.5.

The candidate's head is part of its architecture (``det_c64_n2``: head channels, one or two
output scales), built by ``searchspaces.model.build_model``; this task supplies what the head's
outputs mean (:mod:`nas.detection_coding`: targets, loss, decoding) and how they are scored
(:mod:`nas.detection_metrics`). Data are COCO-style sets read by
:func:`nas.datasets.make_detection_datasets` (via :func:`nas.task_base.task_data`, which writes the
synthetic scenes first when the config asks for them), batched by
:func:`~nas.datasets.detection_collate` (the task's ``collate``, which
:func:`nas.tasks.stream_loaders` hands to its ``DataLoader``\\ s). Training streams: there is no
in-memory path for detection (boxes would need their own augmentation).

``evaluate`` reports ``map50`` and also ``accuracy`` with the same value, the key the search's
Pareto front and ASHA read for every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas.datasets import detection_collate
from nas.detection_coding import decode, detection_loss
from nas.detection_metrics import mean_average_precision
from nas.task_base import DatasetTask, train_steps


@dataclass
class DetectionTask(DatasetTask):
    """Detection of ``config.dataset`` (COCO layout under ``config.data_dir``); datasets cached
    per resolution, as :class:`~nas.tasks.ClassificationTask` does."""

    collate: ClassVar[Callable[..., Any]] = staticmethod(detection_collate)
    head: ClassVar[str] = "det"
    example: ClassVar[str] = "det_c64_n2"

    def train_epoch(self, model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, schedule: Any = None) -> dict[str, float]:
        """One pass over ``loader``; ``schedule`` (an LR scheduler) steps after every batch."""
        return train_steps(model, loader, optimizer, schedule, lambda images, targets: (
            detection_loss(model(images.to(device)), targets, images.shape[-1])))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        """``map50`` (and ``accuracy``, the same value) and the mean per-batch loss per image."""
        model.eval()
        detections, truths, loss, count = [], [], 0.0, 0
        num_classes = None
        for images, targets in loader:
            images = images.to(device)
            outputs = model(images)
            num_classes = outputs[0].shape[1] - 4
            loss += float(detection_loss(outputs, targets, images.shape[-1])) * len(images)
            count += len(images)
            detections += [{k: v.cpu() for k, v in d.items()}
                           for d in decode(outputs, images.shape[-1])]
            truths += targets
        score = mean_average_precision(detections, truths, num_classes or 0)["map"]
        return {"map50": score, "accuracy": score, "val_loss": loss / max(count, 1)}
