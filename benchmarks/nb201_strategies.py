"""Compare search strategies on NAS-Bench-201: real 12-epoch accuracy x real-device latency.

Every strategy searches the 15,625-architecture cell space; an evaluation looks the architecture
up in ``data/nb201_benchmark.csv.gz`` (nothing is trained). After each budget (25/50/100/200/
300/500 evaluations, up to ``--budget``) it computes the hypervolume of the (accuracy up,
latency down) points found so far, relative to the true Pareto front's hypervolume. Objectives
are normalised to [0, 1] over the whole table and the reference point is the worst accuracy and
the worst latency (a missing latency counts as the worst).

By default it runs every accuracy x latency pair: the three datasets' validation accuracies
(what a search sees) x every latency column of the table (HELP's devices and LatBench's CPUs,
GPUs, DSPs, Edge TPU and Jetson), driving each strategy's ask/tell directly, one evaluation at a
time: ``evolution`` and ``random`` are hwnas strategies, ``optuna-tpe`` / ``optuna-nsga2`` are
Optuna's samplers with the settings ``hwnas`` gives them, through ``study.ask``/``study.tell``.
Evolution is given what ``hwnas search`` gives it before training, each cell's parameter count
(:func:`~benchmarks.nb201_data.cell_params`) and the table's latency (``prior``): its first
trials are picked along their front, and from its 100th trial on a child's latency is the
table's instead of predicted (``prior_after``); from then on its GP is given each cell's synflow
(``proxy``, below; the GP's mean a line in it), as ``hwnas search`` gives it synflow of the
untrained network.
Benchmark-only variants (``VARIANTS`` below) each change a few of evolution's defaults, to
ablate one idea or to restore an earlier default: a report made before a change of default is
reproduced only by the variant that restores it.
``hybrid`` and ``zeroshot`` (the proxy strategies, run only when named) are given what ``hwnas
search`` gives them: a proxy score per cell, hwnas's synflow of the untrained network for the
pair's dataset (``data/nb201/nb201_synflow.csv.gz``, :mod:`benchmarks.nb201_synflow`), and the
table's latency as the cost. They look the score up: their CPU seconds leave out computing it,
about 0.06 s a cell on one core (``hybrid`` scores 8 children per ask, ``zeroshot`` 200
candidates once). They are not among the "other" strategies evolution is set against.
Printed per pair:
the median over seeds at each budget of ``evolution`` and of the best other strategy, and
whether evolution is >= it and >= 0.99 at the largest budget; ``--json`` gives every
strategy's median and quartiles.

    python benchmarks/nb201_strategies.py --seeds 5 --jobs 2 --json > nb201.json

``--ray`` runs through Ray Tune instead (one pair at a time; minutes per strategy and seed), to
check that the Tune adapters behave as the direct drive does; each strategy is given the same
prior and proxy there (:func:`strategy_kwargs`), variants and ``hybrid`` / ``zeroshot`` included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.nb201_data import (  # noqa: E402
    cell_params,
    format_arch,
    load_nb201,
    nb201_dimensions,
)
from nas.pareto import hypervolume_2d, normalize  # noqa: E402

BUDGETS = (25, 50, 100, 200, 300, 500)
OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]
ACCURACIES = ("cifar10_val_12ep", "cifar100_val_12ep", "imagenet16_val_12ep")
STRATEGIES = ("evolution", "random", "optuna-tpe", "optuna-nsga2")
PROXY_STRATEGIES = ("hybrid", "zeroshot")  # scored by synflow; only when named
LATE_STARTS = (75, 25, 100, 50, 15)  # the late-phase variants below
VARIANTS: dict[str, dict[str, Any]] = {
    # what each variant changes in Evolution's defaults, and what it is for
    "evolution-plain": {"surrogate": "none"},  # no model: plain aging evolution, the ablation
    "evolution-latency": {},  # the table's latency `known` from the first trial (set below)
    "evolution-thompson": {"sample": ("accuracy",)},  # picks on one bagged accuracy model
    "evolution-climb": {"climb": 0.4, "climb_after": 0},  # climb from the first model ask
    "evolution-random-start": {"start": 0},  # uniform random first trials (until 2026-12-03)
    "evolution-gp": {"gp_after": 100},  # the default, named as its 2026-12-04 reports are
    "evolution-lightgbm": {"gp_after": None},  # LightGBM throughout (until 2026-12-04)
    "evolution-initial10": {"initial": 10},  # 10 first trials (until 2026-12-04)
    "evolution-initial15": {"initial": 15},  # the default, made explicit
    "evolution-gp-mean": {"optimism": 0.0},  # the GP's mean (until 2026-12-04's evening)
    "evolution-expected": {"acquisition": "expected"},  # expected hypervolume gain
    "evolution-no-descent": {"descend": 0},  # no latency descent (until 2026-12-05)
    # no late climb and latency predicted throughout: the defaults the `descend` reports ran
    "evolution-no-late-climb": {"climb": 0.0, "prior_after": None},
    # latency predicted throughout and the climb from the most accurate trial alone (until
    # 2026-12-06): the defaults the `lateclimb` reports ran
    "evolution-late-climb": {"prior_after": None, "climb_from": 1},
    "evolution-predicted-latency": {"prior_after": None},  # the prior's latency never used
    "evolution-climb-from-one": {"climb_from": 1},  # the climb from the most accurate trial
    # the climb ranks all its pool by the GP and synflow together, whether or not synflow
    # ranks the trials (`proxy`, set below): the 51bb147 reports
    "evolution-proxy-climb": {"proxy_gate": None, "proxy_pool": None, "proxy_trend": False,
                              "proxy_weight": 1.0},
    # no proxy in the climb (until 2026-12-06): the defaults the `multiclimb` reports ran
    "evolution-no-proxy": {},
    # the gated proxy added to the climb's ranking alone, weight 1, no trend (until 2026-12-06's
    # evening): the defaults the `gatedproxy` and `seeds5to9` reports ran
    "evolution-proxy-weight1": {"proxy_trend": False, "proxy_weight": 1.0},
    # the same, synflow's weight doubled: the 2026-12-06 `proxyweight2` reports, better on seeds
    # 0-4, level on 5-9, not the default
    "evolution-proxy-weight2": {"proxy_trend": False, "proxy_weight": 2.0},
    # development runs of 2026-12-06's third session, not the default (docs/results.md): the
    # trend and the climb's additive term together; the late phase from the 75th trial
    "evolution-trend-weight1": {"proxy_weight": 1.0},
    # where the late phase (GP, trend, prior's latency, climb) starts, `evolution-late<N>`
    # (docs/results.md): 75 the third session's development run; from 2026-12-07 25 is the
    # default, named as its reports are, 100 the default before it, 50 and 15 development runs
    # (ImageNet16-120, seeds 0-4)
    **{f"evolution-late{n}": {"gp_after": n, "prior_after": n, "climb_after": n}
       for n in LATE_STARTS},
}
# given each cell's synflow, as hwnas search gives evolution and the proxy strategies theirs
PROXIED = (*PROXY_STRATEGIES, "evolution", "evolution-proxy-climb", "evolution-proxy-weight1",
           "evolution-proxy-weight2", "evolution-trend-weight1",
           *(f"evolution-late{n}" for n in LATE_STARTS))
GOAL = 0.99


def latency_columns() -> list[str]:
    return [c for c in load_nb201().columns if c.startswith("lat_ms_")]


def objectives_of(accuracy_column: str, latency_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and latency per row; a missing latency is the column's worst."""
    table = load_nb201()
    latency = table.column(latency_column)
    return (table.column(accuracy_column),
            np.where(np.isfinite(latency), latency, np.nanmax(latency)))


