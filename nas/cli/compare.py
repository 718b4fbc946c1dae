"""``hwnas compare`` (search strategies against each other) and ``hwnas ablation`` (the seed
work's multiplier / fusion / both ablation, at equal metric for latency or memory): many
searches under one MLflow run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from nas.cli._common import AddressOpt, JsonOpt, TrackingUriOpt, emit_json, err, out, user_input
from nas.strategies.registry import strategy_names


def compare(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML) shared by every search.")] = None,
    strategies: Annotated[str, typer.Option(
        help=f"Comma-separated, any of: {', '.join(strategy_names())}.")
                          ] = ",".join(strategy_names()),
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 0..K-1 per strategy.")] = 3,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials per search (default: the "
                                               "config's).")] = None,
    surrogate: Annotated[bool, typer.Option(
        help="Score candidates with the training-free NASWOT proxy (nas/surrogate.py) instead "
        "of training: many seeds in minutes.")] = False,
    curation: Annotated[bool, typer.Option(
        "--curation", help="Run each strategy on the curated space and on its uncurated twin "
        "(channels step by 1) and report how many trials the curated one needs to reach the "
        "uncurated one's final hypervolume.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML report, plots "
                                          "and tables.")] = Path("comparisons"),
    tracking_uri: TrackingUriOpt = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare search strategies: every strategy x seed with the same budget, each its own MLflow
    search run under one comparison run; hypervolume-vs-trials and Pareto-front plots, a table
    and an HTML report."""
    from nas.analysis.compare import TARGET, plan_comparison, run_comparison
    from nas.config import load_config

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    with user_input():
        cfg = load_config(config).with_overrides(**{"tracking.uri": tracking_uri})
        plan = plan_comparison(cfg, names, seeds, trials=trials, surrogate=surrogate,
                               curation=curation)

    def progress(strategy: str, seed: int, summary: Any) -> None:
        if summary is None:
            err.print(f"search {strategy} seed {seed} ...", highlight=False)
        else:
            err.print(f"search {strategy} seed {seed}: hypervolume {summary.hypervolume:.4f} "
                      f"({summary.trials} trials, {summary.seconds:.0f} s)", highlight=False)

    with open(os.devnull, "w") as quiet:
        result = run_comparison(plan, out_dir=out_dir, address=address, on_search=progress,
                                tune_output=quiet)
    if as_json:
        emit_json(result.to_json())
        return
    table = Table("strategy", "seeds", "final HV median [IQR]", f"trials to {TARGET:.0%}",
                  "s/search", box=box.SIMPLE, title=f"{result.comparison_id} "
                  f"(best HV {result.best_hv:.4f})")
    for r in result.results:
        reach = (f"{r.trials_to_target:.0f} ({r.reached}/{r.seeds})"
                 if r.trials_to_target is not None else "never")
        table.add_row(r.strategy, str(r.seeds), f"{r.final_hv[1]:.4f} [{r.final_hv[0]:.4f}-"
                      f"{r.final_hv[2]:.4f}]", reach, f"{r.seconds:.0f}")
    out.print(table)
    for r in result.results:
        if r.reached_uncurated_final is not None:
            value = (f"{r.trials_to_uncurated_final:.0f} trials" if r.trials_to_uncurated_final
                     is not None else "never")
            out.print(f"{r.strategy} reaches the uncurated final hypervolume in {value} "
                      f"({r.reached_uncurated_final}/{r.seeds} seeds)", highlight=False)
    out.print(f"report: {result.report}; MLflow comparison run {result.run_id}",
              highlight=False)


