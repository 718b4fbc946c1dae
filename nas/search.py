"""Multishot search on Ray Tune: the strategy proposes, the estimator rejects, ASHA trains.

:func:`run_search` checks everything that can be checked before a cluster is touched (hardware
profile, space, estimator built for that space and parallelism factor, dataset, strategy and its
parameters), then runs the trials on Ray Tune (a local Ray instance unless ``address`` names a
cluster) with the driver-side :class:`~nas.tracking.callback.TrackingCallback` owning the MLflow
runs. Objectives: ``accuracy`` (max) and predicted ``latency_ms`` (min); budgets are constraints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import ClusterError, SearchConfig
from nas.signals import held, sigterm_raises
from nas.tracking import FRONT_KEYS, SearchTracker, check_tracking_uri

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """The checked pieces of a search, before any Ray or MLflow work."""

    config: SearchConfig
    space: Any
    parallelism_factor: int
    estimator_dir: str
    num_classes: int
    in_channels: int
    reference_ms: float
    baseline_ms: float
    search_space: Any = None  # what the strategy searches: the space, or a dict of free choices
    fixed: dict[str, Any] = field(default_factory=dict)  # choices held at the baseline's

    def trial_context(self) -> Any:
        """The :class:`~nas.trial.TrialContext` every trial of this search gets (and the
        strategy's ``prior`` prices with)."""
        from nas.trial import TrialContext

        return TrialContext(self.config.model_dump(), self.estimator_dir,
                            self.parallelism_factor, self.num_classes, self.in_channels,
                            self.fixed)


@dataclass(frozen=True)
class SearchSummary:
    parent_run_id: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    trials: int
    completed: int
    stopped: int
    rejected: int
    failed: int
    hypervolume: float
    reference_ms: float
    seconds: float
    tune_path: str = ""
    pareto: list[dict[str, Any]] = field(default_factory=list)
    # hypervolume after each finished trial that counts toward `trials` (with count_rejected
    # false, the rejected ones do not)
    curve: list[float] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)  # every trained candidate
    count_rejected: bool = True  # the config's: did rejections use up trials?
    metric: str = "accuracy"  # the task's metric, whose value the front's "accuracy" holds
    # compute (train_seconds so far + proxy seconds so far) at each point of `curve`
    compute: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"parent_run_id": self.parent_run_id, "experiment": self.experiment,
                "experiment_id": self.experiment_id, "tracking_uri": self.tracking_uri,
                "trials": self.trials, "completed": self.completed, "stopped": self.stopped,
                "rejected": self.rejected, "failed": self.failed,
                # run_id: the trial's MLflow run, what `hwnas train --run` takes
                "pareto": [{**{k: p[k] for k in FRONT_KEYS}, "run_id": p.get("run_id")}
                           for p in self.pareto],
                "metric": self.metric,
                "hypervolume": self.hypervolume, "reference_latency_ms": self.reference_ms,
                "seconds": round(self.seconds, 2),
                "compute_seconds": round(self.compute[-1], 2) if self.compute else 0.0,
                "tune_path": self.tune_path}


