"""Compare search strategies on one config: every strategy x seed, the same budget.

``hwnas compare`` runs :func:`~nas.search.run_search` once per strategy and seed, each its own
MLflow search run nested under one *comparison* run and tagged ``hwnas.comparison_id``. All
searches share the config, so the hypervolume reference point is the same and the curves compare
directly. The comparison run gets:

- ``hypervolume.png``: hypervolume against trials, median and interquartile band per strategy;
- ``hypervolume_compute.png``: hypervolume against compute (seconds of training plus the
  zero-shot strategies' proxy scoring: CPU-seconds on a CPU, GPU-seconds on a GPU), same bands,
  since a trial of a screened strategy costs more than one of the others;
- ``fronts.png``: each strategy's Pareto front over all its seeds' candidates, overlaid;
- ``comparison.json`` and ``comparison.md``: per strategy the final hypervolume (median
  [quartiles]), the trials needed to reach 95% of the best final hypervolume of any run (median
  over seeds; missing when a seed never got there), the compute and wall time per search, and the
  hypervolume at equal compute: at the median compute of the cheapest strategy's searches; the
  JSON also holds each seed's hypervolume and compute after every counted trial;
- ``report.html``: all of it in one page (also written to ``--out``).

With ``curation=True`` every strategy runs on the curated space and on its uncurated twin
(channels step by 1), and the table adds, per curated variant, the trials it needed to reach the
uncurated variant's median final hypervolume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import SearchConfig
from nas.pareto import pareto_mask
from nas.search import SearchSummary, ray_session, run_search

TARGET = 0.95


@dataclass(frozen=True)
class StrategyResult:
    strategy: str
    seeds: int
    final_hv: tuple[float, float, float]  # 25th, 50th, 75th percentile
    trials_to_target: float | None  # median over seeds that got there
    reached: int  # seeds that got there
    seconds: float  # median wall time of one search
    curves: list[list[float]] = field(default_factory=list)
    front: list[dict[str, Any]] = field(default_factory=list)
    # curated variants of a curation comparison: trials (median over seeds) to reach the
    # uncurated variant's median final hypervolume, and how many seeds got there
    trials_to_uncurated_final: float | None = None
    reached_uncurated_final: int | None = None
    compute_seconds: float = 0.0  # median compute of one search (train + proxy seconds)
    computes: list[list[float]] = field(default_factory=list)  # compute at each curve point
    # median over seeds of the hypervolume once `equal_compute` seconds were spent
    hv_at_equal_compute: float | None = None


@dataclass(frozen=True)
class Comparison:
    comparison_id: str
    run_id: str
    trials: int
    surrogate: bool
    best_hv: float
    results: list[StrategyResult]
    report: str
    equal_compute: float = 0.0  # seconds: the cheapest strategy's median compute per search

    def to_json(self) -> dict[str, Any]:
        """Everything, per-seed curves included: ``curves[s][n - 1]`` is seed ``s``'s
        hypervolume after ``n`` counted trials (trained candidates unless ``count_rejected``),
        so one comparison reports any smaller budget too (``benchmarks/quickstart_strategies.py
        --comparison``), and ``computes[s][n - 1]`` the compute spent by then."""
        return asdict(self)


def _padded(curve: Sequence[float], length: int) -> np.ndarray:
    values = list(curve)[:length] or [0.0]
    return np.array(values + [values[-1]] * (length - len(values)))


def hv_at(curve: Sequence[float], compute: Sequence[float], seconds: float) -> float:
    """Hypervolume once ``seconds`` of compute were spent: that of the last trial finished by
    then (0 before the first)."""
    done = [hv for hv, c in zip(curve, compute) if c <= seconds]
    return float(done[-1]) if done else 0.0


def first_reach(curve: np.ndarray, target: float) -> int | None:
    """Trials (1-based) after which ``curve`` first reaches ``target``."""
    hits = np.flatnonzero(curve >= target)
    return int(hits[0]) + 1 if hits.size else None


def summarize(strategy: str, runs: Sequence[SearchSummary], trials: int,
              best: float) -> StrategyResult:
    curves = [_padded(r.curve, trials) for r in runs]
    finals = np.array([c[-1] for c in curves])
    reach = [first_reach(c, TARGET * best) for c in curves]
    got = [t for t in reach if t is not None]
    points = [p for r in runs for p in r.points]
    front = []
    if points:
        mask = pareto_mask([[p["accuracy"], p["latency_ms"]] for p in points], (True, False))
        front = sorted((p for p, keep in zip(points, mask) if keep),
                       key=lambda p: p["latency_ms"])
    q = np.percentile(finals, [25, 50, 75])
    computes = [list(r.compute) for r in runs]
    return StrategyResult(strategy, len(runs), (float(q[0]), float(q[1]), float(q[2])),
                          float(np.median(got)) if got else None, len(got),
                          float(np.median([r.seconds for r in runs])),
                          [c.tolist() for c in curves], front,
                          compute_seconds=float(np.median([c[-1] if c else 0.0
                                                           for c in computes])),
                          computes=computes)


def at_equal_compute(results: list[StrategyResult], runs: dict[str, list[SearchSummary]]
                     ) -> tuple[float, list[StrategyResult]]:
    """The cheapest strategy's median compute per search, and every strategy's median
    hypervolume once it had spent that much."""
    from dataclasses import replace

    budget = min((r.compute_seconds for r in results), default=0.0)
    return budget, [replace(r, hv_at_equal_compute=float(np.median(
        [hv_at(s.curve, s.compute, budget) for s in runs[r.strategy]]))) for r in results]


def _markdown(cmp_id: str, results: Sequence[StrategyResult], best: float, trials: int,
              surrogate: bool, equal_compute: float = 0.0) -> str:
    source = "the NASWOT surrogate" if surrogate else "brief training"
    lines = [f"# Strategy comparison {cmp_id}", "",
             f"{trials} trials per search; accuracy from {source}; best final hypervolume of "
             f"any run {best:.4f}. Compute: training seconds plus proxy seconds (CPU-s on a "
             f"CPU); equal compute: {equal_compute:.0f} s, the cheapest strategy's median.", "",
             f"| strategy | seeds | final hypervolume, median [quartiles] | trials to "
             f"{TARGET:.0%} of best (seeds there) | compute per search (CPU-s) | hypervolume at "
             f"equal compute | seconds per search |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        reach = (f"{r.trials_to_target:.0f} ({r.reached}/{r.seeds})"
                 if r.trials_to_target is not None else f"never (0/{r.seeds})")
        equal = "-" if r.hv_at_equal_compute is None else f"{r.hv_at_equal_compute:.4f}"
        lines.append(f"| {r.strategy} | {r.seeds} | {r.final_hv[1]:.4f} [{r.final_hv[0]:.4f}-"
                     f"{r.final_hv[2]:.4f}] | {reach} | {r.compute_seconds:.0f} | {equal} | "
                     f"{r.seconds:.0f} |")
    curated = [r for r in results if r.reached_uncurated_final is not None]
    if curated:
        lines += ["", "| curated variant | trials to reach the uncurated variant's median final "
                  "hypervolume (seeds there) |", "|---|---|"]
        for r in curated:
            value = (f"{r.trials_to_uncurated_final:.0f}" if r.trials_to_uncurated_final
                     is not None else "never")
            lines.append(f"| {r.strategy} | {value} ({r.reached_uncurated_final}/{r.seeds}) |")
    return "\n".join(lines) + "\n"


def _plots(results: Sequence[StrategyResult], folder: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for r in results:
        curves = np.array(r.curves)
        steps = np.arange(1, curves.shape[1] + 1)
        q25, q50, q75 = np.percentile(curves, [25, 50, 75], axis=0)
        (line,) = ax.plot(steps, q50, label=f"{r.strategy} ({r.seeds} seeds)")
        ax.fill_between(steps, q25, q75, color=line.get_color(), alpha=0.2)
    hv = _save(fig, ax, "trials", "hypervolume (accuracy x latency)", title,
               folder / "hypervolume.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    end = max((c[-1] for r in results for c in r.computes if c), default=1.0)
    grid = np.linspace(0.0, end, 200)
    for r in results:
        # each seed's step function (the hypervolume once that much compute was spent)
        steps = np.array([[hv_at(curve, compute, g) for g in grid]
                          for curve, compute in zip(r.curves, r.computes)])
        q25, q50, q75 = np.percentile(steps, [25, 50, 75], axis=0)
        (line,) = ax.plot(grid, q50, label=f"{r.strategy} ({r.seeds} seeds)")
        ax.fill_between(grid, q25, q75, color=line.get_color(), alpha=0.2)
    by_compute = _save(fig, ax, "compute (train + proxy seconds)",
                       "hypervolume (accuracy x latency)", title,
                       folder / "hypervolume_compute.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for r in results:
        if r.front:
            xs = [p["latency_ms"] for p in r.front]
            ys = [p["accuracy"] for p in r.front]
            ax.step(xs, ys, where="post", marker="o", ms=4, label=r.strategy)
    fronts = _save(fig, ax, "predicted latency (ms)", "accuracy",
                   "Pareto fronts (all seeds of each strategy)", folder / "fronts.png")
    return [hv, by_compute, fronts]


def _save(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:  # a comparison where no strategy trained a model
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _html(markdown: str, pngs: Sequence[Path], path: Path) -> Path:
    import base64
    import html

    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line.startswith("# "):
            rows.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip() and not line.startswith("|"):
            rows.append(f"<p>{html.escape(line)}</p>")
    table = "".join(r for r in rows if r.startswith("<tr>"))
    text = "".join(r for r in rows if not r.startswith("<tr>"))
    images = "".join(
        f'<img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs)
    path.write_text(f"<!doctype html><meta charset=utf-8><title>hwnas comparison</title>"
                    f"<style>body{{font-family:sans-serif;margin:2em}}td{{border:1px solid #ccc;"
                    f"padding:4px 8px}}table{{border-collapse:collapse}}</style>{text}"
                    f"<table>{table}</table>{images}")
    return path


def _label(strategy: str, curated: bool | None) -> str:
    return strategy if curated is None else f"{strategy} ({'curated' if curated else 'uncurated'})"


def _against_uncurated(results: list[StrategyResult], twins: dict[str, str]
                       ) -> list[StrategyResult]:
    """Fill ``trials_to_uncurated_final`` of each curated variant; ``twins`` maps a curated
    variant's label to its uncurated twin's."""
    from dataclasses import replace

    by_label = {r.strategy: r for r in results}
    out = []
    for r in results:
        twin = by_label.get(twins.get(r.strategy, ""))
        if twin is not None:
            target = twin.final_hv[1]
            reach = [first_reach(np.array(c), target) for c in r.curves]
            got = [t for t in reach if t is not None]
            r = replace(r, trials_to_uncurated_final=float(np.median(got)) if got else None,
                        reached_uncurated_final=len(got))
        out.append(r)
    return out


def shares_params(strategy: str, params: dict[str, Any]) -> bool:
    """Whether hwnas strategy ``strategy`` takes every one of the base strategy's ``params``
    (``hybrid`` takes ``evolution``'s population settings): then it runs with them, so the two
    differ only in what tells them apart. Any other strategy runs with its defaults."""
    import inspect

    from nas.strategies.registry import REGISTRY

    spec = REGISTRY.get(strategy)
    factory = None if spec is None else spec.ask_tell
    return bool(params) and factory is not None and set(params) <= set(
        inspect.signature(factory).parameters)


@dataclass(frozen=True)
class ComparisonPlan:
    """A checked comparison request (:func:`plan_comparison`), run by :func:`run_comparison`."""

    config: SearchConfig
    strategies: tuple[str, ...]
    seeds: int
    curation: bool


def plan_comparison(config: SearchConfig, strategies: Sequence[str], seeds: int, *,
                    trials: int | None = None, surrogate: bool = False,
                    curation: bool = False) -> ComparisonPlan:
    """The comparison's base config, checked before the first search: every problem (unknown
    strategy, config, tracking URI, estimator, data) is a one-line ``ValueError``."""
    from nas.search import prepare
    from nas.strategies.registry import strategy_names
    from nas.tracking import check_tracking_uri

    unknown = [s for s in strategies if s not in strategy_names()]
    if unknown or not strategies:
        raise ValueError(f"unknown strategies {', '.join(unknown) or '(none given)'}; known: "
                         f"{', '.join(strategy_names())}")
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    base = config.with_overrides(**{"trials": trials, "training.surrogate": surrogate or None})
    check_tracking_uri(base.tracking.uri)
    prepare(base)
    if curation:
        prepare(base.with_overrides(**{"space.curated": False}))
    return ComparisonPlan(base, tuple(strategies), seeds, curation)


def run_comparison(plan: ComparisonPlan, *, out_dir: str | Path = "comparisons",
                   address: str | None = None,
                   on_search: Callable[[str, int, SearchSummary | None], None] | None = None,
                   tune_output: Any = None) -> Comparison:
    """Run every strategy x seed (seeds ``0..seeds-1``) and report (see module docstring)."""
    from mlflow.tracking import MlflowClient

    from nas.signals import held
    from nas.tracking import experiment_id
    from nas.tracking.store import ended_run

    base, strategies, seeds, curation = plan.config, plan.strategies, plan.seeds, plan.curation
    cmp_id = f"{base.name}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
    client = MlflowClient(base.tracking.uri)
    exp = experiment_id(client, base.tracking.experiment, base.tracking.uri)
    parent = client.create_run(exp, run_name=cmp_id, tags={
        "hwnas.role": "comparison", "hwnas.comparison_id": cmp_id,
        "hwnas.strategies": ",".join(strategies), "hwnas.seeds": str(seeds),
        "hwnas.surrogate": str(base.training.surrogate)})
    run_id = parent.info.run_id
    variants = [(s, c) for s in strategies for c in ((True, False) if curation else (None,))]
    runs: dict[str, list[SearchSummary]] = {_label(s, c): [] for s, c in variants}
    with ended_run(client, run_id):  # FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED
        with ray_session(address):
            for strategy, curated in variants:
                label = _label(strategy, curated)
                for seed in range(seeds):
                    if on_search is not None:
                        on_search(label, seed, None)
                    other = strategy != base.strategy.name and not shares_params(
                        strategy, base.strategy.params)
                    tag = "" if curated is None else ("-curated" if curated else "-uncurated")
                    cfg = base.with_overrides(**{
                        "strategy.name": strategy, "strategy.params": {} if other else None,
                        "seed": seed, "name": f"{cmp_id}-{strategy}{tag}-s{seed}",
                        "space.curated": curated})
                    summary = run_search(cfg, extra_tags={"hwnas.comparison_id": cmp_id},
                                         nest_under=run_id, tune_output=tune_output)
                    runs[label].append(summary)
                    if on_search is not None:
                        on_search(label, seed, summary)
        best = max((max(r.curve or [0.0]) for rs in runs.values() for r in rs), default=0.0)
        twins = {_label(s, True): _label(s, False) for s, c in variants if c}
        equal, results = at_equal_compute(
            _against_uncurated([summarize(label, rs, base.trials, best)
                                for label, rs in runs.items()], twins), runs)
        folder = Path(out_dir) / cmp_id
        folder.mkdir(parents=True, exist_ok=True)
        markdown = _markdown(cmp_id, results, best, base.trials, base.training.surrogate,
                             equal)
        (folder / "comparison.md").write_text(markdown)
        pngs = _plots(results, folder, f"{cmp_id}: median and IQR over {seeds} seeds")
        report = _html(markdown, pngs, folder / "report.html")
        comparison = Comparison(cmp_id, run_id, base.trials, base.training.surrogate, best,
                                results, str(report.resolve()), equal)
        (folder / "comparison.json").write_text(json.dumps(comparison.to_json(), indent=2))
        with held():  # a SIGTERM waits for these writes
            for file in sorted(folder.iterdir()):
                client.log_artifact(run_id, str(file))
            for r in results:
                name = r.strategy.replace(" (", ".").replace(")", "")  # MLflow: no parentheses
                client.log_metric(run_id, f"final_hypervolume.{name}", r.final_hv[1])
        return comparison
