"""PyTorch eager back ends: this machine's CPU and an NVIDIA GPU.

Blocks and whole networks are prepared the same way before timing (:func:`prepare_for_inference`:
eval mode, every BatchNorm folded into the conv before it, eval-time no-ops dropped) and run under
``torch.inference_mode()``, so that the sum of block latencies and the network latency measure the
same kind of program.

- :class:`TorchCPUBackend` (``torch-cpu``): fixed thread count, the measuring thread pinned to
  one core, wall-clock timing with ``time.perf_counter_ns``; optionally every repeat divided by
  the repeat of a fixed reference network in the same round (``reference: network``), which
  cancels the machine's own slowdowns.
- :class:`TorchCUDABackend` (``torch-cuda``): fp16/bf16, channels-last, CUDA-event timing of
  replays of a captured CUDA graph (``timing: graph``, :func:`time_cuda_graph`: the GPU's own
  time) or of plain eager calls (``timing: eager``, :func:`time_cuda`: kernel-launch cost
  included), a synchronize after every run.

Both report one statistic of the timed repeats (the profile's ``statistic``) and their
interquartile range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.dataclasses import dataclass
from torch import nn

from estimators.profiles import SETTINGS_CONFIG, HardwareProfile, parse_settings
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec

from .base import Backend, Measurement
from .timing import (
    PIN_CHOICES,
    REFERENCE_CALIBRATION_PASSES,
    REFERENCE_NETWORK,
    WEIGHT_SEED,
    LoopSettings,
    block_workload,
    check_choice,
    cpu_model,
    network_workload,
    pinned_to_core,
    prepare_for_inference,
    reference_ratios,
    resolve_pin_core,
    summarize,
    time_host,
    time_host_interleaved,
)

__all__ = ["TorchCPUBackend", "TorchCUDABackend", "prepare_for_inference", "time_cuda",
           "time_cuda_graph", "torch_threads"]


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
BLOCK_TIMINGS = ("isolated", "context")
"""How a torch-cpu build times its blocks: ``isolated``, each block's own module in groups of
unrelated blocks run round-robin (:meth:`TorchCPUBackend.measure_blocks`); ``context``, every
block of sampled whole networks inside the network's own forward pass
(:meth:`TorchCPUBackend.measure_network_blocks`)."""

BLOCK_ORDERS = ("fixed", "shuffled")
"""In what order a torch-cpu group of isolated blocks runs in each round of repeats: ``fixed``,
the same order every round (each block always after the same neighbour); ``shuffled``, a new
order every round (:func:`~estimators.backends.timing.time_host_interleaved`)."""

REFERENCES = ("none", "network")
"""What a torch-cpu measurement is timed against: ``none``, the plain wall clock; ``network``, a
fixed reference network (:data:`~estimators.backends.timing.REFERENCE_NETWORK`) run once in
every round of repeats, each repeat divided by the reference's in its round and scaled by the
reference's calibrated time (``reference_ms``)."""


BLOCK_GROUPS = ("sampled", "similar")
"""Which isolated blocks a torch-cpu build times together in one group: ``sampled``, blocks in
the order they were drawn (so a group mixes blocks of every size); ``similar``, blocks of one
memory footprint (:func:`~estimators.features.footprint`), so a block runs among blocks of its
own size, as it does among its neighbours inside a network; the groups are timed in a shuffled
order (:func:`~estimators.build.block_groups`)."""

