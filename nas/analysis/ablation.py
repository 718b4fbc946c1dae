"""The seed work's ablation by one command: multiplier search, fusion search, and both.

From the space's MobileNetV2-shaped baseline, each arm's search frees a different part of the
genome while everything else stays at the baseline's value:

- ``multiplier``: only the global width multiplier (``width_mult``);
- ``fusion``: only the IBN -> fused-IBN choice of each stage whose baseline block is an IBN
  (``sN_block`` in {ibn, fibn});
- ``both``: the two together;
- ``io`` (not run by default): ``both`` plus the input and output dimensions, the input
  ``resolution`` and the head's output dimension where the task has one (``head_scales`` of a
  detection head, ``head_stride`` of a segmentation head). The seed's segmentation search
  varied these too, and the input resolution is the strongest knob on peak activation memory,
  which a memory budget (``minimise="memory"``) is about.

For each, the answer is the candidate with the least of the minimised quantity (predicted
latency by default; peak activation memory with ``minimise="memory"``, ties broken by latency)
whose task metric (accuracy, mAP@0.5 or mIoU, held in ``accuracy``) is within ``tolerance`` (0.5
points by default) of the baseline's; its latency and memory reductions against the baseline,
and which stages it fused. The seed work (an Amazon study on an edge accelerator) reported
14% / 35% / 53% for the first three arms; its finding was that early stages fuse and late ones
do not. Its case studies: 53% less latency for a presence detector, 51% for a segmenter, and
47% less memory for a classifier.

``pins`` move the baseline off the space's own on dimensions no arm is about (say
``head_scales=1``, a one-scale detector, against the space's two-scale baseline); every arm that
does not free a pinned dimension holds it there.

Budgets are off for the baseline; each arm's only budget is the baseline's value of the
minimised quantity (its predicted latency, or its peak activation memory), so a candidate
worse than the baseline there (which can never be the answer) is rejected before any training
and costs no training time. ASHA is off: every trained candidate gets its full epochs, since the
answer is read at equal metric.

The metric here is what the config's training gives (or the NASWOT proxy with ``--surrogate``):
brief training on a small dataset is noisy, so read the tolerance against that noise.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.config import SearchConfig
from nas.search import SearchSummary, prepare, ray_session, run_search
from searchspaces.spaces import SearchSpace

ARMS = ("multiplier", "fusion", "both", "io")
DEFAULT_ARMS = ("multiplier", "fusion", "both")
"""The seed work's three arms; ``io`` is asked for by name."""
MINIMISED = {"latency": "latency_ms", "memory": "peak_activation_bytes"}
"""What an ablation may minimise at equal metric, and the candidates' key holding it."""


@dataclass(frozen=True)
class ArmResult:
    arm: str
    trials: int
    arch: str | None  # the chosen candidate (None: none within the tolerance)
    accuracy: float | None  # the task's metric (Ablation.metric names it)
    latency_ms: float | None
    reduction: float | None  # 1 - latency / baseline latency
    fused_stages: list[int]
    run_id: str
    rejected: int = 0  # trials rejected before training (worse than the baseline)
    peak_activation_bytes: int | None = None
    memory_reduction: float | None = None  # 1 - peak activation / the baseline's


@dataclass(frozen=True)
class Ablation:
    ablation_id: str
    run_id: str
    baseline_arch: str
    baseline_accuracy: float
    baseline_latency_ms: float
    tolerance: float
    surrogate: bool
    arms: list[ArmResult]
    plot: str = ""  # the PNG beside the JSON result (also an artifact of the ablation run)
    metric: str = "accuracy"  # the task's metric, whose value `accuracy` holds
    minimise: str = "latency"  # a key of MINIMISED: what each arm's pick has the least of
    baseline_peak_activation_bytes: int = 0
    pins: dict[str, Any] = field(default_factory=dict)  # the baseline's choices off the space's

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def arm_space(space: Any, arm: str) -> tuple[list[str], dict[str, list[Any]]]:
    """``(free dimensions, narrowed choices)`` of one arm."""
    base = space.to_choices(space.baseline())
    blocks = [k for k, v in base.items() if k.endswith("_block") and v == "ibn"]
    fusion = ({k: ["ibn", "fibn"] for k in blocks})
    if arm == "multiplier":
        return ["width_mult"], {}
    if arm == "fusion":
        return blocks, fusion
    if arm == "both":
        return ["width_mult", *blocks], fusion
    if arm == "io":
        outputs = [space.head_dimension] if space.head_dimension else []
        return ["width_mult", *blocks, "resolution", *outputs], fusion
    raise ValueError(f"unknown ablation arm {arm!r}; known: {', '.join(ARMS)}")


