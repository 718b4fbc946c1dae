"""Shared helpers of the measuring back ends: the loop settings, the workloads they time (a block
or a whole network with a fixed random input), a wall-clock timing loop and its robust summary.

Every measuring back end reports one statistic of its timed repeats as the latency (the profile's
``statistic``: the *median* by default, so that one slow outlier, a context switch or a page
fault, does not move it; the *fastest* repeat on a shared CPU, where load only ever adds time)
and their *interquartile range* as ``spread_ms`` (the noise floor).
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from estimators.profiles import SETTINGS_CONFIG
from searchspaces.blocks import block_input_shape, make_module
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec
from searchspaces.model import Network, build_model

from .base import Measurement

WEIGHT_SEED = 0
"""Seed of the weights and inputs of every timed workload: the same block is the same workload."""


# -- settings ---------------------------------------------------------------------------------
def check_choice(value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (a settings field validator), else ``ValueError``."""
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


NETWORK_PASSES = 2
"""Timing passes over the whole networks of a build or an evaluation, on a back end that is not
deterministic, unless its profile sets ``network_passes``
(:func:`estimators.build.timing_passes`); each network keeps its fastest pass."""

STATISTICS = ("median", "min")
"""What one timing pass reports of its timed repeats (the ``statistic`` setting): their median,
or the fastest of them. On the shared 2-core CPU the fastest repeat, kept over 4 passes, put
0.95 of 40 networks' two timings within +-10% of each other against 0.70 for the median
(``benchmarks/cpu_timing_statistic.py``, docs/estimators.md)."""

STATISTIC = "median"
"""The statistic of a profile that sets none, and of every build made before the setting existed
(a manifest without ``statistic``)."""

BLOCK_PASSES = 1
"""Timing passes over the blocks a build times in isolation, on a back end that is not
deterministic, unless its profile sets ``block_passes``; each block keeps its fastest pass
(docs/estimators.md, "Block timing passes", measures 1 against 2 on torch-cpu)."""


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class LoopSettings:
    """What every measuring back end shares: ``warmup`` untimed runs, then at least ``repeats``
    timed runs, continuing until the timed runs have taken ``min_time_ms`` (so that a very fast
    block gets enough samples for a stable median), on a batch of ``batch`` inputs; and the
    protocol a build and an evaluation follow by default on this target: ``network_passes``
    passes over whole networks, ``block_passes`` over isolated blocks (a noisy CPU needs more
    than a GPU timed by CUDA graphs; the command-line options override them), and the
    ``statistic`` (:data:`STATISTICS`) a pass reports of its repeats."""

    warmup: int = Field(5, ge=0)
    repeats: int = Field(25, ge=3)
    min_time_ms: float = Field(20.0, ge=0.0)
    batch: int = Field(1, ge=1)
    network_passes: int = Field(NETWORK_PASSES, ge=1)
    block_passes: int = Field(BLOCK_PASSES, ge=1)
    statistic: str = STATISTIC

    @field_validator("statistic")
    @classmethod
    def _statistic(cls, value: str) -> str:
        return check_choice(value, STATISTICS)


# -- timing -----------------------------------------------------------------------------------
def summarize(samples_ms: Sequence[float], statistic: str = STATISTIC) -> Measurement:
    """The ``statistic`` (:data:`STATISTICS`: median or fastest) and the interquartile range of
    the timed repeats."""
    if len(samples_ms) == 0:
        raise ValueError("no timed repeats to summarize")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    values = np.asarray(samples_ms, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25.0, 50.0, 75.0])
    latency = median if statistic == "median" else values.min()
    return Measurement(latency_ms=float(latency), spread_ms=float(max(q3 - q1, 0.0)))


def time_host(fn: Callable[[], object], loop: LoopSettings) -> list[float]:
    """Run ``fn`` ``loop.warmup`` times, then time it with ``time.perf_counter_ns`` at least
    ``loop.repeats`` times and until the timed runs add up to ``loop.min_time_ms``.
    Returns the timed durations in milliseconds."""
    return time_host_interleaved([fn], loop)[0]


