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
    from estimators.memory import dtype_bytes, memory_report

    a = user_arch(arch, space, parallelism_factor, curated)
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

    a = user_arch(arch, space, parallelism_factor, curated)
    folder = out_path.expanduser().resolve().parent
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist")
    example = torch.zeros(1, in_channels, a.resolution, a.resolution)
    out_path = export_model(build_model(a, num_classes, in_channels), example, out_path,
                            fmt.value)
    info = {"arch": a.to_string(), "format": fmt.value, "out": str(out_path),
            "input_shape": list(example.shape), "bytes": out_path.stat().st_size}
    if as_json:
        emit_json(info)
    else:
        out.print(f"wrote {fmt.value} ({mib(info['bytes'])}) to {out_path}", highlight=False)
