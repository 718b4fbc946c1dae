"""``hwnas estimator``: build one from measurements on a back end, refit one from tables on
disk, evaluate it on whole networks, list the shipped ones (``hwnas latency`` predicts with one:
:mod:`nas.cli.latency`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from nas.cli._common import (
    EstimatorOpt,
    JsonOpt,
    emit_json,
    out,
    progress_bar,
    user_input,
)
from searchspaces.spaces import SPACES

app = typer.Typer(help="Latency estimators: build one from measurements on a back end, "
                       "refit one from tables on disk, evaluate it on whole networks, list the "
                       "shipped ones.",
                  no_args_is_help=True)


@app.command("build")
def estimator_build(
    profile: Annotated[str, typer.Option(help="Hardware profile name or YAML path (see "
                                              "'hwnas estimator list').")],
    space: Annotated[str, typer.Option(help=f"Search space: {', '.join(SPACES)}.")],
    samples: Annotated[int, typer.Option(min=10, help=(
        "Blocks to measure (a profile with block_timing: context times the blocks of whole "
        "sampled networks, inside them, until it has this many)."))],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tables, models, manifest.")],
    backend: Annotated[str | None, typer.Option(
        help="Back end; must match the profile's (checked), defaults to it.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel measuring processes.")] = 1,
    networks: Annotated[int, typer.Option(
        min=0, help="Whole networks to measure for the per-network overhead.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the block and network samples.")] = 0,
    passes: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="Timing passes over the whole networks, and over the "
        "networks whose blocks a block_timing: context profile times (each keeps its fastest "
        "pass, or the median of its passes when timed against a reference; 1 on a "
        "simulator). Default: the profile's network_passes, else 2.")] = None,
    block_passes: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="Timing passes over the blocks a build times in "
        "isolation, a sweep apart (combined as --passes; 1 on a simulator). Default: the "
        "profile's block_passes, else 1.")] = None,
    active: Annotated[int, typer.Option(
        min=0, help="Spend --samples in this many rounds of active profiling: after a random "
        "first round, each round measures the blocks the ensemble is most uncertain about "
        "(0: one random sample).")] = 0,
    head: Annotated[str | None, typer.Option(
        help="Also measure the blocks of task heads, det, seg or all (detection: dethead; "
        "segmentation: lraspp, segskip), on top of --samples, so the estimator prices "
        "detection and segmentation networks.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure sampled blocks of a space on a back end and fit the LightGBM estimator.

    Resumable: run the same command again after an interruption and it measures only what is
    missing from OUT/measurements.csv and OUT/networks.csv.
    """
    from estimators.active import round_targets
    from estimators.backends import create_backend
    from estimators.build import blocks_in_context, build_estimator, build_profile, head_kinds

    with user_input():
        prof = build_profile(profile, space, backend)
        head_kinds(head)
        if active:
            round_targets(samples, active)
            blocks_in_context(create_backend(prof), active)
    with progress_bar("build") as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"measuring {stage}" if stage != "fit" else
                                            "fitting", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        est, rep = build_estimator(prof, space, samples, out_dir, workers=workers, seed=seed,
                                   networks=networks, progress=report,
                                   network_passes=passes, active=active, head=head,
                                   block_passes=block_passes)
    _print_fit_report(out_dir, est, rep, as_json)


def _print_fit_report(out_dir: Path, est: Any, rep: dict[str, Any], as_json: bool) -> None:
    """What ``estimator build`` and ``estimator fit`` print: cross-validated error per kind
    (``-`` where a kind has too few rows to cross-validate), the network composition, the
    noise floor."""
    summary = {"out": str(out_dir), "space": est.space, "profile": est.profile,
               "backend": est.backend, "parallelism_factor": est.parallelism_factor, **rep}
    if as_json:
        emit_json(summary)
        return

    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table("kind", "rows", "work prior", "cv MAPE %", "cv within 5%", "cv within 10%",
                  box=box.SIMPLE, title=f"estimator {out_dir} ({est.profile}, {est.space}; "
                  "5-fold cross-validation on blocks)")
    for kind, e in rep["cv_error"].items():
        table.add_row(kind, str(e["rows"]), "yes" if e["prior"] else "no", num(e["mape"], 2),
                      num(e["within_5pct"], 3), num(e["within_10pct"], 3))
    out.print(table)
    ov = rep["overhead"]
    if "mape_sum_of_blocks" not in ov:
        out.print(f"network composition: sum of blocks ({ov.get('reason', 'no networks')})")
    else:
        chosen = {"sum": "sum of blocks", "scale_offset":
                  f"{ov['scale']:.4f} * sum of blocks + {ov['offset_ms']:.4f} ms",
                  "per_block": f"sum of blocks {'-' if ov['per_block_ms'] >= 0 else '+'} "
                               f"{1000 * abs(ov['per_block_ms']):.2f} us per block"}
        out.print(f"network composition: {chosen[ov['form']]} (leave-one-out MAPE on "
                  f"{ov['networks']} networks: sum {100 * ov['mape_sum_of_blocks']:.2f}%, "
                  f"a*sum+b {100 * ov['mape_loo_with_overhead']:.2f}%, per-block cost "
                  f"{100 * ov['mape_loo_per_block']:.2f}%)")
    out.print(f"noise floor (median IQR/median of repeats): {rep['noise_floor']:.4f}")
    ref = rep.get("reference")
    if ref:
        how = ("as calibrated at the start" if ref["factor"] == 1 else
               f"its fastest repeat over the build; calibrated at {ref['calibrated_ms']:.3f} ms, "
               f"in a slower minute, so the tables were rescaled by {ref['factor']:.3f}")
        out.print(f"timed against the reference network: {ref['scale_ms']:.3f} ms ({how})")
    iv = rep.get("interval")
    if iv and iv.get("calibrated"):
        out.print(f"80% interval: ensemble spread plus a floor of {iv['floor_log_sd']:.3f} in log "
                  f"latency; {iv['coverage']:.0%} of the {iv['networks']} build networks inside")
    elif iv:
        out.print("80% interval: ensemble spread only (too few networks to calibrate)")


