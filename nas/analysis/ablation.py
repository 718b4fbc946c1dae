"""The seed work's ablation by one command: multiplier search, fusion search, and both.

From the space's MobileNetV2-shaped baseline, three searches each free a different part of the
genome while everything else stays at the baseline's value:

- ``multiplier``: only the global width multiplier (``width_mult``);
- ``fusion``: only the IBN -> fused-IBN choice of each stage whose baseline block is an IBN
  (``sN_block`` in {ibn, fibn});
- ``both``: the two together.

For each, the answer is the lowest-latency candidate whose accuracy is within ``tolerance``
(0.5 points by default) of the baseline's, its latency reduction against the baseline, and which
stages it fused. The seed work (an Amazon study on an edge accelerator) reported 14% / 35% / 53%;
its finding was that early stages fuse and late ones do not.

Budgets are off for the baseline; each arm's latency budget is the baseline's predicted latency,
so a candidate slower than the baseline (which can never be the answer) is rejected by the
estimator before any training and costs no training time. ASHA is off: every trained candidate
gets its full epochs, since the answer is read at equal accuracy.

Accuracy here is what the config's training gives (or the NASWOT proxy with ``--surrogate``):
brief training on a small dataset is noisy, so read the tolerance against that noise.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.config import SearchConfig
from nas.search import SearchSummary, prepare, ray_session, run_search
from searchspaces.spaces import SearchSpace

ARMS = ("multiplier", "fusion", "both")


@dataclass(frozen=True)
class ArmResult:
    arm: str
    trials: int
    arch: str | None  # the chosen candidate (None: none within the tolerance)
    accuracy: float | None
    latency_ms: float | None
    reduction: float | None  # 1 - latency / baseline latency
    fused_stages: list[int]
    run_id: str
    rejected: int = 0  # trials the estimator rejected before training (slower than baseline)


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
    raise ValueError(f"unknown ablation arm {arm!r}; known: {', '.join(ARMS)}")


def _size(space: Any, free: list[str], choices: dict[str, list[Any]]) -> int:
    dims = space.dimensions()
    return math.prod(len(choices.get(k, dims[k])) for k in free)


def pick(points: list[dict[str, Any]], floor: float) -> dict[str, Any] | None:
    """The lowest-latency point with accuracy >= ``floor``."""
    ok = [p for p in points if p["accuracy"] >= floor]
    return min(ok, key=lambda p: p["latency_ms"]) if ok else None


@dataclass(frozen=True)
class AblationPlan:
    """A checked ablation request (:func:`plan_ablation`), run by :func:`run_ablation`."""

    config: SearchConfig
    space: SearchSpace
    tolerance: float


def plan_ablation(config: SearchConfig, *, trials: int | None = None, surrogate: bool = False,
                  tolerance: float = 0.005) -> AblationPlan:
    """The ablation's base config, checked before anything runs: every problem (config,
    tracking URI, estimator, data) is a one-line ``ValueError``."""
    from nas.tracking import check_tracking_uri

    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
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
    return AblationPlan(base, prepare(base).space, tolerance)


def run_ablation(plan: AblationPlan, *, out_dir: str | Path = "ablations",
                 address: str | None = None, tune_output: Any = None,
                 on_arm: Any = None) -> Ablation:
    """Run the baseline and the three arms of ``plan`` (see module doc) under one MLflow run."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import experiment_id

    base, space, tolerance = plan.config, plan.space, plan.tolerance
    baseline = space.baseline()
    ab_id = f"{base.name}-ablation-{time.strftime('%Y%m%d-%H%M%S')}"
    client = MlflowClient(base.tracking.uri)
    exp = experiment_id(client, base.tracking.experiment, base.tracking.uri)
    run_id = client.create_run(exp, run_name=ab_id, tags={
        "hwnas.role": "ablation", "hwnas.ablation_id": ab_id,
        "hwnas.surrogate": str(base.training.surrogate)}).info.run_id
    status = "FAILED"

    def search(name: str, free: list[str], choices: dict[str, list[Any]],
               count: int, budget_ms: float | None = None) -> SearchSummary:
        cfg = base.model_dump()
        cfg["space"].update(free=free, choices=choices)
        if budget_ms is not None:
            cfg["budgets"] = {"latency_ms": budget_ms}
        cfg.update(trials=count, name=f"{ab_id}-{name}")
        return run_search(SearchConfig.model_validate(cfg), nest_under=run_id,
                          extra_tags={"hwnas.ablation_id": ab_id, "hwnas.arm": name},
                          tune_output=tune_output)

    try:
        with ray_session(address):
            width = baseline.width_mult
            ref = search("baseline", ["width_mult"], {"width_mult": [width]}, 1)
            if not ref.points:
                raise ValueError("the baseline itself could not be evaluated (see its MLflow "
                                 "child run)")
            base_point = ref.points[0]
            arms, points = [], {}
            for arm in ARMS:
                if on_arm is not None:
                    on_arm(arm, None)
                free, choices = arm_space(space, arm)
                count = min(base.trials, _size(space, free, choices))
                # A candidate slower than the baseline can never be the answer (the baseline
                # itself qualifies), so the estimator rejects it before any training.
                summary = search(arm, free, choices, count,
                                 budget_ms=base_point["latency_ms"] * (1 + 1e-9))
                points[arm] = summary.points
                best = pick(summary.points + [base_point],
                            base_point["accuracy"] - tolerance)
                fused = [] if best is None else _fused(best["arch"])
                arms.append(ArmResult(
                    arm, summary.trials, None if best is None else best["arch"],
                    None if best is None else best["accuracy"],
                    None if best is None else best["latency_ms"],
                    None if best is None else 1 - best["latency_ms"] / base_point["latency_ms"],
                    fused, summary.parent_run_id, summary.rejected))
                if on_arm is not None:
                    on_arm(arm, arms[-1])
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        png = plot_ablation(base_point, arms, points, tolerance, folder / f"{ab_id}.png",
                            f"{ab_id} ({base.hardware.profile})")
        result = Ablation(ab_id, run_id, base_point["arch"], base_point["accuracy"],
                          base_point["latency_ms"], tolerance, base.training.surrogate, arms,
                          str(png))
        path = folder / f"{ab_id}.json"
        path.write_text(json.dumps(result.to_json(), indent=2))
        client.log_artifact(run_id, str(path))
        client.log_artifact(run_id, str(png))
        for a in arms:
            if a.reduction is not None:
                client.log_metric(run_id, f"reduction.{a.arm}", a.reduction)
        status = "FINISHED"
        return result
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(run_id, status=status)


