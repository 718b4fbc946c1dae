"""What every task shares: its data, cached per resolution, and its training loop's steps.

:mod:`nas.tasks` assembles the tasks; the detection and segmentation modules build on this one
(which imports none of them), so they need no late imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from nas.config import TaskConfig
from nas.data import DataSplit, make_datasets
from searchspaces.genome import Architecture
from searchspaces.model import build_model


def task_data(config: TaskConfig, resolution: int, seed: int = 0) -> DataSplit:
    """The train/validation split of ``config``'s dataset at ``resolution``. With
    ``config.synthetic`` the deterministic scenes are written to ``data_dir`` first (once; every
    later call, on any node, checks the folder holds that very set): the same scenes whatever
    the search's seed, which only draws the split."""
    if config.synthetic:
        from nas.datasets.synthetic import PRESENCE, SceneSpec, ensure_synthetic_dataset

        base = PRESENCE if config.synthetic == "presence" else SceneSpec()
        spec = replace(base, num_images=config.synthetic_images)
        ensure_synthetic_dataset(config.data_dir, config.kind, spec, seed=0)
    return make_datasets(config.dataset, resolution, data_dir=config.data_dir,
                         val_fraction=config.val_fraction, seed=seed,
                         max_train=config.max_train, max_val=config.max_val,
                         download=config.download)


@dataclass
class DatasetTask:
    """A task's config and seed, its datasets cached per resolution (a Ray actor reused across
    trials loads them once), and the model of an architecture that ends in the task's head."""

    config: TaskConfig
    seed: int = 0
    _cache: dict[int, DataSplit] = field(default_factory=dict, repr=False)
    head: ClassVar[str] = "head"
    """The head kind (:data:`searchspaces.genome.HEAD_KINDS`) this task's architectures end in."""
    example: ClassVar[str] = "head_c1280"

    @property
    def metric(self) -> str:
        """The validation metric the task maximises (``accuracy``, ``map50``, ``miou``)."""
        return self.config.metric

    def data(self, resolution: int) -> DataSplit:
        if resolution not in self._cache:
            self._cache[resolution] = task_data(self.config, resolution, self.seed)
        return self._cache[resolution]

    def model(self, arch: Architecture, data: DataSplit) -> nn.Module:
        if arch.head_kind != self.head:
            raise ValueError(f"a {self.config.kind} task needs an architecture ending in a "
                             f"{self.head} head ({self.example}), got head kind "
                             f"{arch.head_kind!r}")
        return build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels)


class EpochOrder(Sampler[int]):
    """A fresh permutation of ``count`` indices per epoch, drawn from ``generator`` (a CPU
    ``torch.Generator``) and nothing else. Both training paths take their batch order from it,
    the streaming path as its ``DataLoader``'s sampler, the in-memory path
    (:mod:`nas.fasttrain`) directly: at one seed they see the same batches in the same order,
    so what they learn differs only by what the paths really change (pixels rounded to uint8,
    augmentation, batch size)."""

    def __init__(self, count: int, generator: torch.Generator) -> None:
        self.count, self.generator = count, generator

    def epoch(self) -> torch.Tensor:
        """The next epoch's order."""
        return torch.randperm(self.count, generator=self.generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch().tolist())

    def __len__(self) -> int:
        return self.count


def train_steps(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                schedule: Any, loss_of: Callable[[Any, Any], torch.Tensor]) -> dict[str, float]:
    """A task's training epoch: one optimizer step per batch ``(inputs, targets)`` of
    ``loader`` on ``loss_of(inputs, targets)`` (the task's loss, which moves the batch to its
    device), ``schedule`` stepping after each; returns the mean ``train_loss`` per input.

    Raises:
        FloatingPointError: when a batch's loss is not finite (the trial fails at once).
    """
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(inputs, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError("training loss is not finite")
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        total += float(loss.detach()) * len(inputs)
        count += len(inputs)
    return {"train_loss": total / max(count, 1)}