def _size(space: Any, free: list[str], choices: dict[str, list[Any]]) -> int:
    dims = space.dimensions()
    return math.prod(len(choices.get(k, dims[k])) for k in free)


def pick(points: list[dict[str, Any]], floor: float,
         minimise: str = "latency") -> dict[str, Any] | None:
    """The point with accuracy >= ``floor`` and the least predicted latency, or with
    ``minimise="memory"`` the least peak activation memory (ties, common when the peak sits in
    a layer the arm does not change, broken by latency)."""
    ok = [p for p in points if p["accuracy"] >= floor]
    key = MINIMISED[minimise]
    return min(ok, key=lambda p: (p[key], p["latency_ms"])) if ok else None


@dataclass(frozen=True)
class AblationPlan:
    """A checked ablation request (:func:`plan_ablation`), run by :func:`run_ablation`."""

    config: SearchConfig
    space: SearchSpace
    tolerance: float
    arms: tuple[str, ...] = DEFAULT_ARMS
    minimise: str = "latency"
    pins: dict[str, Any] = field(default_factory=dict)  # the baseline's choices off the space's


def pinned(free: list[str], choices: dict[str, list[Any]],
           pins: dict[str, Any]) -> tuple[list[str], dict[str, list[Any]]]:
    """An arm's ``(free, choices)`` with each pinned dimension it does not free held at its pin
    (a free dimension with one choice)."""
    held = {k: [v] for k, v in pins.items() if k not in free}
    return [*free, *held], {**choices, **held}


def parse_pins(space: Any, pins: dict[str, Any]) -> dict[str, Any]:
    """``pins`` (values may be strings, as typed on a command line) as the space's own choices;
    a dimension or value the space lacks is a one-line ``ValueError``."""
    dims, out = space.dimensions(), {}
    for key, value in pins.items():
        if key not in dims:
            raise ValueError(f"cannot pin {key!r}: the space has no such dimension")
        if key == "width_mult" or key.endswith("_block"):
            raise ValueError(f"cannot pin {key}: the arms search it from the space's baseline")
        match = [c for c in dims[key] if str(c) == str(value)]
        if not match:
            raise ValueError(f"cannot pin {key}={value}: its choices are "
                             f"{', '.join(map(str, dims[key]))}")
        out[key] = match[0]
    return out


def plan_ablation(config: SearchConfig, *, trials: int | None = None, surrogate: bool = False,
                  tolerance: float = 0.005, arms: tuple[str, ...] = DEFAULT_ARMS,
                  minimise: str = "latency", pins: dict[str, Any] | None = None
                  ) -> AblationPlan:
    """The ablation's base config, checked before anything runs: every problem (config,
    tracking URI, estimator, data, arms, what to minimise) is a one-line ``ValueError``."""
    from nas.tracking import check_tracking_uri

    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if minimise not in MINIMISED:
        raise ValueError(f"unknown quantity to minimise {minimise!r}; known: "
                         f"{', '.join(MINIMISED)}")
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms or len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct names among {', '.join(ARMS)}; got "
                         f"{', '.join(arms) or 'none'}")
    # ASHA off: every candidate trains its full epochs. The answer is read at equal accuracy,
    # and a brief training's first epoch says little about its last (a width-0.5 net at chance
    # after one epoch reached the baseline's accuracy after three).
    # count_rejected true: an arm's search proposes at most its whole (small) space, each
    # candidate once, and the ones slower than the baseline, rejected, count toward it.
    base = config.with_overrides(**{"trials": trials, "training.surrogate": surrogate or None,
                                    "training.asha": False, "count_rejected": True})
    # the ablation measures latency at equal accuracy: no budget may reject the baseline
    base = SearchConfig.model_validate({**base.model_dump(), "budgets": {}})
    check_tracking_uri(base.tracking.uri)
    space = prepare(base).space
    return AblationPlan(base, space, tolerance, tuple(arms), minimise,
                        parse_pins(space, pins or {}))


