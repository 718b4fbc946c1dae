"""The ``hwnas`` command line.

Every command has ``--help``; ``--json`` prints exactly one JSON document on stdout and nothing
else. Bad input (unknown space, malformed architecture string, an architecture outside the space)
prints one line ``hwnas: error: ...`` on stderr and exits with status 2, writing nothing.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from searchspaces.baselines import BASELINES, resolve_arch
from searchspaces.genome import Architecture
from searchspaces.spaces import SPACES, SearchSpace, get_space

app = typer.Typer(
    name="hwnas",
    help="Hardware-aware neural-architecture search: spaces, architectures, estimators, search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Search spaces: list them, show their choices, sample from them.",
                        no_args_is_help=True)
arch_app = typer.Typer(help="One architecture: size, MACs, memory per layer; export to ONNX or "
                            "TorchScript.", no_args_is_help=True)
estimator_app = typer.Typer(help="Latency estimators: build one from measurements on a back end, "
                                 "evaluate it on whole networks, list the shipped ones.",
                            no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(arch_app, name="arch")
app.add_typer(estimator_app, name="estimator")

# Pipes and logs (make demo, CI) are not limited to 80 columns the way rich assumes.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

# -- shared options ---------------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]
PFactorOpt = Annotated[int, typer.Option(
    "--parallelism-factor", "-p", min=1,
    help="Hardware parallelism factor P (PE-array width); curated channels are multiples of P.")]
CuratedOpt = Annotated[bool, typer.Option(
    "--curated/--uncurated",
    help="Curated: channels are multiples of P. Uncurated: channels step by 1.")]
ArchArg = Annotated[str, typer.Argument(
    help=f"An architecture string (see README) or a baseline: {', '.join(BASELINES)}.")]
NumClassesOpt = Annotated[int, typer.Option("--num-classes", min=1, help="Classifier outputs.")]
InChannelsOpt = Annotated[int, typer.Option("--in-channels", min=1, help="Input image channels.")]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def _space(name: str, parallelism_factor: int, curated: bool) -> SearchSpace:
    return get_space(name, parallelism_factor=parallelism_factor, curated=curated)


def _note_outside(arch: Architecture, space: str, parallelism_factor: int,
                  what: str = "the architecture") -> None:
    """A note on stderr when ``arch`` lies outside the estimator's space (curated or not): the
    estimate then extrapolates."""
    if not any(_space(space, parallelism_factor, c).contains(arch) for c in (True, False)):
        err.print(f"note: {what} lies outside space {space}; the estimate extrapolates",
                  highlight=False)


# -- space ------------------------------------------------------------------------------------
@space_app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """List the registered search spaces (sizes for the curated space at P=8)."""
    rows = []
    for name, factory in SPACES.items():
        space = factory()
        doc = " ".join((factory.__doc__ or "").strip().split("\n\n")[0].split())
        rows.append({"name": name, "description": doc, "num_stages": len(space.skeleton),
                     "size_curated_p8": space.size()})
    if as_json:
        _emit_json(rows)
        return
    table = Table("space", "stages", "size (curated, P=8)", "description")
    for r in rows:
        table.add_row(r["name"], str(r["num_stages"]), f"{r['size_curated_p8']:.3e}",
                      r["description"])
    out.print(table)


@space_app.command("show")
def space_show(
    name: Annotated[str, typer.Argument(help=f"Space name: {', '.join(SPACES)}.")],
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Show a space's dimensions, their choices and the number of architectures."""
    space = _space(name, parallelism_factor, curated)
    info = space.describe()
    if as_json:
        _emit_json(info)
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


