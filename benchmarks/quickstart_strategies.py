"""The trained strategy comparison on the quickstart: hypervolume after N trained candidates.

Runs the quickstart config (real brief training on digits, its budgets, space and estimator)
once per strategy and seed, as ``hwnas compare`` does (the config's own strategy keeps its
params, the others run with their defaults), but seed-major: every strategy's seed 0, then
every strategy's seed 1, ..., so a run cut short still holds paired seeds. Each finished search
is appended to ``--rows`` (one JSON line: its per-trained-candidate hypervolume curve and
compute), and a rerun skips the searches already there. ``count_rejected`` is false (the
default), so ``--trials 32`` trains 32 candidates and the curve is indexed by trained
candidates: its 16th point is the hypervolume after 16 of them, the same runs read at two
budgets. Prints, per strategy, median [quartiles] over seeds at each of ``--at``, and the
median compute (CPU-seconds of training) per search:

    python benchmarks/quickstart_strategies.py --strategies evolution,optuna-tpe --seeds 3 \\
        --trials 32 --at 16,32 --rows /tmp/qs_rows.jsonl
    python benchmarks/quickstart_strategies.py --table --rows /tmp/qs_rows.jsonl --at 16,32

``--variant LABEL=STRATEGY:JSON`` adds a strategy run with extra params under its own label
(``--variant 'evolution-climb=evolution:{"climb": 0.4}' --strategies evolution-climb``).
``--comparison DIR/<id>/comparison.json`` prints the same table from a ``hwnas compare`` run
(whose JSON holds every seed's curve), e.g. ``hwnas compare --config configs/quickstart.yaml
--strategies evolution,optuna-tpe --seeds 3 --trials 32``.
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

from benchmarks.count_rejected import quartiles  # noqa: E402


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """``LABEL=STRATEGY:{"param": value}``: a strategy run with extra params, reported as LABEL."""
    label, sep, rest = text.partition("=")
    strategy, sep2, params = rest.partition(":")
    try:
        extra = json.loads(params) if sep2 else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--variant {text!r}: the params after ':' are not JSON ({err})") from None
    if not (sep and label and strategy) or not isinstance(extra, dict):
        raise ValueError(f'--variant {text!r}: expected LABEL=STRATEGY:{{"param": value}}')
    return label, strategy, extra


def run(strategy: str, seed: int, trials: int, folder: Path,
        extra: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
    from nas.analysis.compare import shares_params
    from nas.config import load_config
    from nas.search import run_search

    base = load_config(ROOT / "configs" / "quickstart.yaml")
    other = strategy != base.strategy.name and not shares_params(strategy,
                                                                 base.strategy.params)
    params = {**({} if other else base.strategy.params), **(extra or {})}
    config = base.with_overrides(**{
        "name": f"qs-{label or strategy}-s{seed}", "seed": seed, "trials": trials,
        "count_rejected": False, "strategy.name": strategy,
        "strategy.params": params, "storage_path": str(folder / "ray"),
        "tracking.uri": f"sqlite:///{folder / 'mlflow.db'}",
        "tracking.experiment": "quickstart-strategies"})
    with open(os.devnull, "w") as quiet:
        summary = run_search(config, tune_output=quiet)
    return {"strategy": label or strategy, "seed": seed, "trials": trials,
            "hypervolume": summary.hypervolume, "rejected": summary.rejected,
            "failed": summary.failed, "seconds": summary.seconds, "curve": summary.curve,
            "compute": summary.compute}


def hv_after(curve: list[float], n: int) -> float:
    """Hypervolume after ``n`` trained candidates (the last value if the search trained
    fewer, 0 before the first)."""
    return float(curve[min(n, len(curve)) - 1]) if curve and n > 0 else 0.0


def rows_from_comparison(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a ``comparison.json`` of ``hwnas compare`` (its per-seed curves), so a
    comparison run by the CLI gets the same table."""
    return [{"strategy": r["strategy"], "seed": seed, "trials": doc["trials"],
             "curve": curve, "compute": compute, "seconds": r["seconds"], "rejected": None}
            for r in doc["results"]
            for seed, (curve, compute) in enumerate(zip(r["curves"], r["computes"]))]