def prepare(config: SearchConfig) -> Prepared:
    """Resolve and cross-check the config; every problem is a one-line ``ValueError``."""
    from estimators.latency import LatencyEstimator, resolve_estimator
    from estimators.profiles import load_profile
    from nas.strategies.tune_adapter import create_searcher
    from nas.task_base import task_data
    from searchspaces.genome import TASK_HEADS
    from searchspaces.spaces import get_space

    check_tracking_uri(config.tracking.uri)
    profile = load_profile(config.hardware.profile)
    p = profile.parallelism_factor
    space = get_space(config.space.name, p, config.space.curated, TASK_HEADS[config.task.kind])
    folder = resolve_estimator(config.hardware.estimator)
    estimator = LatencyEstimator.load(folder, space=config.space.name, parallelism_factor=p,
                                      intervals=False)
    if estimator.profile != profile.name:
        raise ValueError(f"estimator {config.hardware.estimator} predicts profile "
                         f"{estimator.profile!r}, but the config targets {profile.name!r}")
    if config.task.data_dir:  # trials may run elsewhere than the driver's working directory
        config = config.with_overrides(
            **{"task.data_dir": str(Path(config.task.data_dir).expanduser().resolve())})
    smallest = min(space.dimensions()["resolution"])
    data = task_data(config.task, smallest, config.seed)
    search_space, fixed = subspace(space, config.space.free, config.space.choices)
    baseline_ms = estimator.predict(space.baseline(), data.num_classes, data.in_channels)
    reference = (config.tracking.reference_latency_ms or config.budgets.latency_ms
                 or 2.0 * baseline_ms)
    prepared = Prepared(config, space, p, str(folder.resolve()), data.num_classes,
                        data.in_channels, float(reference), float(baseline_ms), search_space,
                        fixed)
    # Build the searcher once here so a bad strategy parameter fails before Ray starts.
    create_searcher(config.strategy.name, search_space, OBJECTIVES, seed=config.seed,
                    **{**config.strategy.params,
                       **strategy_inputs(config, prepared.trial_context())})
    return prepared


def strategy_inputs(config: SearchConfig, context: Any) -> dict[str, Any]:
    """What a strategy is given besides its config parameters, by what its class takes (see
    :mod:`nas.strategies.screening`): ``prior`` (``evolution``), each candidate's parameters
    and predicted latency, ``None`` over a budget, and ``proxy`` (``evolution``'s GP, late),
    the untrained network's score by the proxy the ``proxy`` parameter names (default synflow;
    ``null``: none); ``score`` and ``cost`` (``zeroshot``, ``hybrid``), a
    :class:`~nas.proxies.scorer.ProxyScorer` on the search's task and the trial's budget check
    as a predicted latency. Empty for the other strategies. These replace the config
    parameters of the same name."""
    import inspect

    from nas.strategies.registry import REGISTRY

    spec = REGISTRY.get(config.strategy.name)
    factory = None if spec is None else spec.ask_tell
    takes = () if factory is None else inspect.signature(factory).parameters
    from nas.proxies import check_proxy
    from nas.proxies.scorer import ProxyOf, ProxyScorer

    if "prior" in takes and "score" not in takes:
        from nas.strategies.screening import DEFAULT_PROXY
        from nas.trial import SizeAndLatency

        inputs: dict[str, Any] = {"prior": SizeAndLatency(context)}
        if "proxy" in takes:
            name = config.strategy.params.get("proxy", DEFAULT_PROXY)
            inputs["proxy"] = None if name is None else ProxyOf(ProxyScorer(context), name)
        return inputs
    if "score" not in takes:
        return {}
    from nas.trial import PredictedLatency

    if "proxy" in config.strategy.params:
        check_proxy(config.strategy.params["proxy"])
    return {"score": ProxyScorer(context), "cost": PredictedLatency(context)}


def subspace(space: Any, free: list[str] | None, choices: dict[str, list[Any]]
             ) -> tuple[Any, dict[str, Any]]:
    """``(what the strategy searches, the choices held fixed)``: the whole space when ``free``
    is ``None``, else a dict of the free dimensions' choices (narrowed by ``choices``) with every
    other dimension at the space baseline's value."""
    dims = space.dimensions()
    if free is None:
        if choices:
            raise ValueError("space.choices narrows free dimensions; list them in space.free")
        return space, {}
    unknown = [k for k in [*free, *choices] if k not in dims]
    if unknown:
        raise ValueError(f"space {space.label} has no dimension {', '.join(unknown)}")
    if not free:
        raise ValueError("space.free lists no dimension to search")
    searched = {}
    for key in free:
        values = tuple(choices.get(key, dims[key]))
        bad = [v for v in values if v not in dims[key]]
        if bad or not values:
            raise ValueError(f"space.choices.{key}: {bad or 'empty'} not among "
                             f"{list(dims[key])}")
        searched[key] = values
    base = space.to_choices(space.baseline())
    return searched, {k: v for k, v in base.items() if k not in searched}


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(f"{prefix}.{key}" if prefix else key, item)
    else:
        yield prefix, value