def nb201_trial(config: dict[str, Any], accuracy_column: str, latency_column: str) -> None:
    """A Tune trial: report the table's accuracy and latency of the architecture."""
    from ray import tune

    row = load_nb201().row(format_arch(config))
    accuracy, latency = objectives_of(accuracy_column, latency_column)
    tune.report({"accuracy": float(accuracy[row]), "latency_ms": float(latency[row]), "row": row})


def run_ray(strategy: str, seed: int, budget: int, pair: tuple[str, str],
            storage: str) -> list[int]:
    """Rows of the table in the order the searcher asked for them (Tune lists its trials in
    the order it created them; its timestamps are whole seconds, too coarse to order by)."""
    from ray import tune

    from nas.strategies.tune_adapter import create_searcher

    # the same prior and proxy as the direct drive gives it
    kwargs = strategy_kwargs(strategy, objectives_of(*pair)[1], proxy_of(strategy, pair[0]))
    searcher = create_searcher(registered(strategy), nb201_dimensions(), OBJECTIVES, seed=seed,
                               **kwargs)
    trainable = tune.with_parameters(nb201_trial, accuracy_column=pair[0],
                                     latency_column=pair[1])
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                    reuse_actors=True, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=storage, name=f"{strategy}-{seed}", verbose=0),
    )
    with contextlib.redirect_stdout(sys.stderr):  # Tune prints its banners to stdout
        frame = tuner.fit().get_dataframe()
    return [int(r) for r in frame["row"]]