def print_table(rows: list[dict[str, Any]], at: list[int]) -> None:
    seeds = sorted({r["seed"] for r in rows})
    print(f"quickstart, brief training, seeds {','.join(map(str, seeds))}: hypervolume after N "
          "trained candidates, median [quartiles] over seeds")
    print("| strategy | seeds | " + " | ".join(f"HV at {n}" for n in at)
          + " | compute per search (CPU-s) | wall per search (s) | rejected per search |")
    print("|---|---|" + "---|" * len(at) + "---|---|---|")
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        group = [r for r in rows if r["strategy"] == strategy]
        cells = [quartiles([hv_after(r["curve"], n) for r in group]) for n in at]
        compute = [r["compute"][-1] if r["compute"] else 0.0 for r in group]
        rejected = [r["rejected"] for r in group if r["rejected"] is not None]
        print(f"| {strategy} | {len(group)} | " + " | ".join(cells)
              + f" | {np.median(compute):.0f} | {np.median([r['seconds'] for r in group]):.0f}"
              f" | {f'{np.median(rejected):.0f}' if rejected else '-'} |")


def plot(rows: list[dict[str, Any]], trials: int, folder: Path) -> list[Path]:
    """``hwnas compare``'s plots of these rows (hypervolume against trained candidates and
    against compute, median and quartile band per strategy) into ``folder``."""
    from nas.analysis.compare import StrategyResult, _padded, _plots

    results = []
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        group = [r for r in rows if r["strategy"] == strategy]
        curves = [_padded(r["curve"], trials).tolist() for r in group]
        q = np.percentile([c[-1] for c in curves], [25, 50, 75])
        results.append(StrategyResult(
            strategy, len(group), (float(q[0]), float(q[1]), float(q[2])), None, 0,
            float(np.median([r["seconds"] for r in group])), curves=curves,
            computes=[r["compute"] for r in group]))
    folder.mkdir(parents=True, exist_ok=True)
    seeds = len({r["seed"] for r in rows})
    return _plots(results, folder, f"quickstart, brief training: median and IQR over {seeds} "
                  "seeds")


def main() -> None:
    from nas.strategies.registry import strategy_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="evolution,optuna-tpe",
                        help=f"comma-separated, any of {', '.join(strategy_names())}")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=STRATEGY:JSON",
                        help='a strategy with extra params, named LABEL in --strategies and '
                             'the rows, e.g. evolution-climb=evolution:\'{"climb": 0.4}\'')
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds --first-seed..--seeds-1 (several processes in parallel)")
    parser.add_argument("--trials", type=int, default=32, help="trained candidates per search")
    parser.add_argument("--at", default="16,32", help="budgets (trained candidates) to report")
    parser.add_argument("--rows", type=Path,
                        help="JSON-lines file of finished searches: appended to, and read back")
    parser.add_argument("--table", action="store_true", help="only print the table of --rows")
    parser.add_argument("--plot", type=Path, help="also write compare's plots into this folder")
    parser.add_argument("--comparison", type=Path,
                        help="only print the table of this comparison.json of `hwnas compare`")
    args = parser.parse_args()
    at = [int(n) for n in args.at.split(",")]
    try:
        variants = {label: (name, extra) for label, name, extra in map(parse_variant, args.variant)}
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.comparison is not None:
        print_table(rows_from_comparison(json.loads(args.comparison.read_text())), at)
        return
    if args.rows is None:
        raise SystemExit("give --rows (or --comparison)")
    if any(n < 1 or n > args.trials for n in at):
        raise SystemExit(f"--at must lie in 1..--trials ({args.trials}), got {args.at}")

    def load() -> list[dict[str, Any]]:
        if not args.rows.exists():
            return []
        return [json.loads(line) for line in args.rows.read_text().splitlines() if line]

    if not args.table:
        from nas.search import ray_session

        done = {(r["strategy"], r["seed"], r["trials"]) for r in load()}
        with tempfile.TemporaryDirectory() as tmp, ray_session(None, cpus=2), \
                contextlib.redirect_stdout(sys.stderr):
            for seed in range(args.first_seed, args.seeds):
                for strategy in args.strategies.split(","):
                    if (strategy, seed, args.trials) in done:
                        continue
                    name, extra = variants.get(strategy, (strategy, {}))
                    row = run(name, seed, args.trials, Path(tmp), extra, strategy)
                    with args.rows.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{strategy} seed {seed}: " + ", ".join(
                        f"hv@{n} {hv_after(row['curve'], n):.4f}" for n in at)
                          + f", {row['rejected']} rejected, {row['seconds']:.0f} s",
                          file=sys.stderr)
    rows = [r for r in load() if r["trials"] == args.trials
            and r["strategy"] in args.strategies.split(",")]
    print_table(rows, at)
    if args.plot is not None:
        plot(rows, args.trials, args.plot)


if __name__ == "__main__":
    main()