@contextlib.contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[bool]:
    """Connect to ``address`` (or ``$RAY_ADDRESS``) or start a local Ray (shut down afterwards
    if started here); inside an already initialised Ray, use that one. Several searches in one
    session (``hwnas compare``, ``hwnas ablation``) share one Ray this way. Yields whether the
    Ray in use is a cluster joined (one whose nodes can be lost) rather than one this process
    started.

    ``ray.init`` replaces the SIGTERM handler with its own ``sys.exit(15)`` for good; a Python
    handler installed before it is put back, so a SIGTERM between two searches reaches the
    caller's :func:`~nas.signals.sigterm_raises` (run ended ``KILLED``, exit status 143)."""
    import signal

    import ray

    if ray.is_initialized():
        yield len([n for n in ray.nodes() if n.get("Alive")]) > 1
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    handler = (signal.getsignal(signal.SIGTERM)
               if threading.current_thread() is threading.main_thread() else None)
    address = address or os.environ.get("RAY_ADDRESS")  # set inside `ray job submit`
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ClusterError(f"cannot connect to the Ray cluster at {address}: {first}"
                               ) from None
    else:
        # "local": a fresh Ray of our own, even when `ray start` left a cluster on this host
        ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False,
                 **kwargs)
    if callable(handler):  # a Python handler (over SIG_DFL, Ray's exit is the better one)
        signal.signal(signal.SIGTERM, handler)
    try:
        yield bool(address)
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, with one line, when nothing listens at a Ray ``address``
    (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is left to Ray). Ray's own client retries
    an unreachable GCS for minutes, printing C++ warnings, before it gives up."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address}: {reason} (start one there with "
            f"`ray start --head --port {port}`, or leave out --address for a local Ray)"
        ) from None