@app.command("fit")
def estimator_fit(
    tables: Annotated[Path, typer.Option(help="Folder with measurements.csv (and networks.csv), "
                                             "as 'estimator build' writes them.")],
    profile: Annotated[str, typer.Option(help="Hardware profile the tables were measured with "
                                              "(checked against their rows).")],
    space: Annotated[str, typer.Option(help=f"Search space: {', '.join(SPACES)}.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tables, models, manifest.")],
    as_json: JsonOpt = False,
) -> None:
    """Fit the LightGBM estimator from measurement tables already on disk (no back end needed).

    The tables are copied into OUT, and the manifest records where they came from.
    """
    from estimators.build import fit_estimator

    # Everything a fit reads is the user's: a ValueError (a table of another profile, too few
    # rows of a kind, a non-positive latency) is bad input, not a bug.
    with user_input(), progress_bar("fit") as bar:
        task = bar.add_task("fitting block models", total=None)
        est, rep = fit_estimator(
            tables, profile, space, out_dir,
            progress=lambda _stage, done, total: bar.update(task, completed=done, total=total))
    _print_fit_report(out_dir, est, rep, as_json)


@app.command("eval")
def estimator_eval(
    estimator: EstimatorOpt,
    archs: Annotated[int, typer.Option(min=2, help="Held-out networks to measure.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the held-out sample.")] = 1,
    workers: Annotated[int, typer.Option(
        min=1, help="Parallel measuring processes (keep 1 on a real CPU).")] = 1,
    rows_out: Annotated[Path | None, typer.Option(
        "--rows", help="Also write each network's measured and predicted latency to this "
        "CSV.")] = None,
    passes: Annotated[int | None, typer.Option(
        min=2, show_default=False, help="Timing passes over the networks: odd against even "
        "passes give the repeatability ceiling, all of them the measurement scored (1 on a "
        "simulator). Default: as many as the estimator's build timed its networks in (at "
        "least 2), so both are timed alike.")] = None,
    head: Annotated[str, typer.Option(
        help="Task head of the held-out networks: head (classifiers), det or seg (the "
        "estimator needs that head: 'estimator build --head').")] = "head",
    as_json: JsonOpt = False,
) -> None:
    """Measure held-out whole networks on the estimator's back end and score the estimator."""
    from estimators.evaluate import check_head, evaluate_estimator
    from estimators.latency import resolve_estimator

    with user_input():
        folder = resolve_estimator(estimator)
        check_head(folder, head)
    with progress_bar("eval") as bar:
        task = bar.add_task("measuring networks", total=archs * (passes or 2))  # set on start
        metrics, rows = evaluate_estimator(
            folder, archs, seed, workers=workers, passes=passes, head=head,
            progress=lambda done, total: bar.update(task, completed=done, total=total))
    if rows_out is not None:
        import csv

        with rows_out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if as_json:
        emit_json(metrics)
        return
    nets = {"head": "", "det": "detection ", "seg": "segmentation "}.get(head, "")
    table = Table("metric", "value", box=box.SIMPLE, title=f"{estimator}: {archs} held-out "
                  f"{nets}networks")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else
                      "n/a" if value is None else str(value))
    out.print(table)
    m = metrics
    if m["repeat_passes"] == 1:
        out.print("repeatability ceiling: 1 by definition (deterministic back end, timed once)")
    else:
        out.print(f"repeatability ceiling: {m['repeat_within_10pct']:.2f} of the networks timed "
                  f"twice agree within ±10% ({m['repeat_within_5pct']:.2f} within ±5%); the "
                  f"estimator: {m['within_10pct']:.2f} ({m['within_5pct']:.2f})")


@app.command("list")
def estimator_list(as_json: JsonOpt = False) -> None:
    """List the shipped estimators and the hardware profiles."""
    from estimators.latency import SHIPPED_DIR, list_shipped, read_manifest
    from estimators.profiles import list_profiles, load_profile

    shipped = []
    for name in list_shipped():
        m = read_manifest(SHIPPED_DIR / name)
        shipped.append({"name": name, "space": m["space"], "profile": m["profile"],
                        "backend": m["backend"], "parallelism_factor": m["parallelism_factor"]})
    profiles = []
    for name in list_profiles():
        prof = load_profile(name)
        profiles.append({"name": name, "backend": prof.backend,
                         "parallelism_factor": prof.parallelism_factor,
                         "description": prof.description})
    if as_json:
        emit_json({"estimators": shipped, "profiles": profiles})
        return
    table = Table("estimator", "space", "profile", "back end", "P", box=box.SIMPLE,
                  title="shipped estimators")
    for e in shipped:
        table.add_row(e["name"], e["space"], e["profile"], e["backend"],
                      str(e["parallelism_factor"]))
    out.print(table)
    table = Table("profile", "back end", "P", "description", box=box.SIMPLE,
                  title="hardware profiles")
    for p in profiles:
        table.add_row(p["name"], p["backend"], str(p["parallelism_factor"]), p["description"])
    out.print(table)