@space_app.command("landscape")
def space_landscape(
    name: Annotated[str, typer.Argument(help=f"Space: {', '.join(SPACES)}.")],
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
    from searchspaces.landscape import landscape_report, plot_landscape

    def numbers(text: str, what: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None

    report = landscape_report(
        name, estimator, parallelism_factor,
        numbers(stages, "--stages") if stages is not None else None,
        [k.strip() for k in kinds.split(",") if k.strip()], seed, starts)
    written = plot_landscape(report, png) if png is not None else None
    if as_json:
        _emit_json({**report.to_dict(), "png": str(written) if written else None})
        return
    out.print(report.table(), highlight=False)
    if written is not None:
        out.print(f"plot: {written}", highlight=False)


@space_app.command("sample")
def space_sample(
    name: Annotated[str, typer.Argument(help=f"Space name: {', '.join(SPACES)}.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random generator.")] = 0,
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    details: Annotated[bool, typer.Option(
        "--details", help="Add params, MACs and peak activation memory of each.")] = False,
    estimator: Annotated[str | None, typer.Option(
        "--estimator", "-e", help="With --details, add the latency this estimator predicts "
        "(a folder or a shipped name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample architectures uniformly from a space (reproducible with --seed)."""
    space = _space(name, parallelism_factor, curated)
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    latencies = None
    if estimator is not None:
        from estimators.latency import LatencyEstimator, resolve_estimator

        details = True
        latencies = LatencyEstimator.load(resolve_estimator(estimator)).predict_many(archs)
    if not details:
        if as_json:
            _emit_json([a.to_string() for a in archs])
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
        _emit_json(rows)
        return
    columns = ["#", "resolution", "params", "MACs", "peak activations (fp32)"]
    table = Table(*columns, *(["latency ms"] if latencies is not None else []), box=box.SIMPLE)
    for i, r in enumerate(rows):
        extra = [f"{r['latency_ms']:.3f}"] if latencies is not None else []
        table.add_row(str(i), str(r["resolution"]), _si(r["params"]), _si(r["macs"]),
                      _mib(r["peak_activation_bytes"]), *extra)
    out.print(table)
    for i, r in enumerate(rows):
        out.print(f"#{i} {r['arch']}", highlight=False)


# -- arch -------------------------------------------------------------------------------------
def _resolve(arch: str, space: str | None, parallelism_factor: int, curated: bool
             ) -> Architecture:
    a = resolve_arch(arch)
    if space is not None:
        _space(space, parallelism_factor, curated).validate(a)
    return a


SpaceOpt = Annotated[str | None, typer.Option(
    "--space", help="Also check that the architecture lies in this space.")]


@arch_app.command("info")
def arch_info(
    arch: ArchArg,
    num_classes: NumClassesOpt = 1000,
    in_channels: InChannelsOpt = 3,
    dtype: Annotated[str, typer.Option(help="Activation dtype: fp32, fp16, bf16, int8.")] = "fp32",
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size for activations.")] = 1,
    space: SpaceOpt = None,
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer/--summary", help="Print the per-layer table (JSON always has it).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Parameters, MACs, parameter bytes and peak activation memory, per layer and in total."""
    from estimators.memory import memory_report

    a = _resolve(arch, space, parallelism_factor, curated)
    rep = memory_report(a, num_classes, in_channels, dtype, batch_size)
    info = {
        "arch": a.to_string(),
        "resolution": a.resolution,
        "num_classes": num_classes,
        "params": rep.params,
        "macs": rep.macs,
        "param_bytes": rep.param_bytes["fp32"],
        "param_bytes_by_dtype": rep.param_bytes,
        "peak_activation_bytes": rep.peak_activation_bytes,
        "peak_layer": rep.peak_layer,
        "activation_dtype": dtype,
        "batch_size": batch_size,
        "layers": rep.to_dict()["layers"],
    }
    if as_json:
        _emit_json(info)
        return
    if per_layer:
        table = Table(box=box.SIMPLE, title="per layer (live: activations alive during the "
                      "step; the peak in red)")
        table.add_column("layer", no_wrap=True, min_width=18)
        for column in ("op", "k/s/g", "output", "params", "MACs", "live MiB"):
            table.add_column(column, no_wrap=True)
        for row in rep.layers:
            table.add_row(row.name, row.op, f"{row.kernel}/{row.stride}/{row.groups}",
                          "x".join(map(str, row.output_shape)), _si(row.params),
                          _si(row.macs), f"{row.live_bytes / 2**20:.2f}",
                          style="bold red" if row.name == rep.peak_layer else None)
        out.print(table)
    out.print(a.to_string(), highlight=False)
    out.print(f"resolution {a.resolution}  params {rep.params:,}  MACs {rep.macs:,}  "
              f"param bytes fp32/fp16/int8 {_mib(rep.param_bytes['fp32'])}/"
              f"{_mib(rep.param_bytes['fp16'])}/{_mib(rep.param_bytes['int8'])}  "
              f"peak activations ({dtype}, batch {batch_size}) "
              f"{_mib(rep.peak_activation_bytes)} at {rep.peak_layer}")


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@arch_app.command("export")
def arch_export(
    arch: ArchArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="onnx or torchscript.")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    num_classes: NumClassesOpt = 1000,
    in_channels: InChannelsOpt = 3,
    space: SpaceOpt = None,
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Build the model (untrained weights) and export it at the architecture's resolution."""
    import torch

    from searchspaces.export import export_model
    from searchspaces.model import build_model

    a = _resolve(arch, space, parallelism_factor, curated)
    example = torch.zeros(1, in_channels, a.resolution, a.resolution)
    out_path = export_model(build_model(a, num_classes, in_channels), example, out_path,
                            fmt.value)
    info = {"arch": a.to_string(), "format": fmt.value, "out": str(out_path),
            "input_shape": list(example.shape), "bytes": out_path.stat().st_size}
    if as_json:
        _emit_json(info)
    else:
        out.print(f"wrote {fmt.value} ({_mib(info['bytes'])}) to {out_path}", highlight=False)


# -- estimator --------------------------------------------------------------------------------
EstimatorOpt = Annotated[str, typer.Option(
    "--estimator", "-e", help="Estimator folder, or the name of a shipped one (see "
    "'hwnas estimator list').")]


def _progress(label: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=False,
                    disable=not err.is_terminal and os.environ.get("HWNAS_PROGRESS") != "1")


@estimator_app.command("build")
def estimator_build(
    profile: Annotated[str, typer.Option(help="Hardware profile name or YAML path (see "
                                              "'hwnas estimator list').")],
    space: Annotated[str, typer.Option(help=f"Search space: {', '.join(SPACES)}.")],
    samples: Annotated[int, typer.Option(min=10, help="Blocks to measure.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tables, models, manifest.")],
    backend: Annotated[str | None, typer.Option(
        help="Back end; must match the profile's (checked), defaults to it.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel measuring processes.")] = 1,
    networks: Annotated[int, typer.Option(
        min=0, help="Whole networks to measure for the per-network overhead.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the block and network samples.")] = 0,
    active: Annotated[int, typer.Option(
        min=0, help="Spend --samples in this many rounds of active profiling: after a random "
        "first round, each round measures the blocks the ensemble is most uncertain about "
        "(0: one random sample).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Measure sampled blocks of a space on a back end and fit the LightGBM estimator.

    Resumable: run the same command again after an interruption and it measures only what is
    missing from OUT/measurements.csv and OUT/networks.csv.
    """
    from estimators.build import build_estimator

    with _progress("build") as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"measuring {stage}" if stage != "fit" else
                                            "fitting", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        est, rep = build_estimator(profile, space, samples, out_dir, workers=workers, seed=seed,
                                   networks=networks, backend=backend, progress=report,
                                   active=active)
    summary = {"out": str(out_dir), "space": est.space, "profile": est.profile,
               "backend": est.backend, "parallelism_factor": est.parallelism_factor, **rep}
    if as_json:
        _emit_json(summary)
        return
    table = Table("kind", "rows", "work prior", "cv MAPE %", "cv within 5%", "cv within 10%",
                  box=box.SIMPLE, title=f"estimator {out_dir} ({est.profile}, {est.space}; "
                  "5-fold cross-validation on blocks)")
    for kind, e in rep["cv_error"].items():
        table.add_row(kind, str(e["rows"]), "yes" if e["prior"] else "no", f"{e['mape']:.2f}",
                      f"{e['within_5pct']:.3f}", f"{e['within_10pct']:.3f}")
    out.print(table)
    ov = rep["overhead"]
    if "mape_sum_of_blocks" not in ov:
        out.print(f"per-network overhead: not fitted ({ov.get('reason', 'no networks')})")
    else:
        out.print(f"per-network overhead: {'used' if ov['used'] else 'not used'} "
                  f"(MAPE sum of blocks {ov.get('mape_sum_of_blocks', float('nan')) * 100:.2f}%, "
                  f"with overhead {ov.get('mape_loo_with_overhead', float('nan')) * 100:.2f}%)")
    out.print(f"noise floor (median IQR/median of repeats): {rep['noise_floor']:.4f}")
    iv = rep.get("interval")
    if iv and iv.get("calibrated"):
        out.print(f"80% interval: ensemble spread plus a floor of {iv['floor_log_sd']:.3f} in log "
                  f"latency; {iv['coverage']:.0%} of the {iv['networks']} build networks inside")
    elif iv:
        out.print("80% interval: ensemble spread only (too few networks to calibrate)")


@estimator_app.command("eval")
def estimator_eval(
    estimator: EstimatorOpt,
    archs: Annotated[int, typer.Option(min=2, help="Held-out networks to measure.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the held-out sample.")] = 1,
    workers: Annotated[int, typer.Option(
        min=1, help="Parallel measuring processes (keep 1 on a real CPU).")] = 1,
    rows_out: Annotated[Path | None, typer.Option(
        "--rows", help="Also write each network's measured and predicted latency to this "
        "CSV.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure held-out whole networks on the estimator's back end and score the estimator."""
    from estimators.evaluate import evaluate_estimator

    with _progress("eval") as bar:
        task = bar.add_task("measuring networks", total=archs)
        metrics, rows = evaluate_estimator(
            estimator, archs, seed, workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total))
    if rows_out is not None:
        import csv

        with rows_out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if as_json:
        _emit_json(metrics)
        return
    table = Table("metric", "value", box=box.SIMPLE, title=f"{estimator}: {archs} held-out "
                  "networks")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    out.print(table)


@estimator_app.command("list")
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
        _emit_json({"estimators": shipped, "profiles": profiles})
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


@app.command("latency")
def latency(
    arch: ArchArg,
    estimator: EstimatorOpt,
    num_classes: NumClassesOpt = 1000,
    in_channels: InChannelsOpt = 3,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Show the predicted latency of every block.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict an architecture's latency with a learned estimator (no device needed)."""
    from estimators.latency import LatencyEstimator, resolve_estimator

    a = resolve_arch(arch)
    folder = resolve_estimator(estimator)
    est = LatencyEstimator.load(folder)
    ms = est.predict(a, num_classes, in_channels)
    p10 = p90 = None  # an estimator without ensemble members has no interval
    if est.has_interval:
        p10, _, p90 = (float(v[0]) for v in est.predict_interval([a], num_classes, in_channels))
    _note_outside(a, est.space, est.parallelism_factor)
    info: dict[str, Any] = {"arch": a.to_string(), "latency_ms": ms, "latency_ms_p10": p10,
                            "latency_ms_p90": p90, "estimator": str(folder),
                            "space": est.space, "profile": est.profile, "backend": est.backend}
    blocks = est.breakdown(a, num_classes, in_channels) if per_layer else []
    if per_layer:
        info["blocks"] = [{"name": b.name, "kind": b.kind, "latency_ms": v} for b, v in blocks]
    if as_json:
        _emit_json(info)
        return
    if per_layer:
        table = Table("block", "kind", "cin->cout", "res", "ms", "share", box=box.SIMPLE)
        total = sum(v for _, v in blocks)
        for b, v in blocks:
            table.add_row(b.name, b.kind, f"{b.cin}->{b.cout}", str(b.in_res), f"{v:.4f}",
                          f"{v / total:.1%}")
        out.print(table)
    interval = f" (80% interval {p10:.4f}-{p90:.4f})" if p10 is not None else ""
    out.print(f"{ms:.4f} ms{interval} on {est.profile} ({est.backend}) — {a.to_string()}",
              highlight=False)


# -- search -----------------------------------------------------------------------------------
@app.command("search")
def search(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML); see configs/quickstart.yaml. Without it, "
        "the built-in defaults (the quickstart's space, estimator and data).")] = None,
    strategy: Annotated[str | None, typer.Option(
        help="Override the strategy: evolution, random, optuna-nsga2, optuna-tpe.")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Override the number of trials.")
                      ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the training epochs (the "
                                               "most any trial trains; ASHA stops weak ones "
                                               "earlier).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override the seed (strategy, data "
                                             "split, weight init).")] = None,
    name: Annotated[str | None, typer.Option(help="Override the search name (MLflow run "
                                             "name prefix).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db in the working "
        "directory; http://HOST:PORT for a server).")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (e.g. 127.0.0.1:6379); default: start a local Ray.")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Continue an interrupted search: its run name (NAME-YYYYmmdd-HHMMSS), its search "
        "name (the latest run of that name) or its Ray Tune folder. It keeps its saved config "
        "(--config only says where storage_path is); finished trials are not run again.")
                      ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search architectures: propose with a strategy, reject over-budget candidates with the
    latency estimator and memory model, train the rest briefly (ASHA stops weak ones), and log
    every trial and the accuracy/latency Pareto front to MLflow."""
    from nas.config import load_config
    from nas.search import (
        STATE_FILE,
        find_search,
        load_search_state,
        prepare,
        run_search,
    )

    base = load_config(config)
    if resume is not None:
        given = [flag for flag, value in (("--strategy", strategy), ("--trials", trials),
                 ("--epochs", epochs), ("--seed", seed), ("--name", name),
                 ("--tracking-uri", tracking_uri)) if value is not None]
        if given:
            raise ValueError(f"--resume continues a search with its saved config; drop "
                             f"{', '.join(given)}")
        folder = Path(resume)
        if not (folder / STATE_FILE).is_file():
            folder = find_search(base.storage_path, resume)
        state = load_search_state(folder)
        err.print(f"resuming [bold]{state['run_name']}[/] from {folder} (MLflow parent run "
                  f"{state['parent_run_id']})", highlight=False, soft_wrap=True)
        total = int(state["config"]["trials"])
        counted = bool(state["config"].get("count_rejected", True))
        with _search_progress(total, counted) as on_update, open(os.devnull, "w") as quiet:
            summary = run_search(address=address, on_update=on_update, tune_output=quiet,
                                 resume=folder)
        _print_summary(summary, as_json)
        return
    other = strategy is not None and strategy != base.strategy.name
    cfg = base.with_overrides(**{
        "strategy.name": strategy, "strategy.params": {} if other else None, "trials": trials,
        "training.epochs": epochs, "seed": seed, "name": name, "tracking.uri": tracking_uri})
    prepared = prepare(cfg)  # every config problem is reported before anything starts
    err.print(f"[bold]{cfg.name}[/]: {cfg.trials} trials of {cfg.strategy.name} on "
              f"{cfg.space.name} ({cfg.hardware.profile}, estimator {cfg.hardware.estimator}), "
              f"data {cfg.task.dataset}; MLflow {cfg.tracking.uri} "
              f"(experiment {cfg.tracking.experiment})", highlight=False, soft_wrap=True)
    with _search_progress(cfg.trials, cfg.count_rejected) as on_update:
        with open(os.devnull, "w") as quiet:  # Tune's banners; its state and logs stay on disk
            summary = run_search(cfg, address=address, on_update=on_update, prepared=prepared,
                                 tune_output=quiet)
    _print_summary(summary, as_json)


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(summary.to_json())
        return
    table = Table("latency ms", "accuracy", "params", "peak act.", "MACs", "epochs",
                  box=box.SIMPLE, title=f"Pareto front: {len(summary.pareto)} of "
                  f"{summary.completed + summary.stopped} trained candidates")
    table.add_column("arch", overflow="fold")
    for p in summary.pareto:
        table.add_row(f"{p['latency_ms']:.4f}", f"{p['accuracy']:.4f}", _si(p["params"]),
                      _mib(p["peak_activation_bytes"]), _si(p["macs"]), str(p["epochs"]),
                      p["arch"])
    if summary.pareto:
        out.print(table)
    else:
        out.print("No trained candidate: every trial was rejected or failed (loosen the budgets "
                  "or add trials).")
    out.print(f"{summary.trials} trials: {summary.completed} completed, {summary.stopped} "
              f"stopped early by ASHA, {summary.rejected} rejected before training, "
              f"{summary.failed} failed; hypervolume {summary.hypervolume:.4f} (reference "
              f"latency {summary.reference_ms:g} ms) in {summary.seconds:.0f} s", highlight=False)
    hint = _rejection_hint(summary.trials, summary.rejected) if summary.count_rejected else None
    if hint:
        out.print(hint, highlight=False)
    out.print(f"MLflow parent run {summary.parent_run_id} (experiment {summary.experiment}, "
              f"{summary.tracking_uri}); browse with: mlflow ui --backend-store-uri "
              f"{summary.tracking_uri}", highlight=False)
    out.print(f"Ray Tune trial state and logs: {summary.tune_path}", highlight=False)


def _rejection_hint(trials: int, rejected: int) -> str | None:
    """A note when at least half the trials were rejected before training: they cost
    milliseconds, but each used up one of the ``trials`` the search was given."""
    if not trials or rejected * 2 < trials:
        return None
    return (f"Note: {rejected} of {trials} trials were over a budget and never trained; each "
            f"still counts toward trials: raise trials, loosen the budgets, or set "
            f"count_rejected: false to train more candidates.")


@app.command("compare")
def compare(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML) shared by every search.")] = None,
    strategies: Annotated[str, typer.Option(
        help="Comma-separated: evolution, random, optuna-nsga2, optuna-tpe.")
                          ] = "evolution,optuna-nsga2,optuna-tpe,random",
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
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking "
                                                     "URI (default: the config's).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare search strategies: every strategy x seed with the same budget, each its own MLflow
    search run under one comparison run; hypervolume-vs-trials and Pareto-front plots, a table
    and an HTML report."""
    from nas.compare import TARGET, run_comparison
    from nas.config import load_config

    cfg = load_config(config).with_overrides(**{"tracking.uri": tracking_uri})
    names = [s.strip() for s in strategies.split(",") if s.strip()]

    def progress(strategy: str, seed: int, summary: Any) -> None:
        if summary is None:
            err.print(f"search {strategy} seed {seed} ...", highlight=False)
        else:
            err.print(f"search {strategy} seed {seed}: hypervolume {summary.hypervolume:.4f} "
                      f"({summary.trials} trials, {summary.seconds:.0f} s)", highlight=False)

    with open(os.devnull, "w") as quiet:
        result = run_comparison(cfg, names, seeds, trials=trials, surrogate=surrogate,
                                curation=curation, out_dir=out_dir, address=address,
                                on_search=progress, tune_output=quiet)
    if as_json:
        _emit_json(result.to_json())
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


@app.command("ablation")
def ablation(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML): task, space, target, training.")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials per arm (capped at the "
                                               "arm's space size).")] = None,
    surrogate: Annotated[bool, typer.Option(help="Use the NASWOT proxy instead of training."
                                            )] = False,
    tolerance: Annotated[float, typer.Option(min=0.0, help="Accuracy drop allowed against the "
                                             "baseline (0.005 = half a point).")] = 0.005,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JSON result.")
                       ] = Path("ablations"),
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking "
                                                     "URI (default: the config's).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The seed work's ablation: from the space's MobileNetV2-shaped baseline, search (a) only
    the width multiplier, (b) only IBN -> fused-IBN per stage, (c) both; report for each the
    lowest-latency candidate within the accuracy tolerance of the baseline, its latency
    reduction and the stages it fused."""
    from nas.ablation import run_ablation
    from nas.config import load_config

    cfg = load_config(config).with_overrides(**{"tracking.uri": tracking_uri})

    def progress(arm: str, result: Any) -> None:
        if result is not None:
            err.print(f"arm {arm}: {result.trials} trials", highlight=False)

    with open(os.devnull, "w") as quiet:
        result = run_ablation(cfg, trials=trials, surrogate=surrogate, tolerance=tolerance,
                              out_dir=out_dir, address=address, tune_output=quiet,
                              on_arm=progress)
    if as_json:
        _emit_json(result.to_json())
        return
    table = Table("arm", "trials", "accuracy", "latency ms", "reduction", "fused stages",
                  box=box.SIMPLE, title=f"{result.ablation_id}: baseline accuracy "
                  f"{result.baseline_accuracy:.4f}, {result.baseline_latency_ms:.4f} ms")
    table.add_column("arch", overflow="fold")
    for a in result.arms:
        if a.arch is None:
            table.add_row(a.arm, f"{a.trials} ({a.rejected} rejected)", "-", "-",
                          "none within tolerance", "-", "-")
            continue
        table.add_row(a.arm, f"{a.trials} ({a.rejected} rejected)", f"{a.accuracy:.4f}",
                      f"{a.latency_ms:.4f}",
                      f"{a.reduction:.1%}", ",".join(map(str, a.fused_stages)) or "none",
                      a.arch)
    out.print(table)
    out.print(f"plot: {result.plot}; MLflow ablation run {result.run_id}", highlight=False)


class _search_progress:  # noqa: N801 - used as a context manager factory
    """A live progress bar on a terminal; one line per finished trial otherwise."""

    def __init__(self, total: int, count_rejected: bool = True) -> None:
        self.total, self.seen, self.count_rejected = total, 0, count_rejected
        self.live = err.is_terminal or os.environ.get("HWNAS_PROGRESS") == "1"

    def __enter__(self) -> Any:
        if self.live:
            self.progress = _progress("search")
            self.progress.start()
            self.task = self.progress.add_task("starting Ray", total=self.total)
        return self.update

    def update(self, tracker: Any) -> None:
        finished = len(tracker.finished)
        rejected = tracker.count("rejected")
        # with count_rejected false, trials counts the candidates within the budgets only
        done = finished if self.count_rejected else finished - rejected
        text = (f"running {len(tracker.children)} · rejected {rejected} · "
                f"front {len(tracker.front())} · HV {tracker.hypervolume:.3f}")
        if self.live:
            self.progress.update(self.task, completed=done, description=text)
        for row in tracker.finished[self.seen:]:
            if not self.live:
                acc = row.get("accuracy", float("nan"))
                err.print(f"[{done}/{self.total}] {row['outcome']:>9} "
                          f"acc {acc:.3f} · {row.get('latency_ms', float('nan')):.3f} ms · "
                          f"{row.get('arch', '?')}", highlight=False, soft_wrap=True)
        self.seen = finished

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.progress.stop()


def _si(n: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


# -- expert -----------------------------------------------------------------------------------
# Imported last: the expert modules use the shared options and consoles defined above.
from nas.expert import cli_explain, cli_mine  # noqa: E402,F401  (they register their commands)
from nas.expert.app import expert_app  # noqa: E402

app.add_typer(expert_app, name="expert")


# -- entry point ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    try:
        result = app(args=argv, prog_name="hwnas", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("hwnas: aborted\n")
        return 130
    except typer.TyperException as exc:  # usage errors (bad option values, missing arguments)
        fmt = getattr(exc, "format_message", None)
        message = " ".join((fmt() if fmt else str(exc)).split())
        sys.stderr.write(f"hwnas: error: {message} (see --help)\n")
        return int(getattr(exc, "exit_code", 2))
    except (ValueError, KeyError, FileNotFoundError, PermissionError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"hwnas: error: {message}\n")
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
