"""Device check (issue 12): build a GPU latency estimator and score it on held-out networks.

Builds ``h200-fp16`` on the ``mbv2`` space (400 blocks, 16 networks, CUDA-graph timing) on this
machine's GPU, evaluates it on 30 held-out whole networks (two timing passes each, so the
repeatability ceiling comes with it), and prints the figures as one line of JSON, then a table.
With ``--out DIR`` (default: ``$OUT`` when set) it also writes the JSON, the per-network rows and
the measurement tables there. Run it through ``benchmarks/gpu_estimator_check.sh``, which finds a
Python with the project's dependencies.

What the time goes into (budget: 6 minutes on one H100/H200):

- one measuring process (``workers=1``): several processes on one GPU would time each other's
  kernels, and each would pay CUDA's start-up again. In one process, cuDNN's autotuning
  (``cudnn.benchmark``: the first call of each new convolution shape times its candidate
  algorithms) is paid once per shape: the networks reuse what the blocks tuned;
- per workload on the host: building the module, folding BatchNorm by ``torch.fx``, the warm-up
  calls and the capture (``torch.cuda.graph`` synchronizes and empties the allocator's cache);
- the replays themselves: 5 + 60 per workload, a synchronize after each (well under a second);
- fitting: LightGBM with 5-fold cross-validation per block kind (seconds).

Exit status: 0 when the figures meet the issue's goals for the profile (batch 1: >= 99% within
+-10%, >= 90% within +-5%, Kendall tau >= 0.95; batch 32: >= 95% within +-10%) inside the time
budget (imports, build and evaluation; the wrapper's search for a Python, a ``make install``
perhaps, is reported apart), 1 when they do not (the figures are still printed and written), 2
when it cannot run (no GPU). ``--dry-run`` runs the same steps, small, on the instant
``roofline-npu32`` model without a GPU and checks no goal: it tests the script itself.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: their cost is part of the check

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from estimators.build import BLOCK_TABLE, NETWORK_TABLE, build_estimator  # noqa: E402
from estimators.evaluate import evaluate_estimator  # noqa: E402
from estimators.latency import MANIFEST  # noqa: E402

GOALS: dict[str, dict[str, float]] = {
    "h200-fp16": {"within_10pct": 0.99, "within_5pct": 0.90, "kendall_tau": 0.95},
    "h200-fp16-b32": {"within_10pct": 0.95},
}
"""The issue's goals on held-out graph-timed networks, per profile."""
BUDGET_S = 360.0
DRY_RUN = {"profile": "roofline-npu32", "samples": 60, "networks": 4, "archs": 4}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PhaseClock:
    """Seconds spent in each phase: a phase runs from its :meth:`enter` to the next one's (or
    to :meth:`stop`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def enter(self, phase: str) -> None:
        if self._current and self._current[0] == phase:
            return
        self.stop()
        self._current = (phase, time.perf_counter())
        _log(f"[{time.perf_counter() - STARTED:6.1f} s] {phase} ...")

    def stop(self) -> None:
        if self._current:
            name, since = self._current
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - since
            self._current = None


def goals_met(profile: str, metrics: dict[str, float], elapsed_s: float
              ) -> dict[str, bool] | None:
    """Each goal of ``profile`` (and the time budget) with whether it is met; ``None`` for a
    profile without goals."""
    if profile not in GOALS:
        return None
    met = {key: bool(metrics[key] >= bound) for key, bound in GOALS[profile].items()}
    met["time_budget"] = elapsed_s <= BUDGET_S
    return met


def table(report: dict[str, Any]) -> str:
    m = report["metrics"]

    def f(key: str, spec: str) -> str:  # None (NaN in the metrics) prints n/a
        return "n/a" if m[key] is None else format(m[key], spec)

    lines = [
        f"{report['profile']} on {report['gpu']} ({report['date']}): {report['blocks']} blocks, "
        f"{report['networks']} networks, {report['archs']} held-out networks",
        f"  within ±5%  {f('within_5pct', '.3f')}    within ±10% {f('within_10pct', '.3f')}",
        f"  MAPE        {f('mape', '.2f')}%   Kendall tau {f('kendall_tau', '.3f')}",
        f"  repeatability ceiling: {f('repeat_within_10pct', '.3f')} within ±10%, "
        f"{f('repeat_within_5pct', '.3f')} within ±5% (timing passes: {m['repeat_passes']}); "
        f"noise floor {f('noise_floor', '.4f')}",
        "  time: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["phases_s"].items())
        + f"; check {report['elapsed_s']:.0f} s (budget {BUDGET_S:.0f} s), with setup "
        f"{report['total_s']:.0f} s",
    ]
    goals = report["goals"]
    lines.append("  goals: " + ("not checked (dry run or no goals for this profile)"
                                if goals is None else
                                ", ".join(f"{k} {'met' if v else 'MISSED'}"
                                          for k, v in goals.items())))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h200-fp16")
    parser.add_argument("--space", default="mbv2")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seed of the build's samples")
    parser.add_argument("--eval-seed", type=int, default=1, help="seed of the held-out sample")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"])
                        if os.environ.get("OUT") else None)
    parser.add_argument("--setup-s", type=float, default=0.0,
                        help="seconds the shell wrapper spent finding Python (reported)")
    parser.add_argument("--dry-run", action="store_true",
                        help="small run on the roofline model, no GPU: tests the script")
    args = parser.parse_args()
    if args.dry_run:
        for key, value in DRY_RUN.items():
            setattr(args, key, value)
    elif not torch.cuda.is_available():
        _log("gpu_estimator_check: no CUDA GPU here (use --dry-run to test the script)")
        return 2

    clock = PhaseClock()
    clock.seconds["setup"] = args.setup_s
    clock.seconds["imports"] = time.perf_counter() - STARTED
    gpu = torch.cuda.get_device_name(0) if not args.dry_run else "none (dry run)"
    if not args.dry_run:
        clock.enter("cuda_init")
        torch.cuda.init()
        torch.zeros(1, device="cuda").sum().item()

    def on_progress(stage: str, done: int, total: int) -> None:
        # the build reports after each measurement: blocks end with the last block's report
        if stage == "blocks" and done == total:
            clock.enter("build_networks")
        elif stage == "fit":
            clock.enter("build_fit")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "estimator"
        try:
            clock.enter("build_blocks")
            build_estimator(args.profile, args.space, args.samples, folder, workers=1,
                            seed=args.seed, networks=args.networks, progress=on_progress)
            clock.enter("eval")
            metrics, rows = evaluate_estimator(folder, args.archs, args.eval_seed, workers=1)
        finally:  # the measurements are worth keeping even when a later step failed
            if args.out is not None:
                _copy_tables(folder, args.out)
    clock.stop()
    elapsed = time.perf_counter() - STARTED
    report: dict[str, Any] = {
        "check": "gpu_estimator_check", "profile": args.profile, "space": args.space,
        "gpu": gpu, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "blocks": args.samples, "networks": args.networks, "archs": args.archs,
        # a rank correlation of constant values is NaN: null keeps the line strict JSON
        "metrics": {k: None if isinstance(v, float) and not math.isfinite(v) else v
                    for k, v in metrics.items()},
        "phases_s": {k: round(v, 1) for k, v in clock.seconds.items()},
        "elapsed_s": round(elapsed, 1), "total_s": round(elapsed + args.setup_s, 1),
        "goals": None if args.dry_run else goals_met(args.profile, metrics, elapsed),
    }
    print(json.dumps(report, allow_nan=False), flush=True)
    print(table(report), flush=True)
    if args.out is not None:
        _write(args.out, report, rows)
    goals = report["goals"]
    return 0 if goals is None or all(goals.values()) else 1


def _copy_tables(folder: Path, out: Path) -> None:
    """The estimator's measurement tables and manifest, those that exist, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (BLOCK_TABLE, NETWORK_TABLE, MANIFEST):
        if (folder / name).exists():
            shutil.copy(folder / name, out / name)


def _write(out: Path, report: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The report and the per-network rows in ``out`` (beside the tables)."""
    (out / "gpu_estimator_check.json").write_text(json.dumps(report, indent=1,
                                                             allow_nan=False) + "\n")
    with (out / "eval_rows.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _log(f"gpu_estimator_check: wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
