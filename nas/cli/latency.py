"""``hwnas latency``: an architecture's latency, with its 80% interval, from a learned
estimator (no device needed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from nas.cli._common import (
    ArchArg,
    EstimatorOpt,
    InChannelsOpt,
    JsonOpt,
    NumClassesOpt,
    classes_for,
    emit_json,
    note_outside,
    out,
    user_arch,
    user_estimator,
)


def latency(
    arch: ArchArg,
    estimator: EstimatorOpt,
    num_classes: NumClassesOpt = None,
    in_channels: InChannelsOpt = 3,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Show the predicted latency of every block.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict an architecture's latency with a learned estimator (no device needed)."""
    a = user_arch(arch)
    num_classes = classes_for(a, num_classes)
    est, label = user_estimator(estimator)
    ms = est.predict(a, num_classes, in_channels)
    p10 = p90 = None  # an estimator without ensemble members has no interval
    if est.has_interval:
        p10, _, p90 = (float(v[0]) for v in est.predict_interval([a], num_classes, in_channels))
    note_outside(a, est.space, est.parallelism_factor)
    info: dict[str, Any] = {"arch": a.to_string(), "latency_ms": ms, "latency_ms_p10": p10,
                            "latency_ms_p90": p90, "estimator": label,
                            "space": est.space, "profile": est.profile, "backend": est.backend}
    blocks = est.breakdown(a, num_classes, in_channels) if per_layer else []
    if per_layer:
        info["blocks"] = [{"name": b.name, "kind": b.kind, "latency_ms": v} for b, v in blocks]
    if as_json:
        emit_json(info)
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
