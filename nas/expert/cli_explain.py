"""``hwnas expert explain`` and ``hwnas expert apply`` (registered on :data:`expert_app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from nas.cli import (
    ArchArg,
    EstimatorOpt,
    InChannelsOpt,
    JsonOpt,
    NumClassesOpt,
    _emit_json,
    _mib,
    _note_outside,
    _si,
    err,
    out,
)
from nas.expert.app import expert_app
from searchspaces.baselines import resolve_arch
from searchspaces.genome import Architecture


def _signed_int(n: int) -> str:
    return f"{n:+,}"


def _signed_mib(n: int) -> str:
    return f"{n / 2**20:+.2f}"


@expert_app.command("explain")
def explain_command(
    arch: ArchArg,
    estimator: EstimatorOpt,
    num_classes: NumClassesOpt = 1000,
    in_channels: InChannelsOpt = 3,
    png: Annotated[Path, typer.Option(help="Write the bar chart (latency per stage, effect of "
                                      "each edit) here.")] = Path("explain.png"),
    as_json: JsonOpt = False,
) -> None:
    """Where the latency and memory of an architecture go, per stage, and what each expert edit
    (fuse, unfuse, align channels to P, depthwise -> conv, expansion, kernel, width) would
    change, predicted by the estimator and the exact memory model."""
    from nas.expert.explain import explain, plot_explanation

    a = resolve_arch(arch)
    ex = explain(a, estimator, num_classes, in_channels)
    _note_outside(a, ex.space, ex.parallelism_factor)
    written = plot_explanation(ex, png)
    err.print(f"plot: {written}", highlight=False)
    if as_json:
        _emit_json({**ex.to_json(), "png": str(written)})
        return
    table = Table("stage", "position", "kinds", "latency ms", "share", "params",
                  "peak act. MiB", box=box.SIMPLE, title=f"cost per stage ({ex.profile}, "
                  f"P={ex.parallelism_factor}, fp32 activations, batch 1)")
    table.add_column("stage string", no_wrap=True)
    for s in ex.stages:
        table.add_row(s.name, s.position, ",".join(s.kinds),
                      f"{s.latency_ms:.4f}", f"{s.share:.1%}", _si(s.params),
                      f"{s.peak_activation_bytes / 2**20:.2f}", s.stage)
    out.print(table)
    table = Table("stage", "edit", "Δ ms", "Δ %", "Δ params", "Δ peak MiB", "best",
                  box=box.SIMPLE, title="predicted effect of each edit (whole network)")
    table.add_column("after", overflow="fold")
    for e in ex.edits:
        table.add_row("global" if e.stage is None else str(e.stage), e.name,
                      f"{e.delta_ms:+.4f}", f"{e.delta_pct:+.2f}", _signed_int(e.delta_params),
                      _signed_mib(e.delta_peak_bytes), "*" if e.best else "", e.after,
                      style="bold green" if e.best else None)
    out.print(table)
    out.print(ex.arch, highlight=False)
    out.print(f"{ex.latency_ms:.4f} ms on {ex.profile} ({ex.backend})  params {ex.params:,}  "
              f"peak activations {_mib(ex.peak_activation_bytes)} at {ex.peak_layer}",
              highlight=False)


@expert_app.command("apply")
def apply_command(
    base: ArchArg,
    rules: Annotated[Path, typer.Option("--rules", help="Rules file (YAML) from 'hwnas expert "
                                        "mine'.")],
    estimator: EstimatorOpt,
    num_classes: Annotated[int | None, typer.Option(
        "--num-classes", min=1, help="Classifier outputs (default 1000; with --train, the "
        "dataset's).")] = None,
    in_channels: Annotated[int | None, typer.Option(
        "--in-channels", min=1, help="Input image channels (default 3; with --train, the "
        "dataset's).")] = None,
    max_accuracy_drop: Annotated[float, typer.Option(
        min=0.0, help="Skip rules whose median accuracy effect is worse than minus this many "
        "points.")] = 1.0,
    max_peak_mib: Annotated[float | None, typer.Option(
        min=0.0, help="Reject edits whose peak activation memory (fp32) exceeds this.")] = None,
    max_params_m: Annotated[float | None, typer.Option(
        min=0.0, help="Reject edits whose parameter count (millions) exceeds this.")] = None,
    train: Annotated[bool, typer.Option(
        "--train", help="Also train base and result briefly (same seed and epochs) on the "
        "config's task and report both accuracies.")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="With --train: the search config whose task and training to "
        "use (default configs/quickstart.yaml).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply mined rules to a base architecture, strongest first, keeping each edit only where
    the estimator predicts lower latency; optionally train both to compare accuracy."""
    from nas.expert.apply import apply_rules, dataset_shape, load_train_config, train_pair
    from nas.expert.explain import load_estimator
    from nas.expert.rules import load_rules

    a = resolve_arch(base)
    ruleset = load_rules(rules)
    est, label = load_estimator(estimator)  # loaded once: rules check, pricing, notes
    cfg = None
    if train:
        cfg = load_train_config(config)
        classes, channels = dataset_shape(cfg, a.resolution)
        for flag, given, real in (("--num-classes", num_classes, classes),
                                  ("--in-channels", in_channels, channels)):
            if given is not None and given != real:
                raise ValueError(f"{flag} {given} contradicts the dataset "
                                 f"{cfg.task.dataset} ({real}); drop it with --train")
        num_classes, in_channels = classes, channels
    elif config is not None:
        raise ValueError("--config only matters with --train")
    applied = apply_rules(
        a, ruleset, est, num_classes=num_classes or 1000, in_channels=in_channels or 3,
        max_accuracy_drop=max_accuracy_drop,
        max_peak_bytes=None if max_peak_mib is None else int(max_peak_mib * 2**20),
        max_params=None if max_params_m is None else int(max_params_m * 1e6))
    for note in applied.notes:
        err.print(f"note: {note}", highlight=False)
    _note_outside(a, est.space, est.parallelism_factor, "the base architecture")
    new = Architecture.from_string(applied.arch)
    if new != a:
        _note_outside(new, est.space, est.parallelism_factor, "the new architecture")
    trained = None
    if cfg is not None:
        err.print(f"training both on {cfg.task.dataset} for {cfg.training.epochs} epoch(s), "
                  f"seed {cfg.seed} ...", highlight=False)
        trained = train_pair(a, new, cfg)
    info = {**applied.to_json(), "estimator": label,
            "training": trained.to_json() if trained is not None else None}
    if as_json:
        _emit_json(info)
        return
    table = Table(box=box.SIMPLE,
                  title=f"{len(applied.kept())} of {len(applied.steps)} steps kept "
                  f"(rules for {ruleset.profile}, P={ruleset.parallelism_factor})")
    table.add_column("rule", no_wrap=True)
    for column in ("stage", "outcome", "Δ ms", "Δ %"):
        table.add_column(column, no_wrap=True)
    table.add_column("candidate", no_wrap=True)
    table.add_column("why", overflow="fold")
    styles = {"kept": "bold green", "skipped": "dim", "n/a": "dim"}
    for s in applied.steps:
        table.add_row(s.rule, "-" if s.stage is None else str(s.stage), s.outcome,
                      "" if s.delta_ms is None else f"{s.delta_ms:+.4f}",
                      "" if s.delta_pct is None else f"{s.delta_pct:+.2f}", s.after or s.before,
                      s.reason,
                      style=styles.get(s.outcome))
    out.print(table)
    accuracy = ["accuracy"] if trained is not None else []
    summary = Table("", "latency ms", "params", "peak act.", *accuracy, box=box.SIMPLE)
    summary.add_column("arch", overflow="fold")
    summary.add_row("base", f"{applied.base_latency_ms:.4f}", _si(applied.base_params),
                    _mib(applied.base_peak_activation_bytes),
                    *([f"{trained.base_accuracy:.4f}"] if trained is not None else []),
                    applied.base)
    summary.add_row("new", f"{applied.latency_ms:.4f}", _si(applied.params),
                    _mib(applied.peak_activation_bytes),
                    *([f"{trained.accuracy:.4f}"] if trained is not None else []), applied.arch)
    out.print(summary)
    out.print(f"predicted latency reduction {applied.reduction_pct:.1f}% on {applied.profile}",
              highlight=False)
    if trained is not None:
        out.print(f"accuracy after {trained.epochs} epoch(s) on {trained.dataset}: base "
                  f"{trained.base_accuracy:.4f}, new {trained.accuracy:.4f} "
                  f"({trained.accuracy_change_points:+.1f} points)", highlight=False)
