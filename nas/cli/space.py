"""``hwnas space``: list the search spaces, show their choices, sample from them, and map the
latency landscape that motivates curation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.table import Table

from nas.cli._common import (
    CuratedOpt,
    HeadOpt,
    JsonOpt,
    PFactorOpt,
    emit_json,
    mib,
    out,
    si,
    user_estimator,
    user_input,
    user_space,
)
from searchspaces.spaces import SPACES

app = typer.Typer(help="Search spaces: list them, show their choices, sample from them.",
                  no_args_is_help=True)
SpaceArg = Annotated[str, typer.Argument(help=f"Space name: {', '.join(SPACES)}.")]


@app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """List the registered search spaces (sizes for the curated space at P=8)."""
    rows = []
    for name, factory in SPACES.items():
        space = factory()
        doc = " ".join((factory.__doc__ or "").strip().split("\n\n")[0].split())
        rows.append({"name": name, "description": doc, "num_stages": len(space.skeleton),
                     "size_curated_p8": space.size()})
    if as_json:
        emit_json(rows)
        return
    table = Table("space", "stages", "size (curated, P=8)", "description")
    for r in rows:
        table.add_row(r["name"], str(r["num_stages"]), f"{r['size_curated_p8']:.3e}",
                      r["description"])
    out.print(table)


@app.command("show")
def space_show(name: SpaceArg, parallelism_factor: PFactorOpt = 8, curated: CuratedOpt = True,
               head: HeadOpt = "head", as_json: JsonOpt = False) -> None:
    """Show a space's dimensions, their choices and the number of architectures."""
    space = user_space(name, parallelism_factor, curated, head)
    info = space.describe()
    if as_json:
        emit_json(info)
        return
    out.print(f"[bold]{space.label}[/bold]: {info['size']:,} architectures "
              f"({info['size']:.3e}); channel divisor {info['channel_divisor']}; "
              f"stage strides {info['strides']}")
    table = Table("dimension", "#", "choices")
    for dim, choices in info["dimensions"].items():
        shown = ", ".join(map(str, choices))
        if len(choices) > 12:
            shown = f"{choices[0]}, {choices[1]}, ..., {choices[-1]} (step 1)"
        table.add_row(dim, str(len(choices)), shown)
    out.print(table)


def _numbers(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


@app.command("landscape")
def space_landscape(
    name: SpaceArg,
    estimator: Annotated[str, typer.Option(
        "--estimator", "-e", help="Estimator folder, or the name of a shipped one, built for "
        "this space.")],
    parallelism_factor: Annotated[int | None, typer.Option(
        "--parallelism-factor", "-p", min=1, help="P of the curated space (default: the "
        "estimator's).")] = None,
    stages: Annotated[str | None, typer.Option(help="Stages to sweep, e.g. 3,5 (default: all)."
                                               )] = None,
    kinds: Annotated[str, typer.Option(help="Block kinds to sweep.")] = "ibn,fibn,conv",
    starts: Annotated[int, typer.Option(min=0, help="Random starts of the greedy channel "
                                        "descents (0 skips them).")] = 32,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the descents' starts.")] = 0,
    png: Annotated[Path | None, typer.Option(help="Write the latency-vs-channels plot here.")
                   ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Why curation helps: latency against channel count per stage and block kind, uncurated
    (step 1) against curated (multiples of P), with roughness measures (share of unit steps
    that go down, local minima) and the local minima a greedy descent over channels meets."""
    from nas.analysis.landscape import landscape_plan, plot_landscape, run_landscape

    est, _ = user_estimator(estimator)
    with user_input():
        plan = landscape_plan(
            name, est, parallelism_factor,
            _numbers(stages, "--stages") if stages is not None else None,
            [k.strip() for k in kinds.split(",") if k.strip()], starts=starts)
    report = run_landscape(plan, seed)
    written = plot_landscape(report, png) if png is not None else None
    if as_json:
        emit_json({**report.to_dict(), "png": str(written) if written else None})
        return
    out.print(report.table(), highlight=False)
    if written is not None:
        out.print(f"plot: {written}", highlight=False)


@app.command("sample")
def space_sample(
    name: SpaceArg,
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random generator.")] = 0,
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    head: HeadOpt = "head",
    details: Annotated[bool, typer.Option(
        "--details", help="Add params, MACs and peak activation memory of each.")] = False,
    estimator: Annotated[str | None, typer.Option(
        "--estimator", "-e", help="With --details, add the latency this estimator predicts "
        "(a folder or a shipped name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample architectures uniformly from a space (reproducible with --seed)."""
    space = user_space(name, parallelism_factor, curated, head)
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    latencies = None
    if estimator is not None:
        details = True
        latencies = user_estimator(estimator)[0].predict_many(archs)
    if not details:
        if as_json:
            emit_json([a.to_string() for a in archs])
        else:
            for a in archs:
                out.print(a.to_string(), highlight=False)
        return
    from estimators.memory import memory_report

    rows = []
    for i, a in enumerate(archs):
        rep = memory_report(a)
        rows.append({"arch": a.to_string(), "resolution": a.resolution, "params": rep.params,
                     "macs": rep.macs, "peak_activation_bytes": rep.peak_activation_bytes})
        if latencies is not None:
            rows[-1]["latency_ms"] = float(latencies[i])
    if as_json:
        emit_json(rows)
        return
    columns = ["#", "resolution", "params", "MACs", "peak activations (fp32)"]
    table = Table(*columns, *(["latency ms"] if latencies is not None else []), box=box.SIMPLE)
    for i, r in enumerate(rows):
        extra = [f"{r['latency_ms']:.3f}"] if latencies is not None else []
        table.add_row(str(i), str(r["resolution"]), si(r["params"]), si(r["macs"]),
                      mib(r["peak_activation_bytes"]), *extra)
    out.print(table)
    for i, r in enumerate(rows):
        out.print(f"#{i} {r['arch']}", highlight=False)
