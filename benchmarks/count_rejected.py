"""Should a candidate rejected before training use up one of ``trials``? ``count_rejected``
true against false on the quickstart, per strategy and seed.

Every search runs the quickstart config (its budgets, space and estimator) with the given
``--trials``, scoring candidates with the training-free NASWOT proxy (``training.surrogate``)
so that dozens of searches take minutes; with real training a trained candidate costs seconds
to minutes and a rejected one milliseconds, so "trained" below is the compute a search spent.
Printed per strategy and setting, median [quartiles] over seeds: the final hypervolume, the
candidates trained (scored) and rejected, the wall time; and, for ``count_rejected: false``, the
hypervolume after as many trained candidates as the counted search trained (equal compute).

    python benchmarks/count_rejected.py --trials 16 --seeds 3 \\
        --strategies evolution,random,optuna-nsga2,optuna-tpe
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def quartiles(values: list[float], fmt: str = ".3f") -> str:
    q = np.percentile(values, [25, 50, 75])
    return f"{q[1]:{fmt}} [{q[0]:{fmt}}-{q[2]:{fmt}}]"


def run(strategy: str, seed: int, counted: bool, args: argparse.Namespace,
        folder: Path) -> dict[str, Any]:
    from nas.config import load_config
    from nas.search import run_search

    base = load_config(ROOT / "configs" / "quickstart.yaml")
    name = f"{strategy}-s{seed}-{'counted' if counted else 'within'}"
    config = base.with_overrides(**{
        "name": name, "seed": seed, "trials": args.trials, "count_rejected": counted,
        "training.surrogate": True, "strategy.name": strategy,
        "strategy.params": None if strategy == base.strategy.name else {},
        "storage_path": str(folder / "ray"),
        "tracking.uri": f"sqlite:///{folder / 'mlflow.db'}", "tracking.experiment": "rejected"})
    with open(os.devnull, "w") as quiet:
        summary = run_search(config, tune_output=quiet)
    trained = summary.trials - summary.rejected - summary.failed
    return {"strategy": strategy, "seed": seed, "count_rejected": counted,
            "hypervolume": summary.hypervolume, "trained": trained,
            "rejected": summary.rejected, "seconds": summary.seconds,
            "curve": summary.curve}


def print_table(rows: list[dict[str, Any]], trials: int, seeds: int) -> None:
    """The markdown table of :func:`run`'s rows (also for rows saved with ``--json``)."""
    print(f"quickstart, NASWOT-scored, trials={trials}, {seeds} seeds: "
          "median [quartiles]")
    print("| strategy | count_rejected | final HV | trained | rejected | seconds | "
          "HV of false at true's trained count |")
    print("|---|---|---|---|---|---|---|")
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        counted = [r for r in rows if r["strategy"] == strategy and r["count_rejected"]]
        within = [r for r in rows if r["strategy"] == strategy and not r["count_rejected"]]
        # false's curve is indexed by candidates within the budgets: take it at the count the
        # counted search of the same seed trained
        equal = [w["curve"][min(c["trained"], len(w["curve"])) - 1] if c["trained"] else 0.0
                 for c, w in zip(counted, within)]
        for label, group, extra in (("true", counted, "-"), ("false", within, quartiles(equal))):
            print(f"| {strategy} | {label} | {quartiles([r['hypervolume'] for r in group])} | "
                  f"{quartiles([r['trained'] for r in group], '.0f')} | "
                  f"{quartiles([r['rejected'] for r in group], '.0f')} | "
                  f"{quartiles([r['seconds'] for r in group], '.0f')} | {extra} |")


def main() -> None:
    from nas.search import ray_session
    from nas.strategies.registry import strategy_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", default=",".join(strategy_names()))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp, ray_session(None, cpus=2), \
            contextlib.redirect_stdout(sys.stderr):
        for strategy in args.strategies.split(","):
            for seed in range(args.seeds):
                for counted in (True, False):
                    rows.append(run(strategy, seed, counted, args, Path(tmp)))
                    r = rows[-1]
                    print(f"{strategy} seed {seed} count_rejected={counted}: hv "
                          f"{r['hypervolume']:.4f}, {r['trained']} trained, {r['rejected']} "
                          f"rejected, {r['seconds']:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
        return
    print_table(rows, args.trials, args.seeds)


if __name__ == "__main__":
    main()