def strategy_kwargs(strategy: str, latency: np.ndarray,
                    proxy: np.ndarray | None = None) -> dict[str, Any]:
    """What a hwnas strategy (or variant) is given on one pair, on either path (direct or Ray):
    evolution the prior hwnas search gives it (size and latency, known untrained) and its
    variant's changes; a proxied strategy each cell's score (``proxy``, per row). Empty for the
    others."""
    table = load_nb201()

    def latency_of(c: dict[str, Any]) -> float:
        return float(latency[table.row(format_arch(c))])

    kwargs: dict[str, Any] = {}
    if strategy.startswith("evolution"):  # what hwnas search gives it: size and latency, untrained
        kwargs["prior"] = lambda c: (cell_params(c), latency_of(c))
    kwargs.update(VARIANTS.get(strategy, {}))
    if strategy == "evolution-latency":
        kwargs["known"] = {"latency_ms": latency_of}
    if strategy in PROXIED:
        if proxy is None:
            raise ValueError(f"{strategy} needs each cell's proxy score")

        def score_of(c: dict[str, Any]) -> float:
            return float(proxy[table.row(format_arch(c))])

        if strategy.startswith("evolution"):
            kwargs["proxy"] = score_of
        else:
            kwargs["score"] = lambda c, _name: score_of(c)
            kwargs["cost"] = latency_of
    return kwargs


def registered(strategy: str) -> str:
    """The registered strategy a benchmark name builds (a variant is ``evolution``)."""
    return "evolution" if strategy in VARIANTS else strategy


def proxy_of(strategy: str, accuracy_column: str) -> np.ndarray | None:
    """Each row's synflow for the dataset of ``accuracy_column`` if ``strategy`` is scored by
    it (as hwnas search scores candidates on the search's own data), else ``None``."""
    if strategy not in PROXIED:
        return None
    from benchmarks.nb201_synflow import load_synflow

    return load_synflow()[accuracy_column.split("_")[0]]