def ablation(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML): task, space, target, training.")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials per arm (capped at the "
                                               "arm's space size).")] = None,
    surrogate: Annotated[bool, typer.Option(help="Use the NASWOT proxy instead of training."
                                            )] = False,
    tolerance: Annotated[float, typer.Option(min=0.0, help="Drop in the task's metric allowed "
                                             "against the baseline (0.005 = half a point).")
                         ] = 0.005,
    arms: Annotated[str, typer.Option(
        help="Comma-separated, any of: multiplier, fusion, both, io (both plus the input "
        "resolution and the head's output scales or stride).")] = "multiplier,fusion,both",
    minimise: Annotated[str, typer.Option(
        help="latency: each arm picks the fastest candidate at equal metric, slower ones are "
        "rejected; memory: the least peak activation memory, larger ones rejected.")
                        ] = "latency",
    pin: Annotated[list[str] | None, typer.Option(
        help="DIM=VALUE (repeatable): move the baseline off the space's on a dimension no arm "
        "is about, e.g. head_scales=1; arms that do not free it hold it there.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JSON result.")
                       ] = Path("ablations"),
    tracking_uri: TrackingUriOpt = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The seed work's ablation: from the space's MobileNetV2-shaped baseline, search (a) only
    the width multiplier, (b) only IBN -> fused-IBN per stage, (c) both (and with --arms io,
    both plus the input and output dimensions); report for each the candidate with the lowest
    latency (or peak activation memory) within the tolerance of the baseline's metric, its
    latency and memory reductions and the stages it fused."""
    from nas.analysis.ablation import plan_ablation, run_ablation
    from nas.config import load_config

    names = tuple(a.strip() for a in arms.split(",") if a.strip())
    with user_input():
        bad = [p for p in pin or [] if "=" not in p]
        if bad:
            raise ValueError(f"--pin takes DIM=VALUE, got {bad[0]!r}")
        pins = dict(p.split("=", 1) for p in pin or [])
        cfg = load_config(config).with_overrides(**{"tracking.uri": tracking_uri})
        plan = plan_ablation(cfg, trials=trials, surrogate=surrogate, tolerance=tolerance,
                             arms=names, minimise=minimise, pins=pins)

    def progress(arm: str, result: Any) -> None:
        if result is not None:
            err.print(f"arm {arm}: {result.trials} trials", highlight=False)

    with open(os.devnull, "w") as quiet:
        result = run_ablation(plan, out_dir=out_dir, address=address, tune_output=quiet,
                              on_arm=progress)
    if as_json:
        emit_json(result.to_json())
        return
    print_ablation(result)


def print_ablation(result: Any) -> None:
    """The human form of an :class:`~nas.analysis.ablation.Ablation`: a table of the arms, each
    picked architecture's string whole on its own line, and where the plot and the run are."""
    table = Table("arm", "trials", result.metric, "latency ms", "peak KiB", "latency cut",
                  "memory cut", "fused stages", box=box.SIMPLE,
                  title=f"{result.ablation_id}: baseline {result.metric} "
                  f"{result.baseline_accuracy:.4f}, {result.baseline_latency_ms:.4f} ms, "
                  f"{result.baseline_peak_activation_bytes / 1024:.1f} KiB; picked for "
                  f"{result.minimise}"
                  + "".join(f"; {k}={v}" for k, v in result.pins.items()))
    for a in result.arms:
        if a.arch is None:
            table.add_row(a.arm, f"{a.trials} ({a.rejected} rejected)", "-", "-", "-",
                          "none within tolerance", "-", "-")
            continue
        table.add_row(a.arm, f"{a.trials} ({a.rejected} rejected)", f"{a.accuracy:.4f}",
                      f"{a.latency_ms:.4f}", f"{a.peak_activation_bytes / 1024:.1f}",
                      f"{a.reduction:.1%}", f"{a.memory_reduction:.1%}",
                      ",".join(map(str, a.fused_stages)) or "none")
    out.print(table)
    # the architecture strings below the table, whole, one line each: as a ninth column they
    # were folded a few characters wide over dozens of lines, and they are what gets copied
    # into `hwnas arch` or `hwnas train`
    for a in result.arms:
        if a.arch is not None:
            out.print(f"{a.arm}: {a.arch}", highlight=False)
    out.print(f"plot: {result.plot}; MLflow ablation run {result.run_id}", highlight=False)
