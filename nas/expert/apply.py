"""Apply mined rules to a new base architecture, keeping only the edits the estimator confirms.

The seed work (the Amazon study on an edge accelerator) reached a 50% latency reduction with
rules read off earlier searches (fuse early IBNs, align channels to P, depthwise -> standard conv
where the chip favours it, a width multiplier) against 53% for a full search. :func:`apply_rules`
is that expert step, made checkable:

1. Rules come from a rules file (:mod:`nas.expert.rules`), strongest first. A rule whose median
   accuracy effect is worse than ``-max_accuracy_drop`` points is skipped.
2. Greedily, in file order, a stage rule visits each stage at its position (early / middle /
   late thirds); :func:`nas.expert.edits.edit` proposes candidates (both aligned channel counts
   for ``channels_aligned``), each priced by the latency estimator and the exact memory model.
   The lowest-latency candidate within the budgets is kept only if the predicted latency
   strictly drops: a rule mined elsewhere is a hint, the estimator of *this* target decides.
   A global rule (``width_mult``) is one such step for the whole network.
3. Every step is recorded: kept, rejected (and why), skipped, or n/a (nothing to change).

A budget (peak activation bytes, parameters) rejects an edit whose result exceeds it and that
raises that quantity: a base already over budget can still improve, never get worse.

:func:`train_pair` trains the base and the result briefly with the search's own training code
(:func:`nas.tasks.train`, no Ray), same seed and epochs, to compare their accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from estimators.latency import load_estimator
from estimators.memory import memory_report
from nas.expert.edits import describe, edit, stage_value
from nas.expert.rules import Rule, RuleSet, stages_at
from searchspaces.genome import Architecture

MIB = 1024 * 1024
MIN_GAIN = 1e-9  # a kept edit lowers predicted latency by more than this fraction
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


@dataclass(frozen=True)
class Step:
    """One attempt of one rule on one stage (``stage`` is None for a global rule, or for a rule
    skipped before any stage was tried)."""

    rule: str  # the rule's label, "early: block = fibn"
    knob: str
    value: Any
    stage: int | None
    outcome: str  # kept | rejected | skipped | n/a
    reason: str
    before: str  # the stage string (or "w1.0") before the step
    after: str  # the best candidate's ("" when there was none)
    latency_before_ms: float
    latency_after_ms: float | None  # the best candidate's prediction
    delta_ms: float | None
    delta_pct: float | None
    params: int | None  # of the best candidate
    peak_activation_bytes: int | None


@dataclass(frozen=True)
class Applied:
    base: str
    arch: str
    estimator: str
    space: str
    profile: str
    parallelism_factor: int
    rules_space: str
    rules_profile: str
    rules_parallelism_factor: int
    num_classes: int
    in_channels: int
    max_accuracy_drop: float
    base_latency_ms: float
    latency_ms: float
    reduction_pct: float  # latency reduction in percent of the base
    base_params: int
    params: int
    base_peak_activation_bytes: int
    peak_activation_bytes: int
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # compatibility notes (another profile or space)

    def kept(self) -> list[Step]:
        return [s for s in self.steps if s.outcome == "kept"]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = [asdict(s) for s in self.steps]
        out["notes"] = list(self.notes)
        return out


def check_compatible(rules: RuleSet, estimator: Any) -> list[str]:
    """Notes on where the rules come from another target; ``ValueError`` when their parallelism
    factor differs (aligned channels would mean another thing on this chip)."""
    if rules.parallelism_factor != estimator.parallelism_factor:
        raise ValueError(f"the rules were mined for profile {rules.profile} (P="
                         f"{rules.parallelism_factor}) but the estimator targets "
                         f"{estimator.profile} (P={estimator.parallelism_factor})")
    notes = []
    if rules.profile != estimator.profile:
        notes.append(f"the rules were mined for profile {rules.profile}, the estimator targets "
                     f"{estimator.profile} (same P={estimator.parallelism_factor}); the "
                     "estimator still confirms every edit")
    if rules.space != estimator.space:
        notes.append(f"the rules were mined in space {rules.space}, the estimator was built for "
                     f"{estimator.space}")
    return notes


@dataclass(frozen=True)
class _Priced:
    arch: Architecture
    latency_ms: float
    params: int
    peak: int


def _over_budget(cand: _Priced, current: _Priced, max_peak_bytes: int | None,
                 max_params: int | None) -> str:
    """Why ``cand`` breaks a budget ("" when it does not)."""
    why = []
    if max_peak_bytes is not None and cand.peak > max_peak_bytes and cand.peak > current.peak:
        why.append(f"peak activations {cand.peak / MIB:.2f} MiB > {max_peak_bytes / MIB:g} MiB")
    if max_params is not None and cand.params > max_params and cand.params > current.params:
        why.append(f"params {cand.params / 1e6:.3f} M > {max_params / 1e6:g} M")
    return "; ".join(why)


def _try(rule: Rule, stage: int | None, current: _Priced, estimator: Any, num_classes: int,
         in_channels: int, max_peak_bytes: int | None, max_params: int | None,
         ) -> tuple[Step, _Priced]:
    """One greedy step; returns its record and the architecture after it."""
    p = estimator.parallelism_factor
    before = describe(current.arch, stage)
    record = {"rule": rule.label, "knob": rule.knob, "value": rule.value, "stage": stage,
              "before": before, "latency_before_ms": current.latency_ms}
    candidates = edit(current.arch, stage, rule.knob, rule.value, p)
    if not candidates:
        where = "the network" if stage is None else f"stage {stage}"
        has = stage_value(current.arch, 0 if stage is None else stage, rule.knob, p)
        if has == rule.value:
            why = f"{where} already has it"
        elif rule.knob == "channels_aligned" and not rule.value:
            why = "misaligning channels is never proposed"
        elif rule.knob == "channels_aligned":
            why = "no channel count within +-50% builds a multiple of P"
        else:
            why = f"does not apply to {where} ({before})"
        return Step(**record, outcome="n/a", reason=why, after="", latency_after_ms=None,
                    delta_ms=None, delta_pct=None, params=None,
                    peak_activation_bytes=None), current
    latencies = estimator.predict_many(candidates, num_classes, in_channels).tolist()
    priced = []
    for cand, ms in zip(candidates, latencies):
        mem = memory_report(cand, num_classes, in_channels)
        priced.append(_Priced(cand, float(ms), mem.params, mem.peak_activation_bytes))
    priced.sort(key=lambda c: c.latency_ms)
    fits = [c for c in priced if not _over_budget(c, current, max_peak_bytes, max_params)]
    best = fits[0] if fits else priced[0]
    delta = best.latency_ms - current.latency_ms
    pct = 100.0 * delta / current.latency_ms if current.latency_ms else 0.0
    if not fits:
        outcome, reason = "rejected", _over_budget(best, current, max_peak_bytes, max_params)
    elif best.latency_ms < current.latency_ms * (1.0 - MIN_GAIN):
        outcome, reason = "kept", f"latency {pct:+.2f}%"
    else:
        outcome, reason = "rejected", f"no latency gain ({pct:+.2f}%)"
    step = Step(**record, outcome=outcome, reason=reason, after=describe(best.arch, stage),
                latency_after_ms=best.latency_ms, delta_ms=delta, delta_pct=pct,
                params=best.params, peak_activation_bytes=best.peak)
    return step, (best if outcome == "kept" else current)


def apply_rules(base: Architecture, rules: RuleSet, estimator: Any, *, num_classes: int = 1000,
                in_channels: int = 3, max_accuracy_drop: float = 1.0,
                max_peak_bytes: int | None = None, max_params: int | None = None) -> Applied:
    """Apply ``rules`` to ``base`` greedily (see module doc).

    ``estimator``: a loaded :class:`~estimators.latency.LatencyEstimator`, a folder or a shipped
    name. ``max_accuracy_drop`` is in accuracy points (1.0 = 0.01 accuracy).
    """
    if max_accuracy_drop < 0:
        raise ValueError(f"max accuracy drop is in points and must be >= 0, got "
                         f"{max_accuracy_drop}")
    estimator, label = load_estimator(estimator)
    notes = check_compatible(rules, estimator)
    mem = memory_report(base, num_classes, in_channels)
    start = _Priced(base, float(estimator.predict(base, num_classes, in_channels)), mem.params,
                    mem.peak_activation_bytes)
    if max_peak_bytes is not None and start.peak > max_peak_bytes:
        notes.append(f"the base's peak activations {start.peak / MIB:.2f} MiB already exceed "
                     f"the budget of {max_peak_bytes / MIB:g} MiB; edits may not raise them")
    if max_params is not None and start.params > max_params:
        notes.append(f"the base's {start.params / 1e6:.3f} M params already exceed the budget "
                     f"of {max_params / 1e6:g} M; edits may not add any")
    current = start
    steps: list[Step] = []
    for rule in rules.rules:
        if rule.effect.accuracy_points < -max_accuracy_drop:
            steps.append(Step(
                rule=rule.label, knob=rule.knob, value=rule.value, stage=None,
                outcome="skipped", reason=f"accuracy {rule.effect.accuracy_points:+.2f} points "
                f"< -{max_accuracy_drop:g}", before="", after="",
                latency_before_ms=current.latency_ms, latency_after_ms=None, delta_ms=None,
                delta_pct=None, params=None, peak_activation_bytes=None))
            continue
        targets: list[int | None] = ([None] if rule.position == "global"
                                     else list(stages_at(rule.position, len(base.stages))))
        for stage in targets:
            step, current = _try(rule, stage, current, estimator, num_classes, in_channels,
                                 max_peak_bytes, max_params)
            steps.append(step)
    return Applied(
        base=base.to_string(), arch=current.arch.to_string(), estimator=label,
        space=estimator.space, profile=estimator.profile,
        parallelism_factor=estimator.parallelism_factor, rules_space=rules.space,
        rules_profile=rules.profile, rules_parallelism_factor=rules.parallelism_factor,
        num_classes=num_classes, in_channels=in_channels, max_accuracy_drop=max_accuracy_drop,
        base_latency_ms=start.latency_ms, latency_ms=current.latency_ms,
        reduction_pct=(100.0 * (1.0 - current.latency_ms / start.latency_ms)
                       if start.latency_ms else 0.0),
        base_params=start.params, params=current.params,
        base_peak_activation_bytes=start.peak, peak_activation_bytes=current.peak,
        steps=tuple(steps), notes=tuple(notes))


# -- brief training of both --------------------------------------------------------------------
@dataclass(frozen=True)
class TrainedPair:
    """Validation accuracy of the base and the new architecture after the same brief training."""

    dataset: str
    epochs: int
    seed: int
    device: str
    base_accuracy: float
    accuracy: float
    base_train_seconds: float
    train_seconds: float

    @property
    def accuracy_change_points(self) -> float:
        return 100.0 * (self.accuracy - self.base_accuracy)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_change_points": self.accuracy_change_points}


def load_train_config(path: str | Path | None) -> Any:
    """The search config whose task and training ``--train`` uses (default: the quickstart's,
    else the built-in defaults)."""
    from nas.config import load_config

    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_config(path)


def training_setup(config: str | Path | None, train: bool, resolution: int,
                   num_classes: int | None = None, in_channels: int | None = None
                   ) -> tuple[Any, int, int]:
    """The config that ``train`` (``hwnas expert apply --train``) trains with (``None`` without
    ``train``) and the (num_classes, in_channels) to price the architectures at: the dataset's
    with ``train`` (given values must agree with it), else the given ones or 1000 and 3.
    ``ValueError`` for a contradiction, or for a ``config`` given without ``train``."""
    if not train:
        if config is not None:
            raise ValueError("--config only matters with --train")
        return None, num_classes or 1000, in_channels or 3
    cfg = load_train_config(config)
    classes, channels = dataset_shape(cfg, resolution)
    for flag, given, real in (("--num-classes", num_classes, classes),
                              ("--in-channels", in_channels, channels)):
        if given is not None and given != real:
            raise ValueError(f"{flag} {given} contradicts the dataset {cfg.task.dataset} "
                             f"({real}); drop it with --train")
    return cfg, classes, channels


def dataset_shape(config: Any, resolution: int) -> tuple[int, int]:
    """(num_classes, in_channels) of the config's dataset."""
    from nas.tasks import make_task

    data = make_task(config.task, config.seed).data(resolution)
    return data.num_classes, data.in_channels