def time_host_interleaved(fns: Sequence[Callable[[], object]], loop: LoopSettings,
                          shuffle: np.random.Generator | None = None) -> list[list[float]]:
    """Time several workloads round-robin: each repeat runs every ``fn`` once, in turn, and
    times each run on its own. A workload thus always follows *other* work, with the caches
    and predictors that other work left — as a block runs inside a network — instead of
    following itself. With ``shuffle`` every round runs the workloads in a new order drawn from
    that generator, so that a workload follows a different one each round, not always the same
    neighbour (whose weights may have just evicted its own). Returns the timed durations in ms,
    one list per ``fn``, in the order of ``fns``."""
    for _ in range(loop.warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    total_ns, min_ns = 0, int(loop.min_time_ms * 1e6) * len(fns)
    order = np.arange(len(fns))
    while len(samples[0]) < loop.repeats or total_ns < min_ns:
        if shuffle is not None:
            order = shuffle.permutation(len(fns))
        for i in order:
            start = time.perf_counter_ns()
            fns[i]()
            elapsed = time.perf_counter_ns() - start
            total_ns += elapsed
            samples[i].append(elapsed / 1e6)
    return samples


# -- a reference workload ---------------------------------------------------------------------
REFERENCE_NETWORK = ("r24_w0.5_d16:stem_c32_s1-ibn_k5_e1_c16_r2_s1-fibn_k3_e3_c32_r3_s1-"
                     "conv_k5_c16_r3_s2-fibn_k5_e3_c48_r4_s2-conv_k5_c112_r4_s1-ibn_k3_e4_c192_r3_s2-"
                     "conv_k3_c480_r2_s1-head_c1280", 10, 3)
"""The fixed network (architecture string, classes, input channels) a back end with
``reference: network`` times beside everything it measures, round by round: about 4 ms on one
core of the project's 2-core VM, the first network ``benchmarks/cpu_timing_statistic.py
--reference`` drew (seed 0) and measured as a reference."""

REFERENCE_CALIBRATION_PASSES = 3
"""Timing passes of the reference on its own when a back end calibrates its scale; the scale is
the fastest repeat of all of them."""


def reference_ratios(samples: Sequence[Sequence[float]], reference: Sequence[float],
                     scale_ms: float) -> list[np.ndarray]:
    """Each workload's timed repeats divided by the reference's repeat of the same round, times
    ``scale_ms``: a slowdown of the machine that lasts a round (load from other processes, a
    lower clock) slows the reference alike and divides out. The result is in the reference's
    milliseconds: a workload that took 0.5x the reference's time reads ``0.5 * scale_ms``."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.size == 0 or np.any(ref <= 0):
        raise ValueError("the reference needs a positive time in every round")
    return [np.asarray(s, dtype=np.float64) / ref * scale_ms for s in samples]


# -- core pinning -----------------------------------------------------------------------------
PIN_CHOICES = ("auto", "none")
"""``pin_core`` values besides a core number: ``auto`` (the last core this process may run on)
and ``none`` (no pinning)."""


def resolve_pin_core(setting: int | str) -> int | None:
    """The core that a ``pin_core`` setting names, or ``None`` for no pinning.

    An int must be a core this process may run on (``os.sched_getaffinity``); ``auto`` is the
    last of those (the first cores of a Linux machine usually take more of its interrupts and
    housekeeping). Where the operating system cannot pin (no ``os.sched_setaffinity``: macOS,
    Windows) this warns and returns ``None``: the measurement goes on unpinned.
    """
    if setting == "none":
        return None
    if not hasattr(os, "sched_setaffinity"):
        warnings.warn(f"pin_core {setting!r}: this operating system cannot pin a process to a "
                      "core (no os.sched_setaffinity); measuring unpinned", RuntimeWarning,
                      stacklevel=2)
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if setting == "auto":
        return allowed[-1]
    if setting not in allowed:
        raise ValueError(f"setting 'pin_core' is {setting!r}, but this process may run only on "
                         f"cores {', '.join(map(str, allowed))}")
    return int(setting)


@contextmanager
def pinned_to_core(core: int | None) -> Iterator[None]:
    """Run the body on ``core`` alone, restoring the previous set of allowed cores after;
    ``None`` leaves the affinity alone.

    ``os.sched_setaffinity(0, ...)`` sets the calling thread's affinity (threads it starts later
    inherit it), which covers a 1-thread PyTorch measurement: the calling thread runs every
    kernel. Pinned, the measured code is never migrated to another core mid-run, which would
    cost it its warm caches and branch predictors.
    """
    if core is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


# -- workloads --------------------------------------------------------------------------------
def block_workload(block: BlockSpec, batch: int = 1) -> tuple[nn.Module, torch.Tensor]:
    """The eval-mode module of one block (:func:`~searchspaces.blocks.make_module`) and a random
    input of its shape (``(N, cin)`` for the classifier, see :func:`random_input`); the weights
    are seeded by :data:`WEIGHT_SEED` without touching the caller's torch random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        module = make_module(block).eval()
    return module, random_input(block_input_shape(block, batch))


def network_workload(arch: Architecture, num_classes: int, in_channels: int, batch: int = 1
                     ) -> tuple[Network, torch.Tensor]:
    """The eval-mode whole network (:func:`~searchspaces.model.build_model`) and a random input,
    seeded like :func:`block_workload`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        module = build_model(arch, num_classes, in_channels).eval()
    return module, random_input((batch, in_channels, arch.resolution, arch.resolution))


def random_input(shape: Sequence[int]) -> torch.Tensor:
    """A standard-normal fp32 tensor of ``shape`` from its own generator seeded by
    :data:`WEIGHT_SEED` (the global torch random state is not touched)."""
    generator = torch.Generator().manual_seed(WEIGHT_SEED)
    return torch.randn(tuple(shape), generator=generator)


# -- preparation ----------------------------------------------------------------------------
_NOOPS = (nn.Identity, nn.Dropout)


def prepare_for_inference(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with every ``Conv2d -> BatchNorm2d`` pair folded into one
    conv (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`) and ``Identity``/``Dropout`` calls
    removed, as a deployment graph has them. The input module is left untouched.

    Works on the graph that ``torch.fx`` traces, so it applies alike to a single block and to a
    whole network; a BatchNorm whose conv output is also used elsewhere is kept.
    """
    graph_module = fx.symbolic_trace(_eval_copy(module))
    graph = graph_module.graph
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        target = graph_module.get_submodule(node.target)
        if isinstance(target, _NOOPS):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif isinstance(target, nn.BatchNorm2d):
            source = node.args[0]
            if not (isinstance(source, fx.Node) and source.op == "call_module"
                    and len(source.users) == 1):
                continue
            conv = graph_module.get_submodule(source.target)
            if not isinstance(conv, nn.Conv2d):
                continue
            _replace_submodule(graph_module, source.target, fuse_conv_bn_eval(conv, target))
            node.replace_all_uses_with(source)
            graph.erase_node(node)
    graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module.eval()


def _eval_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).eval()


def _replace_submodule(root: nn.Module, target: str, new: nn.Module) -> None:
    parent_name, _, attr = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


# -- environment ------------------------------------------------------------------------------
def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo``, or ``unknown`` where there is none."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return "unknown"