_CPU_CHOICES = {"block_timing": BLOCK_TIMINGS, "block_order": BLOCK_ORDERS,
                "reference": REFERENCES, "block_groups": BLOCK_GROUPS}


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TorchCPUSettings(LoopSettings):
    """``threads`` intra-op threads (``torch.set_num_threads``), ``pin_core`` the core the
    measuring thread is pinned to (a core number, ``auto`` = the last allowed core, or
    ``none``; see :func:`~estimators.backends.timing.resolve_pin_core`), plus the shared loop
    settings; ``block_timing`` (:data:`BLOCK_TIMINGS`) how a build times blocks. Several
    measuring processes with ``auto`` would share that one core: measure a
    real CPU with one process (``--workers 1``), as its timings need anyway.

    ``block_order`` (:data:`BLOCK_ORDERS`) is the order of a group of isolated blocks in each
    round, ``block_groups`` (:data:`BLOCK_GROUPS`) which blocks form a group. ``reference``
    (:data:`REFERENCES`) times every workload against a fixed reference network;
    ``reference_ms`` is the reference's time that turns the ratios back into milliseconds (a
    build calibrates it once, may lower it to the reference's fastest repeat over the build,
    and keeps it in its manifest, so that the build and every evaluation of it share one
    scale; left unset, the back end calibrates it on first use)."""

    threads: int = Field(1, ge=1)
    pin_core: int | str = "auto"
    block_timing: str = "isolated"
    reference: str = "none"
    reference_ms: float | None = Field(None, gt=0.0)
    block_order: str = "fixed"
    block_groups: str = "sampled"

    @field_validator("block_timing", "block_order", "reference", "block_groups")
    @classmethod
    def _choice(cls, value: str, info: ValidationInfo) -> str:
        return check_choice(value, _CPU_CHOICES[str(info.field_name)])

    @field_validator("pin_core")
    @classmethod
    def _pin_core(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            return check_choice(value, PIN_CHOICES)
        if value < 0:
            raise ValueError("must be a core number >= 0, auto or none")
        return value

    @model_validator(mode="after")
    def _one_thread_when_pinned(self) -> TorchCPUSettings:
        if self.pin_core != "none" and self.threads > 1:
            raise ValueError(f"setting 'pin_core' would put all {self.threads} threads on one "
                             "core; use threads: 1 or pin_core: none")
        if self.reference != "none" and self.statistic == "min":
            raise ValueError("setting 'statistic: min' with a reference would pair the luckiest "
                             "repeat with an unlucky reference; use statistic: median")
        return self


class TorchCPUBackend(_ModuleBackend):
    """PyTorch eager fp32 on this machine's CPU, ``threads`` threads, wall-clock timing, the
    measuring thread pinned to one core while it measures (the previous affinity restored)."""

    name = "torch-cpu"
    settings_type = TorchCPUSettings
    settings: TorchCPUSettings

    def __init__(self, profile: HardwareProfile) -> None:
        super().__init__(profile)
        self.core = resolve_pin_core(self.settings.pin_core)
        self._reference: Callable[[], object] | None = None
        self._reference_ms = self.settings.reference_ms

    def measure_blocks(self, blocks: Sequence[BlockSpec]) -> list[Measurement]:
        """Blocks measured together, round-robin (:func:`time_host_interleaved`), so each runs
        after other blocks as it would inside a network."""
        work = [block_workload(b, self.settings.batch) for b in blocks]
        models = [prepare_for_inference(m) for m, _ in work]
        shuffle = (np.random.default_rng(WEIGHT_SEED) if self.settings.block_order == "shuffled"
                   else None)
        return self._timed([(lambda m=m, x=x: m(x)) for m, (_, x) in zip(models, work)],
                           shuffle)

    def reference_ms(self) -> float | None:
        """The reference's time that scales every ratio (the ``reference_ms`` setting, else
        calibrated here once: the fastest repeat of
        :data:`~estimators.backends.timing.REFERENCE_CALIBRATION_PASSES` passes of the
        reference on its own, pinned), or ``None`` without a reference."""
        if self.settings.reference == "none":
            return None
        if self._reference_ms is None:
            fn = self._reference_fn()
            with self._context():
                fastest = min(min(time_host(fn, self.settings))
                              for _ in range(REFERENCE_CALIBRATION_PASSES))
            self._reference_ms = float(fastest)
        return self._reference_ms

    def _reference_fn(self) -> Callable[[], object]:
        if self._reference is None:
            arch, num_classes, in_channels = REFERENCE_NETWORK
            module, x = network_workload(Architecture.from_string(arch), num_classes,
                                         in_channels, self.settings.batch)
            model = prepare_for_inference(module)
            self._reference = lambda: model(x)
        return self._reference

    def _timed(self, fns: Sequence[Callable[[], object]],
               shuffle: np.random.Generator | None = None) -> list[Measurement]:
        """``fns`` timed round-robin (in a new order every round with ``shuffle``), pinned,
        each summarized by the profile's statistic; with a reference, the reference runs once
        in every round (last, or at its shuffled place) and each repeat is divided by the
        reference's in its round (:func:`reference_ratios`); each measurement also carries the
        reference's fastest repeat (``reference_fastest_ms``)."""
        statistic = self.settings.statistic
        if self.settings.reference == "none":
            with self._context():
                samples = time_host_interleaved(fns, self.settings, shuffle)
            return [summarize(s, statistic) for s in samples]
        scale, reference = self.reference_ms(), self._reference_fn()
        assert scale is not None
        with self._context():
            *samples, ref = time_host_interleaved([*fns, reference], self.settings, shuffle)
        fastest = float(min(ref))
        return [dataclasses.replace(summarize(r, statistic), reference_fastest_ms=fastest)
                for r in reference_ratios(samples, ref, scale)]

    @property
    def times_blocks_in_context(self) -> bool:
        return self.settings.block_timing == "context"

    def measure_network_blocks(self, arch: Architecture, num_classes: int = 1000,
                               in_channels: int = 3) -> list[Measurement]:
        """Each block of a classifier network timed inside the network's forward pass.

        The network (:func:`network_workload`, the one :meth:`measure_network` times) runs as
        its :meth:`~searchspaces.model.Network.block_modules`, each prepared like a block on
        its own (:func:`prepare_for_inference`), one after another on the previous block's
        output, a host timer read between them; every repeat is a whole forward pass, the
        previous activation freed as the next is made, as in the network. The CPU runs
        synchronously, so the time between two reads is the block's time, with the caches,
        predictors and allocator state the blocks before it (and the previous pass) left:
        a block whose weights leave the cache inside this network pays for it here, which
        one timed among unrelated blocks does not. Repeats, warm-up and pinning are those of
        :meth:`measure_network`, so the per-block times add up to its time, up to one Python
        call per block. Returns one measurement per
        :func:`~searchspaces.layers.decompose` block, in order."""
        network, x = network_workload(arch, num_classes, in_channels, self.settings.batch)
        parts = [prepare_for_inference(m) for m in network.block_modules()]
        current: list[torch.Tensor] = [x]

        def step(i: int) -> None:
            current[0] = parts[i](x if i == 0 else current[0])

        return self._timed([partial(step, i) for i in range(len(parts))])

    def _measure(self, module: nn.Module, example: torch.Tensor) -> Measurement:
        model = prepare_for_inference(module)
        return self._timed([lambda: model(example)])[0]

    @contextmanager
    def _context(self) -> Iterator[None]:
        with (torch_threads(self.settings.threads), pinned_to_core(self.core),
              torch.inference_mode()):
            yield

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({
            "torch": torch.__version__,
            "threads": str(self.settings.threads),
            "pin_core": "none" if self.core is None else str(self.core),
            "batch": str(self.settings.batch),
            "block_timing": self.settings.block_timing,
            "reference": self.settings.reference,
            "block_order": self.settings.block_order,
            "block_groups": self.settings.block_groups,
            "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        })
        return env


# -- CUDA -------------------------------------------------------------------------------------
DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16,
                                  "fp32": torch.float32}
TIMINGS = ("graph", "eager")
"""``graph``: replays of a captured CUDA graph (:func:`time_cuda_graph`: the GPU's own time, what
a deployment under CUDA graphs, TensorRT or ``torch.compile(mode="reduce-overhead")`` sees);
``eager``: plain calls (:func:`time_cuda`: at batch 1 mostly the CPU's kernel-launch loop)."""


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TorchCUDASettings(LoopSettings):
    """GPU precision and layout, the timing method (:data:`TIMINGS`), plus the shared loop
    settings (more repeats: GPU runs are short). ``cudnn_benchmark`` lets cuDNN pick its fastest
    algorithm during the warm-up."""

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
    """PyTorch on an NVIDIA GPU in fp16/bf16, channels-last, CUDA-event timing of CUDA-graph
    replays (``timing: graph``) or of eager calls (``timing: eager``)."""

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
                if self.settings.timing == "graph":
                    samples = time_cuda_graph(model, x, self.settings)
                else:
                    samples = time_cuda(lambda: model(x), self.settings)
        finally:
            torch.backends.cudnn.benchmark = previous
        return summarize(samples, self.settings.statistic)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "dtype": self.settings.dtype,
            "timing": self.settings.timing,
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


def time_cuda_graph(model: Callable[[torch.Tensor], object], x: torch.Tensor,
                    loop: LoopSettings) -> list[float]:
    """Capture ``model(x)`` in a CUDA graph and time its replays with CUDA events.

    Steps (PyTorch's "CUDA Graphs" notes; the recipe of the shared H200 tables):

    1. ``max(loop.warmup, 1)`` eager calls on a side stream. Capture cannot run what a first
       call does: cuDNN autotuning (``torch.backends.cudnn.benchmark``) times candidate
       algorithms with synchronizes and allocations, and cuBLAS creates its handle and
       workspace lazily. The side stream is also the capture stream, so whatever the library
       keeps per stream already exists when capture starts;
    2. capture one call (``torch.cuda.graph`` on that stream). ``x`` is the graph's static
       input: the graph reads the memory ``x`` had at capture, which this function holds on to
       until the end;
    3. :func:`time_cuda` of the replays: ``loop.warmup`` untimed replays, then at least
       ``loop.repeats`` replays, and until they add up to ``loop.min_time_ms``, each between its
       own pair of CUDA events on the current stream, with a synchronize after each;
    4. free the graph and its private memory pool.

    One event pair per replay, from an idle GPU, measures one inference as a lone request sees
    it: the GPU's own kernel time plus the one graph launch (a few microseconds from the host's
    ``cudaGraphLaunch`` to the first kernel), but no Python and no per-kernel launch cost. It
    gives a distribution per workload (median and IQR). Timing N back-to-back replays between
    one pair instead would hide the graph launch behind the previous replay (the host enqueues
    ahead) and give only their mean: steady-state throughput time, a few microseconds lower per
    replay, which matters for the smallest blocks (~10 us). The per-replay launch is a fixed
    cost that every timed block pays once and a whole network pays once in all, part of why a
    network's blocks sum to slightly more than the network; the estimator's per-network
    overhead fit absorbs it. The shared H200 tables were measured one pair per replay, so this
    keeps fresh builds comparable with them.

    Call it under ``torch.inference_mode()`` (or ``no_grad``) so that capture records no
    autograd state, and with ``x`` on the current CUDA device. Returns the timed replays in ms.
    """
    if not isinstance(x, torch.Tensor) or not x.is_cuda:
        raise ValueError("time_cuda_graph needs the static input on a CUDA device, got "
                         f"{type(x).__name__} on {getattr(x, 'device', 'no device')}")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(loop.warmup, 1)):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    output: object = None
    try:
        with torch.cuda.graph(graph, stream=side):
            output = model(x)
        return time_cuda(graph.replay, loop)  # its warm-up and timed runs are replays
    finally:
        del output  # the graph's output lives in the graph's pool: drop it before the pool
        graph.reset()
