"""The in-memory training path: a trial's whole epoch runs on its device, no DataLoader.

:func:`nas.tasks.train` comes here when the dataset is held on the device
(:func:`choose_path`). Against the streaming path it changes how an epoch is fed, not what is
learned: the same model (same seed, same initial weights), the same batches in the same order
(:class:`nas.task_base.EpochOrder`), optimiser (AdamW), cosine schedule over the whole budget
and epochs. What differs:

- batches are gathered from the uint8 tensors of :class:`nas.fastdata.DeviceData`, augmented
  (random crop with ``resolution // 8`` reflect padding, 4 px at 32 px as is usual for
  CIFAR-10, and a horizontal flip where the dataset allows one) and normalised on the device;
- autocast (``training.mixed_precision``): bf16 on CUDA GPUs that have it, else fp16 with a
  ``GradScaler``; off on CPU by default (see :func:`autocast_dtype`); channels-last on CUDA;
- ``training.memory_batch_size`` with the learning rate scaled linearly (:func:`scaled_lr`);
- ``training.label_smoothing`` in the training loss (validation loss is plain cross-entropy);
- a non-finite loss is detected once per epoch (checking every step would wait on the GPU
  every step), so the trial still fails with ``FloatingPointError``, an epoch later at most.

Each report adds ``epoch_seconds`` (this epoch's training, no validation) and
``images_per_second`` (training images through the model per second of it) to the streaming
path's metrics, so benchmarks and MLflow see throughput.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from nas.config import TrainingConfig
from nas.data import DataSplit
from nas.fastdata import DeviceData, augment, held_bytes
from nas.task_base import EpochOrder
from searchspaces.genome import Architecture

EVAL_BATCH = 1024


def choose_path(training: TrainingConfig, data: DataSplit, resolution: int,
                can_hold: bool) -> str:
    """``"memory"`` or ``"stream"`` for a trial: ``training.data_path`` when it names one,
    else (``auto``) memory when the task can hold its data on a device and the uint8 dataset
    (:func:`nas.fastdata.held_bytes`) is at most ``training.memory_cap_mib``."""
    if training.data_path == "stream":
        return "stream"
    if not can_hold:
        if training.data_path == "memory":
            raise ValueError("training.data_path: memory needs a task that can hold its data "
                             "on the device (classification); use auto or stream")
        return "stream"
    if training.data_path == "memory":
        return "memory"
    fits = held_bytes(data, resolution) <= training.memory_cap_mib * 2**20
    return "memory" if fits else "stream"


def scaled_lr(lr: float, batch: int, base_batch: int) -> float:
    """The linear scaling rule (Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet
    in 1 Hour", 2017): ``lr`` is tuned for ``base_batch`` (``training.batch_size``); a batch k
    times larger averages k times as many gradients per step, so it takes k times the rate to
    cover the same distance per epoch."""
    return lr * batch / base_batch


def autocast_dtype(device: torch.device, mixed_precision: bool | None) -> torch.dtype | None:
    """The autocast dtype of a trial, or None for float32.

    CUDA: bf16 where supported (same exponent range as float32: no loss scaling), else fp16;
    on unless ``mixed_precision`` is False. CPU: off unless ``mixed_precision`` is True (bf16):
    on CPUs without native bf16 it is slower than float32 (benchmarks/fastpath_accuracy.py
    measures both)."""
    if device.type == "cuda":
        if mixed_precision is False:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mixed_precision else None


@torch.no_grad()
def evaluate(model: nn.Module, held: DeviceData, dtype: torch.dtype | None,
             channels_last: bool) -> dict[str, float]:
    """Top-1 ``accuracy`` and mean cross-entropy ``val_loss`` on the held validation split."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=held.val_labels.device)
    loss = torch.zeros((), dtype=torch.float32, device=held.val_labels.device)
    for start in range(0, len(held.val_labels), EVAL_BATCH):
        labels = held.val_labels[start:start + EVAL_BATCH]
        images = held.normalise(held.val_images[start:start + EVAL_BATCH], channels_last)
        with torch.autocast(labels.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(images).float()
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
    total = max(len(held.val_labels), 1)
    return {"accuracy": int(correct) / total, "val_loss": float(loss) / total}


def train_in_memory(task: Any, arch: Architecture, data: DataSplit, training: TrainingConfig,
                    seed: int, device: torch.device, report: Any) -> None:
    """:func:`nas.tasks.train` on the held dataset (``task.device_data``); same contract."""
    held: DeviceData = task.device_data(arch.resolution, device)
    generator = torch.Generator(device=device).manual_seed(seed)  # augmentation
    torch.manual_seed(seed)
    channels_last = device.type == "cuda"
    model = task.model(arch, data).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    count = len(held.train_labels)
    order_of = EpochOrder(count, torch.Generator().manual_seed(seed))  # the streaming path's
    batch = min(training.memory_batch_size or training.batch_size, count)
    steps = max(count // batch, 1)  # the last partial batch is dropped, as on the stream path
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=scaled_lr(training.lr, batch, training.batch_size),
        weight_decay=training.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                          T_max=training.epochs * steps)
    dtype = autocast_dtype(device, training.mixed_precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    padding = 0 if training.augment == "none" else arch.resolution // 8
    flip = held.flips(training.augment)
    seconds = 0.0
    for epoch in range(1, training.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = order_of.epoch().to(device)
        total = torch.zeros((), dtype=torch.float32, device=device)
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            pixels = held.train_images[idx]
            if padding or flip:
                pixels = augment(pixels, generator, padding, flip)
            labels = held.train_labels[idx]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(held.normalise(pixels, channels_last))
            loss = nn.functional.cross_entropy(logits.float(), labels,
                                               label_smoothing=training.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total += loss.detach() * len(idx)
        train_loss = float(total) / (steps * batch)  # waits for the device: the epoch is done
        epoch_seconds = time.perf_counter() - start
        if not math.isfinite(train_loss):
            raise FloatingPointError("training loss is not finite")
        metrics = {"train_loss": train_loss, **evaluate(model, held, dtype, channels_last)}
        seconds += time.perf_counter() - start
        report(epoch, {**metrics, "train_seconds": seconds, "epoch_seconds": epoch_seconds,
                       "images_per_second": steps * batch / epoch_seconds})