def ask_tell(strategy: str, seed: int, latency: np.ndarray,
             proxy: np.ndarray | None = None) -> tuple[Callable, Callable]:
    """``ask() -> config`` and ``tell(config, accuracy, latency)`` of a strategy by name;
    ``proxy`` is each row's score for the proxy strategies."""
    dims = nb201_dimensions()
    if strategy.startswith("optuna-"):
        import optuna
        from optuna.distributions import CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = (optuna.samplers.TPESampler(seed=seed) if strategy == "optuna-tpe"
                   else optuna.samplers.NSGAIISampler(seed=seed))
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        space = {k: CategoricalDistribution(list(v)) for k, v in dims.items()}
        trials: dict[str, Any] = {}

        def ask_optuna() -> dict[str, Any]:
            trial = study.ask(space)
            trials[format_arch(trial.params)] = trial
            return dict(trial.params)

        def tell_optuna(config: dict[str, Any], acc: float, lat: float) -> None:
            study.tell(trials.pop(format_arch(config)), [acc, lat])

        return ask_optuna, tell_optuna
    from nas.strategies import create_strategy

    search = create_strategy(registered(strategy), dims, seed=seed, objectives=OBJECTIVES,
                             **strategy_kwargs(strategy, latency, proxy))

    def tell(config: dict[str, Any], acc: float, lat: float) -> None:
        search.tell(config, {"accuracy": acc, "latency_ms": lat})

    return search.ask, tell


def run_direct(strategy: str, seed: int, budget: int, pair: tuple[str, str]) -> list[int]:
    """Rows of the table in the order the strategy asked for them, told one at a time."""
    table = load_nb201()
    accuracy, latency = objectives_of(*pair)
    ask, tell = ask_tell(strategy, seed, latency, proxy_of(strategy, pair[0]))
    rows = []
    for _ in range(budget):
        config = ask()
        row = table.row(format_arch(config))
        tell(config, float(accuracy[row]), float(latency[row]))
        rows.append(row)
    return rows


def hypervolume_ratios(rows: list[int], pair: tuple[str, str],
                       budgets: list[int]) -> list[float]:
    """Hypervolume of the first ``b`` evaluations over the true front's, per budget."""
    points = np.column_stack(objectives_of(*pair))
    norm = normalize(points, points.min(axis=0), points.max(axis=0))
    reference, maximize = (0.0, 1.0), (True, False)
    true = hypervolume_2d(norm, reference, maximize)
    return [hypervolume_2d(norm[rows[:b]], reference, maximize) / true for b in budgets]


def task(job: tuple[str, str, str, int, list[int]]) -> tuple[str, str, str, int, list[float],
                                                               float]:
    accuracy_column, latency_column, strategy, seed, budgets = job
    pair = (accuracy_column, latency_column)
    start = time.process_time()
    rows = run_direct(strategy, seed, max(budgets), pair)
    return (accuracy_column, latency_column, strategy, seed,
            hypervolume_ratios(rows, pair, budgets), time.process_time() - start)


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "q1": float(np.percentile(values, 25)),
            "q3": float(np.percentile(values, 75))}


def verdict(per: dict[str, dict[str, dict[str, float]]], budgets: list[int],
            focus: str = "evolution") -> dict[str, Any]:
    """``focus`` (evolution, or a variant) against the best other strategy of
    :data:`STRATEGIES`, by median. The keys say ``evolution`` whatever the focus, as in the
    saved reports."""
    out: dict[str, Any] = {"best_other": {}, "evolution_ge_best": {}}
    for b in map(str, budgets):
        others = {s: v[b]["median"] for s, v in per.items() if s in STRATEGIES[1:]}
        if focus not in per or not others:
            continue
        best = max(others, key=others.__getitem__)
        out["best_other"][b] = {"strategy": best, "median": others[best]}
        out["evolution_ge_best"][b] = per[focus][b]["median"] >= others[best]
    if focus in per:
        out["evolution_reaches_goal"] = per[focus][str(max(budgets))]["median"] >= GOAL
    return out


