"""Packed trials: several trials share one GPU, each within its memory share, and a trial that
runs out of memory is retried once at half the batch.

``resources.gpus: 0.25`` makes Ray place four trials on each GPU. Ray only counts the shares;
it does not stop one trial's allocations from taking the whole device, after which its
neighbours fail with out-of-memory errors that are not theirs. So each trial caps PyTorch's
caching allocator at its share (:func:`memory_fraction`, :func:`limit_memory`): a candidate too
big for its share fails on its own, with ``torch.OutOfMemoryError``.

:func:`train_with_oom_retry` catches that error, frees what the failed attempt held and trains
the candidate again, from scratch, at half the batch size (the learning rate is kept: AdamW's
step size does not scale with the batch the way SGD's does, and the cosine schedule follows the
new number of steps). A second out-of-memory error, or one at batch 1, ends the trial as failed
with its reason (``out of memory at batch 8``). The retry lives inside the trial, so Ray Tune
and ASHA see one trial with one series of epochs; its reports carry ``oom_batch`` (the batch
size that ran out of memory) and ``batch_size``, from which the tracker records the failed first
attempt as its own ``FAILED`` run (:mod:`nas.tracking.tracker`).

CPUs do not raise ``torch.OutOfMemoryError`` before the machine swaps, so the retry is tested
through an explicit, recorded hook: ``resources.simulated_memory_mib`` (:func:`check_simulated`)
makes an attempt fail, before its first step, when ``batch size x the candidate's peak
activation bytes`` (from the exact memory model) exceeds it. It is part of the config, so a
search that used it says so in its MLflow params.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Outside the caching allocator's cap, each process also holds its CUDA context and the
# cuBLAS/cuDNN workspaces (about 0.5-1 GiB on recent GPUs), so a share leaves this much of the
# device unclaimed per trial; otherwise four quarter-shares plus four contexts exceed the device.
CONTEXT_RESERVE_BYTES = 1 << 30


def oom_reason(batch_size: int) -> str:
    """The failure reason recorded for an attempt that ran out of memory."""
    return f"out of memory at batch {batch_size}"


def memory_fraction(gpus: float, total_bytes: int,
                    reserve_bytes: int = CONTEXT_RESERVE_BYTES) -> float | None:
    """The fraction of a device of ``total_bytes`` that a trial holding ``gpus`` of it may
    allocate, or ``None`` for no cap (a whole GPU or more, or none). The share, less
    ``reserve_bytes`` for the process's CUDA context, never below half the share."""
    if gpus < 0 or total_bytes <= 0:
        raise ValueError(f"need gpus >= 0 and total_bytes > 0, got {gpus} and {total_bytes}")
    if gpus == 0 or gpus >= 1:
        return None
    return max(gpus - reserve_bytes / total_bytes, gpus / 2)


def limit_memory(gpus: float, device: Any) -> float | None:
    """Cap this process's CUDA allocations on ``device`` at its share of the GPU (see
    :func:`memory_fraction`); returns the fraction set, ``None`` on CPU or a whole GPU."""
    import torch

    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    fraction = memory_fraction(gpus, torch.cuda.get_device_properties(index).total_memory)
    if fraction is not None:
        torch.cuda.set_per_process_memory_fraction(fraction, index)
    return fraction


def check_simulated(batch_size: int, peak_activation_bytes: int,
                    simulated_mib: float | None) -> None:
    """The test hook ``resources.simulated_memory_mib``: raise ``torch.OutOfMemoryError`` when a
    batch of ``batch_size`` needs more than ``simulated_mib`` by the crude model ``batch_size x
    peak_activation_bytes`` (so bigger candidates and bigger batches run out first)."""
    import torch

    if simulated_mib is None:
        return
    need = batch_size * peak_activation_bytes
    if need > simulated_mib * 1024 * 1024:
        raise torch.OutOfMemoryError(
            f"simulated: batch {batch_size} x {peak_activation_bytes} activation bytes > "
            f"{simulated_mib:g} MiB (resources.simulated_memory_mib)")


def _release(device: Any) -> None:
    """Give back what a failed attempt held (its model, optimizer and batches are garbage once
    its frames are gone), so the retry starts from an empty cache."""
    import torch

    gc.collect()
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class OutOfMemory:
    """How a trial ended that ran out of memory at every batch size it tried."""

    batch_size: int  # of the last attempt
    first_batch: int = 0  # of the attempt before it, when the last one was the retry

    @property
    def reason(self) -> str:
        return oom_reason(self.batch_size)


def train_with_oom_retry(attempt: Callable[[int, dict[str, Any]], None], batch_size: int,
                         device: Any = None) -> OutOfMemory | None:
    """Run ``attempt(batch_size, extra)``; if it runs out of memory, run it again at half the
    batch with ``extra = {"oom_batch": batch_size}`` (``{"oom_batch": 0}`` the first time; the
    caller merges it into every report of that attempt).

    Returns ``None`` when an attempt finished, else how the last one failed. Any other error
    propagates (Tune records the trial as errored)."""
    import torch

    batches = [batch_size, batch_size // 2] if batch_size > 1 else [batch_size]
    for i, batch in enumerate(batches):
        try:
            attempt(batch, {"oom_batch": batches[0] if i else 0})
            return None
        except torch.OutOfMemoryError:
            pass  # leave the except block first: its traceback holds the attempt's tensors
        _release(device)
    return OutOfMemory(batches[-1], batches[0] if len(batches) > 1 else 0)