def run_ablation(plan: AblationPlan, *, out_dir: str | Path = "ablations",
                 address: str | None = None, tune_output: Any = None,
                 on_arm: Any = None) -> Ablation:
    """Run the baseline and the arms of ``plan`` (see module doc) under one MLflow run."""
    from mlflow.tracking import MlflowClient

    from nas.signals import held
    from nas.tracking import experiment_id
    from nas.tracking.store import ended_run
    from nas.trial import MIB

    base, space, tolerance, minimise = plan.config, plan.space, plan.tolerance, plan.minimise
    metric = base.task.metric
    baseline = space.baseline()
    ab_id = f"{base.name}-ablation-{time.strftime('%Y%m%d-%H%M%S')}"
    client = MlflowClient(base.tracking.uri)
    exp = experiment_id(client, base.tracking.experiment, base.tracking.uri)
    run_id = client.create_run(exp, run_name=ab_id, tags={
        "hwnas.role": "ablation", "hwnas.ablation_id": ab_id, "hwnas.minimise": minimise,
        "hwnas.surrogate": str(base.training.surrogate)}).info.run_id

    def search(name: str, free: list[str], choices: dict[str, list[Any]],
               count: int, budgets: dict[str, float] | None = None) -> SearchSummary:
        cfg = base.model_dump()
        cfg["space"].update(free=free, choices=choices)
        if budgets is not None:
            cfg["budgets"] = budgets
        cfg.update(trials=count, name=f"{ab_id}-{name}")
        return run_search(SearchConfig.model_validate(cfg), nest_under=run_id,
                          extra_tags={"hwnas.ablation_id": ab_id, "hwnas.arm": name},
                          tune_output=tune_output)

    with ended_run(client, run_id):  # FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED
        with ray_session(address):
            width = baseline.width_mult
            ref = search("baseline", *pinned(["width_mult"], {"width_mult": [width]},
                                             plan.pins), 1)
            if not ref.points:
                raise ValueError("the baseline itself could not be evaluated (see its MLflow "
                                 "child run)")
            base_point = ref.points[0]
            # A candidate worse than the baseline in the minimised quantity can never be the
            # answer (the baseline itself qualifies), so it is rejected before any training.
            budgets = ({"latency_ms": base_point["latency_ms"] * (1 + 1e-9)}
                       if minimise == "latency" else
                       {"peak_activation_mib": base_point["peak_activation_bytes"] / MIB
                        * (1 + 1e-9)})
            arms, points = [], {}
            for arm in plan.arms:
                if on_arm is not None:
                    on_arm(arm, None)
                free, choices = pinned(*arm_space(space, arm), plan.pins)
                count = min(base.trials, _size(space, free, choices))
                summary = search(arm, free, choices, count, budgets)
                points[arm] = summary.points
                best = pick(summary.points + [base_point],
                            base_point["accuracy"] - tolerance, minimise)
                arms.append(_arm_result(arm, summary, best, base_point))
                if on_arm is not None:
                    on_arm(arm, arms[-1])
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        png = plot_ablation(base_point, arms, points, tolerance, folder / f"{ab_id}.png",
                            f"{ab_id} ({base.hardware.profile})", metric=metric,
                            minimise=minimise)
        result = Ablation(ab_id, run_id, base_point["arch"], base_point["accuracy"],
                          base_point["latency_ms"], tolerance, base.training.surrogate, arms,
                          str(png), metric, minimise, int(base_point["peak_activation_bytes"]),
                          plan.pins)
        path = folder / f"{ab_id}.json"
        path.write_text(json.dumps(result.to_json(), indent=2))
        with held():  # a SIGTERM waits for these writes
            client.log_artifact(run_id, str(path))
            client.log_artifact(run_id, str(png))
            for a in arms:
                if a.reduction is not None:
                    client.log_metric(run_id, f"reduction.{a.arm}", a.reduction)
                    client.log_metric(run_id, f"memory_reduction.{a.arm}", a.memory_reduction)
        return result