def plot_ablation(base: dict[str, Any], arms: list[ArmResult],
                  points: dict[str, list[dict[str, Any]]], tolerance: float, path: Path,
                  title: str) -> Path:
    """Every candidate of every arm (accuracy against latency), the baseline, the accuracy floor
    and each arm's pick; and the latency reduction of each arm as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green")))
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=100,
                                   gridspec_kw={"width_ratios": (2.2, 1)})
    for arm in ARMS:
        pts = points.get(arm, [])
        ax.scatter([p["latency_ms"] for p in pts], [p["accuracy"] for p in pts], s=16,
                   alpha=0.55, color=colors[arm], label=f"{arm} ({len(pts)})")
    for a in arms:
        if a.arch is not None:
            ax.scatter([a.latency_ms], [a.accuracy], s=90, facecolors="none",
                       edgecolors=colors[a.arm], linewidths=1.8, zorder=4)
    ax.scatter([base["latency_ms"]], [base["accuracy"]], marker="*", s=160, color="black",
               zorder=5, label="baseline")
    ax.axhline(base["accuracy"] - tolerance, color="0.3", ls="--", lw=0.8,
               label=f"baseline - {tolerance:g}")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("candidates; circled: each arm's pick", fontsize=9)
    values = [0.0 if a.reduction is None else 100 * a.reduction for a in arms]
    bars.bar([a.arm for a in arms], values, color=[colors[a.arm] for a in arms])
    for i, v in enumerate(values):
        bars.text(i, v, f"{v:.1f}%", ha="center", va="bottom", fontsize=8)
    bars.set_ylabel("latency reduction at equal accuracy (%)")
    bars.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fused(arch: str) -> list[int]:
    from searchspaces.genome import Architecture

    return [i for i, st in enumerate(Architecture.from_string(arch).stages) if st.block == "fibn"]
