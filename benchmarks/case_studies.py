"""The seed's three case studies, each as ``hwnas ablation`` on its config, beside the seed's.

The seed work (the Amazon study on an edge accelerator) reported, at equal task metric against
a MobileNetV2-shaped baseline:

- a presence detector with 53% less latency (mAP);
- a semantic-segmentation model with 51% less latency (mIoU), its search also varying the input
  and output dimensions;
- a classifier fitted into a memory budget with 47% less memory (accuracy).

Each case here is the ablation of :mod:`nas.analysis.ablation` on its config
(``configs/presence-detection.yaml``, ``configs/segmentation.yaml``,
``configs/memory-budget-classifier.yaml``): the baseline is trained, then each arm's sub-space is
searched (``both``: width multiplier and IBN fusion; ``io``: those plus the input resolution and
the head's output scales or stride), candidates worse than the baseline in the minimised
quantity rejected before training. A case's answer is its best arm: the least latency (or peak
activation memory) among candidates whose metric is within ``--tolerance`` of the baseline's.

What this is, plainly: latency is the shipped estimator's prediction for the ZigZag ``npu32``
*simulator* (not a chip), memory the exact peak of live activations (``estimators/memory.py``);
the data are small deterministic synthetic scenes (digits for the classifier) and every
candidate is trained for a few epochs on CPU, once, with one seed. The metric's noise is a few
validation images; read the tolerance against it.

    python benchmarks/case_studies.py                # the three cases, about 15-25 min on 2 cores
    python benchmarks/case_studies.py --cases memory-budget-classifier --trials 4 --json

MLflow, Ray results and each ablation's JSON and plot go to ``--workdir`` (default:
``ablations/case-studies``, git-ignored), never ``./mlflow.db``;
the synthetic scenes to each config's ``data_dir`` under the repository (git-ignored), shared
with ``hwnas search`` runs from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Case:
    name: str  # also the config's file name under configs/
    arms: tuple[str, ...]
    minimise: str  # latency | memory
    seed_reduction: float  # the seed work's figure
    seed_says: str
    pins: tuple[tuple[str, object], ...] = ()  # the baseline off the space's (hwnas ablation --pin)


CASES = (
    Case("presence-detection", ("both", "io"), "latency", 0.53,
         "presence detector, 53% less latency at equal mAP"),
    Case("segmentation", ("both", "io"), "latency", 0.51,
         "segmentation, 51% less latency at equal mIoU (input and output dimensions searched)"),
    Case("memory-budget-classifier", ("fusion", "io"), "memory", 0.47,
         "classifier in a memory budget, 47% less memory at equal accuracy"),
)
"""The cases and the arms each runs: ``multiplier`` is left out of the memory case since the
width multiplier does not move this space's peak (it sits in the early stages, whose 32 channels
the multiplier cannot cut: channels stay multiples of npu32's 32). The detection baseline has two
output scales: the space's own has one, whose stride-8 map is 4x4 cells at 32 px and learns next
to nothing in a brief training (map50 0.01-0.04 after 6-12 epochs, against 0.4-0.65 for two)."""


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_case(case: Case, *, trials: int, tolerance: float, surrogate: bool, work: Path,
             tune_output: Any) -> dict[str, Any]:
    """One case's ablation (in the current Ray session) and its answer, as a JSON-able dict."""
    from nas.analysis.ablation import plan_ablation, run_ablation
    from nas.config import load_config

    cfg = load_config(ROOT / "configs" / f"{case.name}.yaml")
    overrides: dict[str, Any] = {"tracking.uri": f"sqlite:///{(work / 'mlflow.db').resolve()}",
                                 "storage_path": str(work / "ray")}
    if cfg.task.data_dir and not Path(cfg.task.data_dir).expanduser().is_absolute():
        overrides["task.data_dir"] = str(ROOT / cfg.task.data_dir)
    plan = plan_ablation(cfg.with_overrides(**overrides), trials=trials, surrogate=surrogate,
                         tolerance=tolerance, arms=case.arms, minimise=case.minimise,
                         pins=dict(case.pins))
    def progress(arm: str, done: Any) -> None:
        if done is None:
            _log(f"{case.name}: arm {arm} ...")

    start = time.perf_counter()
    result = run_ablation(plan, out_dir=work / "ablations", tune_output=tune_output,
                          on_arm=progress)
    seconds = time.perf_counter() - start
    attr = "reduction" if case.minimise == "latency" else "memory_reduction"
    found = [a for a in result.arms if a.arch is not None]
    best = max(found, key=lambda a: getattr(a, attr), default=None)
    return {
        "case": case.name, "metric": result.metric, "minimise": case.minimise,
        "trials_per_arm": trials, "tolerance": tolerance, "surrogate": surrogate,
        "seconds": round(seconds, 1),
        "baseline": {"arch": result.baseline_arch, "metric": result.baseline_accuracy,
                     "latency_ms": result.baseline_latency_ms,
                     "peak_activation_kib": result.baseline_peak_activation_bytes / 1024},
        "chosen": None if best is None else {
            "arm": best.arm, "arch": best.arch, "metric": best.accuracy,
            "latency_ms": best.latency_ms, "peak_activation_kib": best.peak_activation_bytes / 1024,
            "latency_reduction": best.reduction, "memory_reduction": best.memory_reduction},
        "reduction": None if best is None else getattr(best, attr),
        "seed_reduction": case.seed_reduction, "seed": case.seed_says, "pins": dict(case.pins),
        "arms": [{"arm": a.arm, "trials": a.trials, "rejected": a.rejected, "arch": a.arch,
                  "metric": a.accuracy, "latency_reduction": a.reduction,
                  "memory_reduction": a.memory_reduction} for a in result.arms],
        "ablation_json": str(work / "ablations" / f"{result.ablation_id}.json"),
        "plot": result.plot,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _cell(point: dict[str, Any], memory: bool) -> str:
    cost = f"{point['peak_activation_kib']:.0f} KiB" if memory else f"{point['latency_ms']:.3f} ms"
    return f"{point['metric']:.3f} @ {cost}"


def report(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table and what it is (plain text)."""
    lines = [f"{'case':<26} {'metric':<8} {'baseline':>24} {'chosen':>24} {'arm':>5} "
             f"{'reduction':>10} {'seed':>5}"]
    for r in rows:
        b, c, mem = r["baseline"], r["chosen"], r["minimise"] == "memory"
        lines.append(f"{r['case']:<26} {r['metric']:<8} {_cell(b, mem):>24} "
                     f"{'none within tolerance' if c is None else _cell(c, mem):>24} "
                     f"{'-' if c is None else c['arm']:>5} "
                     f"{_pct(r['reduction']) + (' mem' if mem else ' lat'):>10} "
                     f"{r['seed_reduction']:>5.0%}")
        for a in r["arms"]:
            lines.append(f"  arm {a['arm']:<6} {a['trials']} trials ({a['rejected']} rejected): "
                         f"latency {_pct(a['latency_reduction'])}, memory "
                         f"{_pct(a['memory_reduction'])}"
                         + ("" if a["arch"] else " (none within tolerance)"))
    lines.append(
        "Latency: the shipped estimator's prediction for the ZigZag npu32 simulator, not a chip; "
        "memory: the exact peak of live activations. Synthetic scenes (digits for the "
        "classifier), a few epochs of CPU training per candidate, one seed: the seed work's "
        "figures are from real products on a real accelerator.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(c.name for c in CASES),
                        help="comma-separated, any of: " + ", ".join(c.name for c in CASES))
    parser.add_argument("--trials", type=int, default=6, help="trials per arm")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="drop in the task's metric allowed against the baseline")
    parser.add_argument("--surrogate", action="store_true",
                        help="NASWOT proxy instead of training: a smoke run of the classifier "
                        "case, not a result (detection and segmentation refuse it)")
    parser.add_argument("--workdir", default=str(ROOT / "ablations" / "case-studies"),
                        help="MLflow store, Ray results, each ablation's JSON and plot")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    known = {c.name: c for c in CASES}
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        parser.error(f"--cases takes names among {', '.join(known)}; got {args.cases!r}")
    if args.trials < 1 or args.tolerance < 0:
        parser.error("need --trials >= 1 and --tolerance >= 0")

    from nas.search import ray_session

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    with open(work / "tune.log", "a") as quiet, ray_session():
        for name in names:
            _log(f"{name}: baseline and arms {', '.join(known[name].arms)} ...")
            rows.append(run_case(known[name], trials=args.trials, tolerance=args.tolerance,
                                 surrogate=args.surrogate, work=work, tune_output=quiet))
            _log(f"{name}: {_pct(rows[-1]['reduction'])} ({rows[-1]['seconds']:.0f} s)")
    result = {"cases": rows, "seconds": round(time.perf_counter() - t0, 1),
              "target": "npu32 (ZigZag simulator, shipped estimator npu32-mbv2-small)",
              "data": "synthetic scenes and digits, brief CPU training, one seed"}
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(report(rows))
        print(f"{result['seconds']:.0f} s; ablation JSON and plots under {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
