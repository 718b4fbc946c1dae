"""Tasks: what a candidate network learns and how it is scored.

A task turns an architecture into a trainable model, runs one epoch of training and scores the
model on the validation split. The search only sees the task's ``metric`` (maximised), so
detection or segmentation plug in as further :data:`TASKS` entries with their own heads, losses
and metrics (mAP, mIoU) without touching the search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas.config import TaskConfig, TrainingConfig
from nas.data import DataSplit
from nas.detection import DetectionTask
from nas.fastdata import DeviceData, holdable, materialise
from nas.fasttrain import choose_path, train_in_memory
from nas.segmentation import SegmentationTask
from nas.task_base import DatasetTask, EpochOrder, train_steps
from searchspaces.genome import Architecture


class Task(Protocol):
    metric: str

    def data(self, resolution: int) -> DataSplit: ...

    def model(self, arch: Architecture, data: DataSplit) -> nn.Module: ...

    def train_epoch(self, model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, schedule: Any = None) -> dict[str, float]: ...

    def evaluate(self, model: nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]: ...


@dataclass
class ClassificationTask(DatasetTask):
    """Image classification: cross-entropy training, top-1 ``accuracy`` on the validation split.

    Datasets are cached per resolution, and per device once held there as uint8 for the
    in-memory path (:mod:`nas.fasttrain`), so a Ray actor reused across trials loads them once.
    """

    _held: dict[tuple[int, str], DeviceData] = field(default_factory=dict, repr=False)

    def device_data(self, resolution: int, device: torch.device) -> DeviceData:
        """The split at ``resolution`` held on ``device`` as uint8 (:mod:`nas.fastdata`)."""
        key = (resolution, str(device))
        if key not in self._held:
            self._held[key] = materialise(self.data(resolution), device,
                                          mirrorable=self.config.dataset != "digits")
        return self._held[key]

    def train_epoch(self, model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, schedule: Any = None) -> dict[str, float]:
        """One pass over ``loader``; ``schedule`` (an LR scheduler) steps after every batch."""
        return train_steps(model, loader, optimizer, schedule, lambda images, labels: (
            nn.functional.cross_entropy(model(images.to(device)), labels.to(device))))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        model.eval()
        correct, total, loss = 0, 0, 0.0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        return {"accuracy": correct / max(total, 1), "val_loss": loss / max(total, 1)}


TASKS: dict[str, type] = {"classification": ClassificationTask, "detection": DetectionTask,
                          "segmentation": SegmentationTask}


def make_task(config: TaskConfig, seed: int = 0) -> Task:
    try:
        return TASKS[config.kind](config, seed)
    except KeyError:
        raise ValueError(f"unknown task kind {config.kind!r}; known: {', '.join(TASKS)}"
                         ) from None


def stream_loaders(data: DataSplit, batch_size: int, generator: torch.Generator,
                   collate: Any = None) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches in the order :class:`EpochOrder` draws from ``generator`` (the
    last, partial batch dropped when there is more than one), validation in order: the
    streaming path of a trial and of ``hwnas train``. ``collate`` is the task's batching
    function (its ``collate`` attribute: detection targets are lists), ``None`` for PyTorch's
    default. Each ``DataLoader`` gets a generator of its own for the seed it draws per pass
    (for workers, which this path does not use), so neither that draw nor the shuffle touches
    torch's global RNG (dropout's) or ``generator`` beyond the order."""
    train = DataLoader(data.train, batch_size=batch_size,
                       sampler=EpochOrder(len(data.train), generator),
                       generator=torch.Generator().manual_seed(0),
                       drop_last=len(data.train) > batch_size, collate_fn=collate)
    return train, DataLoader(data.val, batch_size=max(batch_size, 128), collate_fn=collate,
                             generator=torch.Generator().manual_seed(0))


def train(task: Task, arch: Architecture, training: TrainingConfig, seed: int,
          device: torch.device, report: Any) -> None:
    """Train ``arch`` for ``training.epochs`` epochs, calling ``report(epoch, metrics)`` after
    each (the caller may stop it there: Ray kills a trial that ASHA stops).

    A dataset held on ``device`` trains on the in-memory path (:mod:`nas.fasttrain`, chosen by
    ``training.data_path``); any other streams through a ``DataLoader`` in the main process.
    """
    data = task.data(arch.resolution)
    can_hold = hasattr(task, "device_data") and holdable(data)
    if choose_path(training, data, arch.resolution, can_hold) == "memory":
        train_in_memory(task, arch, data, training, seed, device, report)
        return
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = task.model(arch, data).to(device)
    train_loader, val_loader = stream_loaders(data, training.batch_size, generator,
                                              getattr(task, "collate", None))
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr,
                                  weight_decay=training.weight_decay)
    # cosine decay over the full budget (Loshchilov & Hutter, SGDR, ICLR 2017), no warm-up:
    # a trial that ASHA judges after its first epoch has already learned at full rate
    steps = training.epochs * max(len(train_loader), 1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    images = len(train_loader) * training.batch_size if train_loader.drop_last else len(data.train)
    seconds = 0.0
    for epoch in range(1, training.epochs + 1):
        start = time.perf_counter()
        metrics = task.train_epoch(model, train_loader, optimizer, device, schedule)
        epoch_seconds = time.perf_counter() - start
        metrics.update(task.evaluate(model, val_loader, device))
        seconds += time.perf_counter() - start
        report(epoch, {**metrics, "train_seconds": seconds, "epoch_seconds": epoch_seconds,
                       "images_per_second": images / epoch_seconds})