def print_table(report: dict[str, Any], budgets: list[int], focus: str = "evolution") -> None:
    """A Markdown table: per pair and budget, ``focus``'s median / the best other's, marked
    ``*`` where ``focus`` is below it and ``!`` where it is below the goal at the last budget."""
    verdicts = [verdict(p["hypervolume_ratio"], budgets, focus) for p in report["pairs"]]
    first = report.get("first_seed", 0)
    seeds = f"{report['seeds']} seeds" + (f" ({first}-{first + report['seeds'] - 1})" if first
                                          else "")
    print(f"Hypervolume / true front's, median of {seeds}: {focus} / best of "
          f"{', '.join(STRATEGIES[1:])} (`*` {focus} below it; `!` below {GOAL} at "
          f"{max(budgets)})\n")
    print("| accuracy | latency | " + " | ".join(map(str, budgets)) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for pair, v in zip(report["pairs"], verdicts):
        per = pair["hypervolume_ratio"]
        cells = []
        for b in map(str, budgets):
            evo = per.get(focus, {}).get(b, {}).get("median", float("nan"))
            best = v["best_other"].get(b, {}).get("median", float("nan"))
            mark = "" if v["evolution_ge_best"].get(b, True) else "\\*"
            if b == str(max(budgets)) and not v.get("evolution_reaches_goal", True):
                mark += "!"
            cells.append(f"{evo:.3f} / {best:.3f}{mark}")
        name = pair["latency_column"].removeprefix("lat_ms_")
        print(f"| {pair['accuracy_column'].split('_')[0]} | {name} | " + " | ".join(cells) + " |")
    print()
    for b in map(str, budgets):
        wins = sum(v["evolution_ge_best"].get(b, False) for v in verdicts)
        print(f"- {focus} >= best other at {b}: {wins} of {len(report['pairs'])} pairs")
    goal = sum(v.get("evolution_reaches_goal", False) for v in verdicts)
    print(f"- {focus} >= {GOAL} at {max(budgets)}: {goal} of {len(report['pairs'])} pairs")
    medians = []
    for b in map(str, budgets):
        evo = [p["hypervolume_ratio"][focus][b]["median"] for p in report["pairs"]
               if focus in p["hypervolume_ratio"]]
        best = [v["best_other"][b]["median"] for v in verdicts if b in v["best_other"]]
        if evo and best:
            medians.append(f"{b}: {np.median(evo):.3f} / {np.median(best):.3f}")
    print(f"- median over the pairs, {focus} / best other: {', '.join(medians)}")
    print(f"- CPU seconds per strategy: {report['cpu_seconds']}; wall {report['wall_seconds']} s "
          f"with {report['jobs']} jobs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy-columns", default=",".join(ACCURACIES))
    parser.add_argument("--latency-columns", default="all",
                        help="comma-separated, or 'all' (every lat_ms_ column)")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds FIRST..FIRST+SEEDS-1 (e.g. 5: seeds other than the ones "
                             "the defaults were chosen on)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"of {', '.join([*STRATEGIES, *PROXY_STRATEGIES, *VARIANTS])}")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (direct drive)")
    parser.add_argument("--ray", action="store_true", help="through Ray Tune, not directly")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--table", nargs="+", metavar="JSON",
                        help="print the table of saved --json reports (one run split in parts, "
                             "or other strategies on the same pairs)")
    parser.add_argument("--focus", default="evolution",
                        help="the strategy the table sets against the best of random, TPE and "
                             "NSGA-II (e.g. evolution-climb)")
    args = parser.parse_args()
    if args.table:
        try:
            merged = merge_reports([json.loads(Path(p).read_text()) for p in args.table])
        except ValueError as err:
            parser.error(str(err))
        if not any(args.focus in p["hypervolume_ratio"] for p in merged["pairs"]):
            parser.error(f"--focus {args.focus}: no report holds it")
        print_table(merged, merged["budgets"], args.focus)
        return

    table = load_nb201()
    accuracies = args.accuracy_columns.split(",")
    latencies = (latency_columns() if args.latency_columns == "all"
                 else args.latency_columns.split(","))
    for column in accuracies + latencies:
        table.column(column)  # a ValueError naming the known columns
    strategies = args.strategies.split(",")
    known = [*STRATEGIES, *PROXY_STRATEGIES, *VARIANTS]
    unknown = [s for s in strategies if s not in known]
    if unknown:
        parser.error(f"strategies must be among {', '.join(known)}, got {', '.join(unknown)}")
    if args.jobs < 1 or args.seeds < 1 or args.budget < 1 or args.first_seed < 0:
        parser.error("--jobs, --seeds and --budget must be >= 1, --first-seed >= 0")
    budgets = [b for b in BUDGETS if b <= args.budget] or [args.budget]
    jobs = [(a, lat, s, seed, budgets) for a in accuracies for lat in latencies
            for s in strategies
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    wall = time.perf_counter()
    if args.ray:
        results = run_all_ray(jobs, budgets)
    elif args.jobs == 1:
        results = [task(j) for j in jobs]
    else:
        with Pool(args.jobs) as pool:
            results = pool.map(task, jobs, chunksize=1)
    wall = time.perf_counter() - wall

    ratios: dict[tuple[str, str, str], list[list[float]]] = {}
    cpu: dict[str, float] = {s: 0.0 for s in strategies}
    for a, lat, s, _, hv, seconds in results:
        ratios.setdefault((a, lat, s), []).append(hv)
        cpu[s] += seconds
    pairs = []
    for a in accuracies:
        for lat in latencies:
            per = {s: {str(b): summarise([r[i] for r in ratios[(a, lat, s)]])
                       for i, b in enumerate(budgets)} for s in strategies}
            pairs.append({"accuracy_column": a, "latency_column": lat,
                          "hypervolume_ratio": per, "verdict": verdict(per, budgets)})
    report = {"seeds": args.seeds, "budgets": budgets, "pairs": pairs,
              **({"first_seed": args.first_seed} if args.first_seed else {}),
              "cpu_seconds": {s: round(v, 1) for s, v in cpu.items()},
              "wall_seconds": round(wall, 1), "jobs": args.jobs}
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print_table(report, budgets, args.focus if args.focus in strategies else strategies[0])


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of several ``--json`` reports: the pairs of all of them in order, a pair in
    more than one with the strategies of each (a strategy in two keeps the first's figures, and
    counts only the CPU seconds of the runs whose figures are kept)."""
    if len({(r["seeds"], r.get("first_seed", 0), tuple(r["budgets"])) for r in reports}) > 1:
        raise ValueError("the reports differ in seeds or budgets; merge only like runs")
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    cpu: dict[str, float] = {}
    for report in reports:
        kept: dict[str, int] = {}
        for pair in report["pairs"]:
            key = (pair["accuracy_column"], pair["latency_column"])
            old = pairs.get(key, {"hypervolume_ratio": {}})["hypervolume_ratio"]
            new = {s: v for s, v in pair["hypervolume_ratio"].items() if s not in old}
            for strategy in new:
                kept[strategy] = kept.get(strategy, 0) + 1
            pairs[key] = {**pair, "hypervolume_ratio": {**old, **new}}
        for strategy, count in kept.items():
            share = count / len(report["pairs"])
            cpu[strategy] = round(cpu.get(strategy, 0.0) + share * report["cpu_seconds"][strategy],
                                  1)
    return {**reports[0], "pairs": list(pairs.values()), "cpu_seconds": cpu,
            "wall_seconds": round(sum(r["wall_seconds"] for r in reports), 1)}


def run_all_ray(jobs: list[tuple[str, str, str, int, list[int]]],
                budgets: list[int]) -> list[tuple[str, str, str, int, list[float], float]]:
    """Every job through local Ray Tune, one after the other (Tune runs 2 trials at a time)."""
    import ray

    # address="local": always a fresh private instance, never a cluster some other process
    # started on this machine (whose CPUs and code path would not be ours).
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    results = []
    try:
        with tempfile.TemporaryDirectory() as storage:
            for a, lat, s, seed, _ in jobs:
                start = time.perf_counter()
                rows = run_ray(s, seed, max(budgets), (a, lat), storage)
                results.append((a, lat, s, seed, hypervolume_ratios(rows, (a, lat), budgets),
                                time.perf_counter() - start))
                print(f"{a} x {lat} {s} seed {seed}: {len(rows)} evaluations in "
                      f"{results[-1][-1]:.0f} s", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    return results


if __name__ == "__main__":
    main()
