"""PyTorch eager back ends: this machine's CPU and an NVIDIA GPU.

Blocks and whole networks are prepared the same way before timing (:func:`prepare_for_inference`:
eval mode, every BatchNorm folded into the conv before it, eval-time no-ops dropped) and run under
``torch.inference_mode()``, so that the sum of block latencies and the network latency measure the
same kind of program.

- :class:`TorchCPUBackend` (``torch-cpu``): fixed thread count, wall-clock timing with
  ``time.perf_counter_ns``.
- :class:`TorchCUDABackend` (``torch-cuda``): fp16/bf16, channels-last, CUDA-event timing with a
  synchronize after every run (batch latency from an idle GPU, launch overhead included).

Both report the median of the timed repeats and their interquartile range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass
from torch import nn

from estimators.profiles import SETTINGS_CONFIG, HardwareProfile, parse_settings
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec

from .base import Backend, Measurement
from .timing import (
    LoopSettings,
    block_workload,
    check_choice,
    cpu_model,
    network_workload,
    prepare_for_inference,
    summarize,
    time_host,
    time_host_interleaved,
)

__all__ = ["TorchCPUBackend", "TorchCUDABackend", "prepare_for_inference", "time_cuda",
           "torch_threads"]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(count)``, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _ModuleBackend(Backend):
    """Times torch modules: a block as :func:`block_workload` builds it, a network as
    :func:`network_workload` does; subclasses implement :meth:`_measure`."""

    settings_type: type[LoopSettings]

    def __init__(self, profile: HardwareProfile) -> None:
        super().__init__(profile)
        self.settings = parse_settings(self.settings_type, profile)

    def measure_block(self, block: BlockSpec) -> Measurement:
        return self._measure(*block_workload(block, self.settings.batch))

    def measure_network(self, arch: Architecture, num_classes: int = 1000,
                        in_channels: int = 3) -> Measurement:
        return self._measure(*network_workload(arch, num_classes, in_channels,
                                               self.settings.batch))

    def _measure(self, module: nn.Module, example: torch.Tensor) -> Measurement:
        raise NotImplementedError


# -- CPU --------------------------------------------------------------------------------------
@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TorchCPUSettings(LoopSettings):
    """``threads`` intra-op threads (``torch.set_num_threads``) plus the shared loop settings."""

    threads: int = Field(1, ge=1)


class TorchCPUBackend(_ModuleBackend):
    """PyTorch eager fp32 on this machine's CPU, ``threads`` threads, wall-clock timing."""

    name = "torch-cpu"
    settings_type = TorchCPUSettings
    settings: TorchCPUSettings

    def measure_blocks(self, blocks: Sequence[BlockSpec]) -> list[Measurement]:
        """Blocks measured together, round-robin (:func:`time_host_interleaved`), so each runs
        after other blocks as it would inside a network."""
        work = [block_workload(b, self.settings.batch) for b in blocks]
        models = [prepare_for_inference(m) for m, _ in work]
        fns = [(lambda m=m, x=x: m(x)) for m, (_, x) in zip(models, work)]
        with torch_threads(self.settings.threads), torch.inference_mode():
            samples = time_host_interleaved(fns, self.settings)
        return [summarize(s) for s in samples]

    def _measure(self, module: nn.Module, example: torch.Tensor) -> Measurement:
        model = prepare_for_inference(module)
        with torch_threads(self.settings.threads), torch.inference_mode():
            samples = time_host(lambda: model(example), self.settings)
        return summarize(samples)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({
            "torch": torch.__version__,
            "threads": str(self.settings.threads),
            "batch": str(self.settings.batch),
            "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        })
        return env


# -- CUDA -------------------------------------------------------------------------------------
DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16,
                                  "fp32": torch.float32}
TIMINGS = ("graph", "eager")
"""``graph``: replays of a captured CUDA graph (the GPU's own time); ``eager``: plain calls
(kernel-launch cost included)."""


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TorchCUDASettings(LoopSettings):
    """GPU precision and layout plus the shared loop settings (more repeats: GPU runs are
    short). ``cudnn_benchmark`` lets cuDNN pick its fastest algorithm during the warm-up."""

    warmup: int = Field(10, ge=0)
    repeats: int = Field(50, ge=3)
    dtype: str = "fp16"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    device: int = Field(0, ge=0)
    timing: str = "graph"

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        return check_choice(value, tuple(DTYPES))

    @field_validator("timing")
    @classmethod
    def _timing(cls, value: str) -> str:
        return check_choice(value, TIMINGS)


class TorchCUDABackend(_ModuleBackend):
    """PyTorch eager on an NVIDIA GPU in fp16/bf16, channels-last, CUDA-event timing."""

    name = "torch-cuda"
    settings_type = TorchCUDASettings
    settings: TorchCUDASettings

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        return True, ""

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.settings.device)

    def _measure(self, module: nn.Module, example: torch.Tensor) -> Measurement:
        ok, why = self.available()
        if not ok:
            raise RuntimeError(f"back end {self.name!r} cannot measure here: {why}")
        if self.settings.device >= torch.cuda.device_count():
            raise ValueError(f"profile {self.profile.name!r}: setting 'device' is "
                             f"{self.settings.device} but there are "
                             f"{torch.cuda.device_count()} CUDA devices")
        dtype = DTYPES[self.settings.dtype]
        model = prepare_for_inference(module).to(self.device, dtype)
        x = example.to(self.device, dtype)
        if self.settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.settings.cudnn_benchmark
        try:
            with torch.cuda.device(self.device), torch.inference_mode():
                samples = time_cuda(lambda: model(x), self.settings)
        finally:
            torch.backends.cudnn.benchmark = previous
        return summarize(samples)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "dtype": self.settings.dtype,
            "channels_last": str(self.settings.channels_last).lower(),
            "batch": str(self.settings.batch),
            "cpu": cpu_model(),
        })
        if torch.cuda.is_available() and self.settings.device < torch.cuda.device_count():
            env["gpu"] = torch.cuda.get_device_name(self.settings.device)
            env["cudnn"] = str(torch.backends.cudnn.version())
        else:
            env["gpu"] = "none"
        return env


def time_cuda(fn: Callable[[], object], loop: LoopSettings) -> list[float]:
    """Like :func:`~estimators.backends.timing.time_host` but each run is timed by a pair of
    CUDA events on the current stream, with a synchronize after every run, so each sample is
    one inference started on an idle GPU (kernel-launch gaps included)."""
    for _ in range(loop.warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: list[float] = []
    total_ms = 0.0
    while len(samples) < loop.repeats or total_ms < loop.min_time_ms:
        start.record()
        fn()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end)
        total_ms += elapsed
        samples.append(elapsed)
    return samples
