"""``hwnas arch``: one architecture's size, MACs and memory per layer; export to ONNX or
TorchScript."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from nas.cli._common import (
    ArchArg,
    CuratedOpt,
    InChannelsOpt,
    JsonOpt,
    NumClassesOpt,
    PFactorOpt,
    UsageError,
    classes_for,
    emit_json,
    mib,
    out,
    si,
    user_arch,
    user_input,
)

app = typer.Typer(help="One architecture: size, MACs, memory per layer; export to ONNX or "
                       "TorchScript.", no_args_is_help=True)
SpaceOpt = Annotated[str | None, typer.Option(
    "--space", help="Also check that the architecture lies in this space.")]


@app.command("info")
def arch_info(
    arch: ArchArg,
    num_classes: NumClassesOpt = None,
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
    from estimators.memory import dtype_bytes, memory_report

    a = user_arch(arch, space, parallelism_factor, curated)
    num_classes = classes_for(a, num_classes)
    with user_input():
        dtype_bytes(dtype)
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
        emit_json(info)
        return
    if per_layer:
        table = Table(box=box.SIMPLE, title="per layer (live: activations alive during the "
                      "step; the peak in red)")
        table.add_column("layer", no_wrap=True, min_width=18)
        for column in ("op", "k/s/g", "output", "params", "MACs", "live MiB"):
            table.add_column(column, no_wrap=True)
        for row in rep.layers:
            table.add_row(row.name, row.op, f"{row.kernel}/{row.stride}/{row.groups}",
                          "x".join(map(str, row.output_shape)), si(row.params),
                          si(row.macs), f"{row.live_bytes / 2**20:.2f}",
                          style="bold red" if row.name == rep.peak_layer else None)
        out.print(table)
    out.print(a.to_string(), highlight=False)
    out.print(f"resolution {a.resolution}  params {rep.params:,}  MACs {rep.macs:,}  "
              f"param bytes fp32/fp16/int8 {mib(rep.param_bytes['fp32'])}/"
              f"{mib(rep.param_bytes['fp16'])}/{mib(rep.param_bytes['int8'])}  "
              f"peak activations ({dtype}, batch {batch_size}) "
              f"{mib(rep.peak_activation_bytes)} at {rep.peak_layer}")


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@app.command("export")
def arch_export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="onnx or torchscript.")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    arch: Annotated[str | None, typer.Argument(
        help="An architecture string or baseline (untrained weights); or give --weights or "
        "--run.", show_default=False)] = None,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="A checkpoint.pt or weights.pt of 'hwnas train': export the trained "
        "model (its architecture, classes and channels come with it).")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="An MLflow run: a final-training run (hwnas train) exports its trained "
        "weights; a search's trial run its architecture, untrained.")] = None,
    tracking_uri: Annotated[str, typer.Option(
        "--tracking-uri", help="MLflow tracking URI of --run.")] = "sqlite:///mlflow.db",
    num_classes: Annotated[int | None, typer.Option(
        "--num-classes", min=1, help="Classes the head predicts (default 1000 for a "
        "classifier, 80 for a detector, 21 for a segmenter; with --run or --weights, the "
        "training's).", show_default=False)] = None,
    in_channels: Annotated[int | None, typer.Option(
        "--in-channels", min=1, help="Input image channels (default 3; with --run or "
        "--weights, the training's).", show_default=False)] = None,
    space: SpaceOpt = None,
    parallelism_factor: PFactorOpt = 8,
    curated: CuratedOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Export a model at its architecture's resolution, batch 1: an architecture with untrained
    weights, a trained checkpoint (--weights), or an MLflow run's model (--run)."""
    from searchspaces.export import export_model
    from searchspaces.model import build_model

    if sum(x is not None for x in (arch, weights, run)) != 1:
        raise UsageError("give exactly one of ARCH, --weights CKPT or --run RUN_ID")
    folder = out_path.expanduser().resolve().parent
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist")
    from nas.final import Exportable, load_weights, model_from_run, model_from_weights

    if arch is not None:
        a = user_arch(arch, space, parallelism_factor, curated)
        what = Exportable(build_model(a, classes_for(a, num_classes), in_channels or 3), a,
                          in_channels or 3, False)
    else:
        with user_input():
            if weights is not None:
                state = load_weights(weights)
                _same_shape(state, num_classes, in_channels)
                what = model_from_weights(state)
            else:
                what = model_from_run(tracking_uri, run, num_classes, in_channels)
    example = what.example()
    out_path = export_model(what.model, example, out_path, fmt.value)
    trained = what.trained
    info = {"arch": what.arch.to_string(), "format": fmt.value, "out": str(out_path),
            "trained": trained, "input_shape": list(example.shape),
            "bytes": out_path.stat().st_size}
    if as_json:
        emit_json(info)
    else:
        out.print(f"wrote {fmt.value} ({mib(info['bytes'])}, "
                  f"{'trained' if trained else 'untrained'} weights) to {out_path}",
                  highlight=False)


def _same_shape(state: dict, num_classes: int | None, in_channels: int | None) -> None:
    for name, given in (("num_classes", num_classes), ("in_channels", in_channels)):
        if given is not None and given != state[name]:
            raise ValueError(f"the weights are for {name.replace('_', ' ')} {state[name]}, "
                             f"not {given}")
