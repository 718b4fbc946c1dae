"""One Ray Tune trial: check a candidate against the budgets, then train it briefly.

The constraint check needs no device: latency comes from the learned estimator, parameters,
MACs and peak activation memory from the exact memory model. A candidate over a budget is
reported at once with ``rejected = 1`` (it costs milliseconds), ``epochs = 0`` (so ASHA never
records it at a rung) and ``accuracy = 0`` (an unusable model); every searcher is told it is
infeasible, with how far it is over each budget (:mod:`nas.strategies.constraints`), so it is
never bred from. Otherwise the trial trains and reports after
every epoch, each report carrying all of ``accuracy``, ``latency_ms``, ``params``,
``peak_activation_bytes``, ``macs``, ``epochs``, ``train_seconds`` and ``rejected``: a trial
that ASHA stops ends with a complete record, and ``batch_size`` and ``oom_batch``.

A trial that runs out of device memory is trained again at half the batch (:mod:`nas.packing`):
the retry's reports carry ``oom_batch``, the batch size that failed. One that runs out at both
reports once with ``failed = 1``, ``failure_reason`` (``out of memory at batch 8``) and
``epochs = 0``; the strategy is told it failed, as for a rejected candidate.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.config import BudgetConfig, SearchConfig
from nas.packing import check_simulated, limit_memory, train_with_oom_retry
from searchspaces.genome import TASK_HEADS, Architecture

MIB = 1024 * 1024
BUDGETED = (("latency_ms", "latency", "ms", ".3f"),
            ("peak_activation_mib", "peak activations", "MiB", ".2f"),
            ("params_m", "params", "M", ".2f"))
"""``(BudgetConfig field, label, unit, format)`` of each budget a candidate is checked against."""


@dataclass(frozen=True)
class Cost:
    """What a candidate costs on the target, known before any training."""

    latency_ms: float
    params: int
    peak_activation_bytes: int
    macs: int

    def measured(self) -> dict[str, float]:
        """The budgeted quantities, named and in the units of :class:`BudgetConfig`."""
        return {"latency_ms": self.latency_ms,
                "peak_activation_mib": self.peak_activation_bytes / MIB,
                "params_m": self.params / 1e6}

    def violations(self, budgets: BudgetConfig) -> list[str]:
        """Human-readable reasons this cost breaks ``budgets`` (empty when it fits)."""
        values, out = self.measured(), []
        for name, label, unit, fmt in BUDGETED:
            budget = getattr(budgets, name)
            if budget is not None and values[name] > budget:
                out.append(f"{label} {values[name]:{fmt}} {unit} > {budget:g} {unit}")
        return out

    def constraint_values(self, budgets: BudgetConfig) -> dict[str, float]:
        """``value - budget`` per budget set (ms, MiB, M params): positive means over by that
        much (Optuna's convention for constraints), exactly where :meth:`violations` names a
        reason."""
        values = self.measured()
        return {name: values[name] - getattr(budgets, name) for name, *_ in BUDGETED
                if getattr(budgets, name) is not None}


def candidate_cost(arch: Architecture, estimator: Any, num_classes: int,
                   in_channels: int) -> Cost:
    from estimators.memory import memory_report

    memory = memory_report(arch, num_classes, in_channels)
    return Cost(latency_ms=float(estimator.predict(arch, num_classes, in_channels)),
                params=memory.params, peak_activation_bytes=memory.peak_activation_bytes,
                macs=memory.macs)


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its config; small and picklable (sent once per actor)."""

    config: dict[str, Any]  # SearchConfig.model_dump()
    estimator_dir: str
    parallelism_factor: int
    num_classes: int
    in_channels: int
    fixed: dict[str, Any] = field(default_factory=dict)  # choices outside space.free

    @functools.cached_property
    def search(self) -> SearchConfig:
        return SearchConfig.model_validate(self.config)


@functools.lru_cache(maxsize=4)
def _space(name: str, parallelism_factor: int, curated: bool, head: str = "head") -> Any:
    from searchspaces.spaces import get_space

    return get_space(name, parallelism_factor, curated, head)


@functools.lru_cache(maxsize=4)
def _estimator(folder: str) -> Any:
    from estimators.latency import LatencyEstimator

    return LatencyEstimator.load(folder, intervals=False)  # a trial prices points only


@functools.lru_cache(maxsize=4)
def _task(task_json: str, seed: int) -> Any:
    from nas.config import TaskConfig
    from nas.tasks import make_task

    return make_task(TaskConfig.model_validate_json(task_json), seed)


def task_of(context: TrialContext) -> Any:
    """The search's task, built once per process."""
    return _task(context.search.task.model_dump_json(), context.search.seed)


def architecture(context: TrialContext, config: dict[str, Any]) -> Architecture:
    """The candidate ``config`` stands for (the space is loaded once per process)."""
    search = context.search
    space = _space(search.space.name, context.parallelism_factor, search.space.curated,
                   TASK_HEADS[search.task.kind])
    return space.from_choices({**context.fixed, **config})


def price(context: TrialContext, config: dict[str, Any]) -> tuple[Architecture, Cost, list[str]]:
    """The candidate ``config`` stands for, its cost, and the budgets it breaks (none: it fits).
    The estimator and the space are loaded once per process."""
    search = context.search
    arch = architecture(context, config)
    cost = candidate_cost(arch, _estimator(context.estimator_dir), context.num_classes,
                          context.in_channels)
    return arch, cost, cost.violations(search.budgets)


@dataclass(frozen=True)
class WithinBudgets:
    """The trial's own budget check as a picklable predicate on a config, for the driver
    (:class:`~nas.strategies.quota.WithinBudgetQuota`)."""

    context: TrialContext

    def __call__(self, config: dict[str, Any]) -> bool:
        return not price(self.context, config)[2]


@dataclass(frozen=True)
class PredictedLatency:
    """The predicted latency (ms) of a config, ``None`` when it breaks a budget: what the
    zero-shot strategies know of a candidate's cost before training
    (:mod:`nas.strategies.screening`)."""

    context: TrialContext

    def __call__(self, config: dict[str, Any]) -> float | None:
        _arch, cost, reasons = price(self.context, config)
        return None if reasons else cost.latency_ms


@dataclass(frozen=True)
class SizeAndLatency:
    """``(parameters, predicted latency in ms)`` of a config, ``None`` when it breaks a budget:
    what :class:`~nas.strategies.evolution.Evolution` picks its first trials by (the parameter
    count is exact, from the genome; neither needs training or torch)."""

    context: TrialContext

    def __call__(self, config: dict[str, Any]) -> tuple[float, float] | None:
        _arch, cost, reasons = price(self.context, config)
        return None if reasons else (float(cost.params), float(cost.latency_ms))


@dataclass(frozen=True)
class BudgetViolations:
    """A finished trial's constraint values (:meth:`Cost.constraint_values`) from the cost its
    result reports, for :class:`~nas.strategies.constraints.ConstraintFeedback` (picklable)."""

    budgets: BudgetConfig

    def __call__(self, result: Mapping[str, Any]) -> dict[str, float]:
        cost = Cost(latency_ms=float(result["latency_ms"]), params=int(result["params"]),
                    peak_activation_bytes=int(result["peak_activation_bytes"]),
                    macs=int(result.get("macs", 0)))
        return cost.constraint_values(self.budgets)


def trial_seed(seed: int, arch: str) -> int:
    """Weight-init/shuffle seed: the search seed and the architecture (stable across runs)."""
    return (seed * 1_000_003 + zlib.crc32(arch.encode())) % (2**31)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, musl)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_host_memory() -> bool:
    """Give the memory a finished trial freed back to the operating system; whether the C
    library could (glibc's ``malloc_trim``).

    A trial worker runs trial after trial (Tune's ``reuse_actors``). PyTorch's freed tensors go
    back to glibc's heaps, which keep them, so the worker's resident memory only ever grows. In a
    16-candidate quickstart search (41 trials, 3 epochs, 2 workers) the largest worker peaked
    at 3.2 GB and ended at 2.6 GB; trimmed after every trial, 1.8 GB and 1.3 GB, with the same
    candidates and accuracies and no time lost (``benchmarks/trial_speed.py --search --before
    REV``, docs/results.md). Without it a long search on a shared node ends with Ray's memory
    monitor killing a worker, and with it the search (Tune does not retry that)."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# Tune reuses a trial's worker for the next trial only once the trial's thread has ended, and
# waits TUNE_FUNCTION_THREAD_TIMEOUT_S (default 2 s) for it; past that, the next trial errors,
# with no retry and no callback ("reset_config() to be implemented"). A trial stopped after its
# last report (ASHA at max_t) still runs its ``finally`` (release_host_memory), which on busy
# cores took longer than 2 s: one of 8 trials of tests/test_search.py's search was lost so.
THREAD_EXIT_TIMEOUT_S = "120"


def allow_slow_thread_exit() -> None:
    """Let this worker wait :data:`THREAD_EXIT_TIMEOUT_S` for a finished trial's thread before
    reusing the worker (read by Tune in the worker process, when the next trial resets it;
    a value the user set is kept)."""
    import os

    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", THREAD_EXIT_TIMEOUT_S)


def _node_id() -> str:
    """The Ray node this trial runs on (several nodes may share one IP address)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _report_surrogate(task: Any, arch: Architecture, seed: int, base: dict[str, Any]) -> None:
    """Score ``arch`` untrained with the NASWOT proxy on 32 training images (seeded)."""
    import time

    import torch
    from ray import tune

    from nas.proxies.scorer import minibatch
    from nas.surrogate import surrogate_accuracy

    start = time.perf_counter()
    data = task.data(arch.resolution)
    images, _labels = minibatch(data.train, 32, seed)
    torch.manual_seed(seed)
    accuracy = surrogate_accuracy(task.model(arch, data), images)
    tune.report({**base, "accuracy": accuracy, "epochs": 0, "surrogate": 1,
                 "train_seconds": time.perf_counter() - start, "rejected": 0,
                 "reject_reason": ""})


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Tune function trainable (``tune.with_parameters(run_trial, context=...)``)."""
    import torch
    from ray import tune

    allow_slow_thread_exit()
    search = context.search
    arch, cost, reasons = price(context, config)
    base = {"arch": arch.to_string(), "latency_ms": cost.latency_ms, "params": cost.params,
            "peak_activation_bytes": cost.peak_activation_bytes, "macs": cost.macs,
            "node_id": _node_id()}
    if reasons:
        tune.report({**base, "accuracy": 0.0, "epochs": 0, "train_seconds": 0.0,
                     "rejected": 1, "reject_reason": "; ".join(reasons)})
        return

    resources = search.resources
    cpus = max(1, int(resources.cpus))
    torch.set_num_threads(cpus)
    use_gpu = resources.gpus > 0 and torch.cuda.is_available()
    device = torch.device("cuda" if use_gpu else "cpu")
    limit_memory(resources.gpus, device)  # a packed trial keeps to its share of the GPU
    from nas.tasks import train

    task = task_of(context)
    seed = trial_seed(search.seed, base["arch"])
    if search.training.surrogate:
        _report_surrogate(task, arch, seed, base)
        return

    def attempt(batch_size: int, extra: dict[str, Any]) -> None:
        def report(epoch: int, metrics: dict[str, float]) -> None:
            tune.report({**base, **metrics, **extra, "batch_size": batch_size, "epochs": epoch,
                         "rejected": 0, "reject_reason": ""})

        check_simulated(batch_size, cost.peak_activation_bytes, resources.simulated_memory_mib)
        update: dict[str, Any] = {"batch_size": batch_size}
        fast_batch = search.training.memory_batch_size
        if fast_batch is not None:  # a retry halves the in-memory path's batch alike
            update["memory_batch_size"] = max(1, fast_batch * batch_size
                                              // search.training.batch_size)
        training = search.training.model_copy(update=update)
        train(task, arch, training, seed, device, report)

    try:
        oom = train_with_oom_retry(attempt, search.training.batch_size, device)
    finally:
        release_host_memory()
    if oom is not None:  # out of memory at the batch size and at half of it: told as a failure
        tune.report({**base, "accuracy": 0.0, "epochs": 0, "train_seconds": 0.0, "rejected": 0,
                     "reject_reason": "", "failed": 1, "failure_reason": oom.reason,
                     "oom_batch": oom.first_batch, "batch_size": oom.batch_size})