def _arm_result(arm: str, summary: SearchSummary, best: dict[str, Any] | None,
                base: dict[str, Any]) -> ArmResult:
    """One arm's answer: its pick ``best`` (None: nothing within the tolerance) against the
    baseline point ``base``."""
    if best is None:
        return ArmResult(arm, summary.trials, None, None, None, None, [], summary.parent_run_id,
                         summary.rejected)
    return ArmResult(
        arm, summary.trials, best["arch"], best["accuracy"], best["latency_ms"],
        1 - best["latency_ms"] / base["latency_ms"], _fused(best["arch"]),
        summary.parent_run_id, summary.rejected, int(best["peak_activation_bytes"]),
        1 - best["peak_activation_bytes"] / base["peak_activation_bytes"])


def plot_ablation(base: dict[str, Any], arms: list[ArmResult],
                  points: dict[str, list[dict[str, Any]]], tolerance: float, path: Path,
                  title: str, metric: str = "accuracy", minimise: str = "latency") -> Path:
    """Every candidate of every arm (the task's metric against the minimised quantity), the
    baseline, the metric's floor and each arm's pick; and each arm's latency and memory
    reductions as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    key = MINIMISED[minimise]
    scale = 1.0 if minimise == "latency" else 1 / 1024  # peak activation in KiB

    def x(p: dict[str, Any] | ArmResult) -> float:
        value = p[key] if isinstance(p, dict) else getattr(p, key)
        return value * scale

    colors = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green", "tab:purple")))
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=100,
                                   gridspec_kw={"width_ratios": (2.2, 1)})
    for a in arms:
        pts = points.get(a.arm, [])
        ax.scatter([x(p) for p in pts], [p["accuracy"] for p in pts], s=16,
                   alpha=0.55, color=colors[a.arm], label=f"{a.arm} ({len(pts)})")
        if a.arch is not None:
            ax.scatter([x(a)], [a.accuracy], s=90, facecolors="none",
                       edgecolors=colors[a.arm], linewidths=1.8, zorder=4)
    ax.scatter([x(base)], [base["accuracy"]], marker="*", s=160, color="black",
               zorder=5, label="baseline")
    ax.axhline(base["accuracy"] - tolerance, color="0.3", ls="--", lw=0.8,
               label=f"baseline - {tolerance:g}")
    ax.set_xlabel("predicted latency (ms)" if minimise == "latency"
                  else "peak activation memory (KiB)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("candidates; circled: each arm's pick", fontsize=9)
    width, keys = 0.4, []
    for offset, (label, attr, hatch) in zip((-width / 2, width / 2), (
            ("latency", "reduction", ""), ("memory", "memory_reduction", "//"))):
        values = [100 * (getattr(a, attr) or 0.0) for a in arms]
        spots = [i + offset for i in range(len(arms))]
        bars.bar(spots, values, width, color=[colors[a.arm] for a in arms], hatch=hatch,
                 edgecolor="white")
        for i, v in zip(spots, values):
            bars.text(i, v, f"{v:.0f}%", ha="center", va="bottom", fontsize=7)
        keys.append(Patch(facecolor="0.55", edgecolor="white", hatch=hatch, label=label))
    bars.set_xticks(range(len(arms)), [a.arm for a in arms])
    bars.set_ylabel(f"reduction at equal {metric} (%)")
    bars.legend(handles=keys, fontsize=7, title=f"picked for {minimise}", title_fontsize=7)
    bars.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fused(arch: str) -> list[int]:
    from searchspaces.genome import Architecture

    return [i for i, st in enumerate(Architecture.from_string(arch).stages) if st.block == "fibn"]