def trial_fit_problem(nodes: Sequence[Mapping[str, Any]], cpus: float, gpus: float
                      ) -> str | None:
    """Why no alive node of ``nodes`` (:func:`ray.nodes`) can hold one trial asking for
    ``cpus`` CPUs and ``gpus`` GPUs, or ``None`` when one can. Ray would keep such trials
    pending forever, the search never starting."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in alive):
        return None
    most_cpu = max((r.get("CPU", 0) for r in alive), default=0)
    most_gpu = max((r.get("GPU", 0) for r in alive), default=0)
    hint = " (resources.gpus: 0 trains on CPUs)" if gpus and not most_gpu else ""
    return (f"a trial asks for {cpus:g} CPU and {gpus:g} GPU (resources in the config), but no "
            f"Ray node has that (at most {most_cpu:g} CPU and {most_gpu:g} GPU on one node)"
            + hint)


def _open_tracking_store(uri: str) -> None:
    """Import MLflow and open (for a new SQLite file: create and migrate) the tracking store,
    which MLflow caches per URI, so that the search's tracker finds it ready. Run on a thread
    while Ray starts, which takes seconds of the driver waiting on the processes it launched.
    An error here is left for the tracker to raise."""
    with contextlib.suppress(Exception):
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri)


def _trial_name(trial: Any) -> str:
    """Short trial names and folders (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


STATE_FILE = "hwnas_search.json"
REJECTED_PER_TRIAL = 10  # count_rejected: false rejects at most this many x trials


def find_search(storage_path: str | Path, name: str) -> Path:
    """The Tune experiment folder of search ``name``: the exact run name
    (``quickstart-20261126-214927``) or a search name, whose latest run is taken."""
    storage = Path(storage_path).resolve()
    exact = storage / name
    if (exact / STATE_FILE).is_file():
        return exact
    runs = sorted((p for p in storage.glob(f"{name}-*") if (p / STATE_FILE).is_file()),
                  key=lambda p: p.name)
    if not runs:
        raise ValueError(f"no search {name!r} to resume under {storage} (looked for {name} and "
                         f"{name}-YYYYmmdd-HHMMSS with {STATE_FILE})")
    return runs[-1]


def load_search_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        SearchConfig.model_validate(state["config"])
        return state
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as err:
        raise ValueError(f"damaged search state {folder / STATE_FILE}: {err}") from None


def sync_trial_counter(folder: Path) -> int | None:
    """Make Tune's trial generator count every trial of the saved experiment state.

    Tune writes ``experiment_state-*.json`` (the trials) before ``search_gen_state-*.json`` (how
    many trials the generator has created). A driver killed between the two writes leaves the
    counter one trial behind, and the resumed search would run one trial more than it was asked
    for. Returns the corrected count, or ``None`` when nothing needed fixing."""
    from pickle import UnpicklingError

    try:  # Tune's own reader and writer of that file (it is a cloudpickle named .json)
        from ray.tune.utils.util import _atomic_save, _load_newest_checkpoint
    except ImportError:
        return None  # a Ray without them: leave Tune's state as it is

    states = sorted(folder.glob("experiment_state-*.json"))
    gens = sorted(folder.glob("search_gen_state-*.json"))
    if not states or not gens:
        return None
    try:
        trials = len(json.loads(states[-1].read_text())["trial_data"])
        saved = _load_newest_checkpoint(str(folder), "search_gen_state-*.json")
    except (OSError, ValueError, KeyError, EOFError, UnpicklingError):
        return None  # let Tune report its own restore error
    if not isinstance(saved, dict) or not isinstance(saved.get("counter"), int) \
            or saved["counter"] >= trials:
        return None
    saved["counter"] = trials
    _atomic_save(saved, str(folder), gens[-1].name, f"tmp-{gens[-1].name}")
    return trials


def _searcher_and_scheduler(config: SearchConfig, prep: Prepared, context: Any
                            ) -> tuple[Any, Any, int, Any]:
    """The Tune searcher (the strategy, told rejected candidates through its constraints,
    wrapped in the within-budget quota and the concurrency limit the config asks for), the
    scheduler (ASHA or FIFO), how many samples Tune draws, and the zero-shot scorer if any
    (whose seconds the tracker counts as overhead)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from nas.strategies.quota import WithinBudgetQuota
    from nas.strategies.tune_adapter import create_searcher
    from nas.trial import BudgetViolations, WithinBudgets

    inputs = strategy_inputs(config, context)
    searcher: Any = create_searcher(config.strategy.name, prep.search_space, OBJECTIVES,
                                    seed=config.seed, constraints=BudgetViolations(config.budgets),
                                    **{**config.strategy.params, **inputs})
    samples = config.trials
    if not config.count_rejected:
        samples += REJECTED_PER_TRIAL * config.trials
        searcher = WithinBudgetQuota(searcher, config.trials, WithinBudgets(context),
                                     max_rejected=REJECTED_PER_TRIAL * config.trials)
    if config.resources.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=config.resources.max_concurrent)
    training = config.training
    if training.asha and training.epochs > training.grace_period:
        scheduler: Any = ASHAScheduler(time_attr="epochs", metric="accuracy", mode="max",
                                       max_t=training.epochs, grace_period=training.grace_period,
                                       reduction_factor=training.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    # the proxy scorer whose seconds the search charges to its compute, if any
    scorer = inputs.get("score") or getattr(inputs.get("proxy"), "scorer", None)
    return searcher, scheduler, samples, scorer


def run_search(config: SearchConfig | None = None, *, address: str | None = None,
               on_update: Callable[[SearchTracker], None] | None = None,
               tune_output: Any = None, prepared: Prepared | None = None,
               resume: str | Path | None = None, extra_tags: dict[str, str] | None = None,
               nest_under: str | None = None) -> SearchSummary:
    """Run the search described by ``config``, or continue the one in Tune experiment folder
    ``resume`` (see :func:`find_search`) with its saved config: trials finished before the
    driver died are kept (in Tune, in the strategy's restored state and in MLflow), the ones
    in flight run again, and the search ends with the number of trials it was asked for.

    ``tune_output`` receives what Ray Tune prints (default: stderr, so stdout stays for
    results); ``prepared`` is :func:`prepare`'s result when the caller has it already;
    ``extra_tags`` go on the parent run, which ``nest_under`` (a run id) nests under another
    run (``hwnas compare``)."""
    from ray import tune

    from nas.tracking.callback import TrackingCallback, register_live
    from nas.trial import run_trial
    from nas.tune_state import (
        SnapshotSearchGenerator,
        register_snapshot_folder,
        restore_snapshot,
        saved_trial_ids,
    )

    start = time.perf_counter()
    state = None
    if resume is not None:
        folder = Path(resume)
        state = load_search_state(folder)
        config = SearchConfig.model_validate(state["config"])
    if config is None:
        raise ValueError("run_search needs a config or a search to resume")
    prep = prepared if prepared is not None and prepared.config == config else prepare(config)
    space = prep.space
    training = config.training
    context = prep.trial_context()
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context),
                                    {"cpu": config.resources.cpus, "gpu": config.resources.gpus})
    storage = Path(config.storage_path).resolve()
    run_name = state["run_name"] if state else f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = storage / run_name if state is None else Path(resume)  # type: ignore[arg-type]

    def arch_of(choices: dict) -> str:
        return space.from_choices({**prep.fixed, **choices}).to_string()

    # Save Tune's experiment state (trials, searcher) every second instead of every 10+ s, so
    # a killed driver loses at most the last second's events (see --resume). Not 0: Tune then
    # saves on every pass of its event loop, ten times a second even when nothing happened,
    # which cost the quickstart's driver a sixth of a core (benchmarks/trial_speed.py --search).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    opening = threading.Thread(target=_open_tracking_store, args=(config.tracking.uri,),
                               daemon=True)
    opening.start()
    with ray_session(address) as joined:
        import ray

        problem = trial_fit_problem(ray.nodes(), config.resources.cpus, config.resources.gpus)
        if problem and not joined:
            raise ClusterError(problem)
        if problem:  # a cluster's autoscaler may still add such a node
            logger.warning("%s; its trials wait until such a node joins", problem)
        opening.join()
        # Tune errors, without a retry, a trial whose reused worker dies while being reset for
        # it (found by tests/test_cluster.py): on a cluster, where nodes are lost, every trial
        # starts its own worker unless the config says otherwise.
        reuse = config.resources.reuse_actors
        reuse = not joined if reuse is None else reuse
        status = "FAILED"
        tracker: SearchTracker | None = None
        # SIGTERM raises from here on, not only while Tune runs: a search killed while it
        # sets up (its parent run open, Tune not started) still ends its run KILLED
        with sigterm_raises() as signals:
            try:
                if state is not None:
                    with held():  # the parent run exists once this is assigned
                        tracker = SearchTracker(
                            config.tracking.uri, config.tracking.experiment, run_name,
                            prep.reference_ms, budget_ms=config.budgets.latency_ms,
                            resume_run_id=state["parent_run_id"], metric=config.task.metric)
                    register_live(tracker, arch_of, on_update)  # for the callback Tune unpickles
                    register_snapshot_folder(run_name, folder)  # for the generator it unpickles
                    if restore_snapshot(folder):
                        logger.info("restored Tune's last complete state save in %s", folder)
                    sync_trial_counter(folder)
                    tuner = tune.Tuner.restore(str(folder), trainable=trainable,
                                               resume_unfinished=True, resume_errored=False)
                    # Tune's saved state is the truth: a trial MLflow saw finish after Tune's last
                    # state save is unknown to Tune and would be counted twice.
                    tracker.forget_unknown(saved_trial_ids(tuner, folder))
                else:
                    params = dict(_flat("", config.model_dump()))
                    tags = {"hwnas.strategy": config.strategy.name, "hwnas.space": space.label,
                            "hwnas.profile": config.hardware.profile,
                            "hwnas.estimator": config.hardware.estimator,
                            "hwnas.dataset": config.task.dataset, "hwnas.seed": str(config.seed),
                            **(extra_tags or {})}
                    if nest_under:
                        tags["mlflow.parentRunId"] = nest_under
                    searcher, scheduler, samples, scorer = _searcher_and_scheduler(
                        config, prep, context)
                    with held():  # the parent run exists once this is assigned
                        tracker = SearchTracker(
                            config.tracking.uri, config.tracking.experiment, run_name,
                            prep.reference_ms,
                            params=params, tags=tags, budget_ms=config.budgets.latency_ms,
                            overhead_seconds=None if scorer is None else (lambda: scorer.seconds),
                            metric=config.task.metric)
                    tracker.log_config(config.model_dump())
                    callback = TrackingCallback(tracker, arch_of, training.epochs, on_update)
                    register_snapshot_folder(run_name, folder)
                    tuner = tune.Tuner(
                        trainable,
                        tune_config=tune.TuneConfig(search_alg=SnapshotSearchGenerator(
                                                        searcher, run_name),
                                                    scheduler=scheduler,
                                                    num_samples=samples, reuse_actors=reuse,
                                                    trial_name_creator=_trial_name,
                                                    trial_dirname_creator=_trial_name),
                        run_config=tune.RunConfig(
                            name=run_name, storage_path=str(storage), callbacks=[callback],
                            verbose=0,
                            failure_config=tune.FailureConfig(
                                max_failures=config.resources.max_failures)),
                    )
                    # What --resume needs, written before the first trial (atomically).
                    from searchspaces.files import atomic_write

                    atomic_write(folder / STATE_FILE, json.dumps({
                        "run_name": run_name, "parent_run_id": tracker.parent_id,
                        "tracking_uri": config.tracking.uri,
                        "experiment": config.tracking.experiment,
                        "config": config.model_dump()}, indent=2).encode())
                with contextlib.redirect_stdout(tune_output or sys.stderr):
                    tuner.fit()
                status = "FINISHED"
            except (KeyboardInterrupt, SystemExit):
                status = "KILLED"
                raise
            finally:
                if signals.received is not None:
                    status = "KILLED"
                if tracker is not None:  # a second SIGTERM waits until the runs are closed
                    with sigterm_raises(), held():
                        tracker.close(status)  # no run stays RUNNING, whatever happened
                if signals.received is not None:  # whatever Ray made of the SystemExit
                    raise SystemExit(128 + signals.received)

    return SearchSummary(
        parent_run_id=tracker.parent_id, experiment=config.tracking.experiment,
        experiment_id=tracker.experiment_id, tracking_uri=config.tracking.uri,
        trials=len(tracker.finished), completed=tracker.count("completed"),
        stopped=tracker.count("stopped"), rejected=tracker.count("rejected"),
        failed=tracker.count("failed"), hypervolume=tracker.hypervolume,
        reference_ms=prep.reference_ms, seconds=time.perf_counter() - start,
        tune_path=str(folder), pareto=tracker.front(),
        curve=tracker.counted_curve(config.count_rejected),
        compute=tracker.counted_compute(config.count_rejected),
        points=[{k: p.get(k) for k in FRONT_KEYS} for p in tracker.candidates()],
        count_rejected=config.count_rejected, metric=config.task.metric)