def train_one(arch: Architecture, config: Any, device: str | None = None) -> dict[str, float]:
    """Train ``arch`` on ``config``'s task as one search trial trains it (:func:`nas.tasks.train`,
    seed ``config.seed``, torch at ``config.resources.cpus`` threads); the last epoch's metrics
    (``accuracy``, ``train_seconds``, ...)."""
    import torch

    from nas.tasks import make_task, train

    if device is None:
        use_gpu = config.resources.gpus > 0 and torch.cuda.is_available()
        device = "cuda" if use_gpu else "cpu"
    task = make_task(config.task, config.seed)
    last: dict[str, float] = {"device": device}  # type: ignore[dict-item]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(config.resources.cpus)))  # as a search trial runs
    try:
        train(task, arch, config.training, config.seed, torch.device(device),
              lambda epoch, metrics: last.update(metrics))
    finally:
        torch.set_num_threads(threads)
    return last


def train_pair(base: Architecture, new: Architecture, config: Any,
               device: str | None = None) -> TrainedPair:
    """Train ``base`` and ``new`` on ``config``'s task with its training settings, the same
    seed (``config.seed``: same weight-init stream and batch order) and the same epochs, as one
    search trial trains (:func:`nas.tasks.train`), and return their final validation accuracy.
    ``device``: "cpu" or "cuda" (default: CUDA where ``config.resources.gpus`` asks for it and
    one exists). Torch uses ``config.resources.cpus`` threads meanwhile, as a trial does."""
    results = [train_one(arch, config, device) for arch in (base, new)]
    return TrainedPair(
        dataset=config.task.dataset, epochs=config.training.epochs, seed=config.seed,
        device=str(results[0]["device"]), base_accuracy=float(results[0]["accuracy"]),
        accuracy=float(results[1]["accuracy"]),
        base_train_seconds=float(results[0]["train_seconds"]),
        train_seconds=float(results[1]["train_seconds"]))
