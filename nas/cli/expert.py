"""``hwnas expert``: explain an architecture's cost, mine rules from finished searches, apply
rules to a new base architecture (the logic lives in :mod:`nas.expert`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    err,
    mib,
    note_outside,
    out,
    si,
    user_arch,
    user_estimator,
    user_input,
)
from nas.expert.mine import (
    DEFAULT_MIN_LIFT,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_TRACKING_URI,
    MinedRules,
)

app = typer.Typer(
    help="Expert in the loop: explain an architecture's cost and what each edit would change, "
         "mine rules from finished searches in MLflow, apply rules to a new model.",
    no_args_is_help=True)


@app.command("explain")
def explain_command(
    arch: ArchArg,
    estimator: EstimatorOpt,
    num_classes: NumClassesOpt = None,
    in_channels: InChannelsOpt = 3,
    png: Annotated[Path, typer.Option(help="Write the bar chart (latency per stage, effect of "
                                      "each edit) here.")] = Path("explain.png"),
    as_json: JsonOpt = False,
) -> None:
    """Where the latency and memory of an architecture go, per stage, and what each expert edit
    (fuse, unfuse, align channels to P, depthwise -> conv, expansion, kernel, width) would
    change, predicted by the estimator and the exact memory model."""
    from nas.expert.explain import explain, plot_explanation

    a = user_arch(arch)
    num_classes = classes_for(a, num_classes)
    est, label = user_estimator(estimator)
    ex = explain(a, est, num_classes, in_channels)
    note_outside(a, ex.space, ex.parallelism_factor)
    written = plot_explanation(ex, png)
    err.print(f"plot: {written}", highlight=False)
    if as_json:
        emit_json({**ex.to_json(), "estimator": label, "png": str(written)})
        return
    table = Table("stage", "position", "kinds", "latency ms", "share", "params",
                  "peak act. MiB", box=box.SIMPLE, title=f"cost per stage ({ex.profile}, "
                  f"P={ex.parallelism_factor}, fp32 activations, batch 1)")
    table.add_column("stage string", no_wrap=True)
    for s in ex.stages:
        table.add_row(s.name, s.position, ",".join(s.kinds), f"{s.latency_ms:.4f}",
                      f"{s.share:.1%}", si(s.params), f"{s.peak_activation_bytes / 2**20:.2f}",
                      s.stage)
    out.print(table)
    table = Table("stage", "edit", "Δ ms", "Δ %", "Δ params", "Δ peak MiB", "best",
                  box=box.SIMPLE, title="predicted effect of each edit (whole network)")
    table.add_column("after", overflow="fold")
    for e in ex.edits:
        table.add_row("global" if e.stage is None else str(e.stage), e.name,
                      f"{e.delta_ms:+.4f}", f"{e.delta_pct:+.2f}", f"{e.delta_params:+,}",
                      f"{e.delta_peak_bytes / 2**20:+.2f}", "*" if e.best else "", e.after,
                      style="bold green" if e.best else None)
    out.print(table)
    out.print(ex.arch, highlight=False)
    out.print(f"{ex.latency_ms:.4f} ms on {ex.profile} ({ex.backend})  params {ex.params:,}  "
              f"peak activations {mib(ex.peak_activation_bytes)} at {ex.peak_layer}",
              highlight=False)


@app.command("apply")
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
    from nas.expert.apply import apply_rules, check_compatible, train_pair, training_setup
    from nas.expert.rules import load_rules
    from searchspaces.genome import Architecture

    a = user_arch(base)
    est, label = user_estimator(estimator)  # loaded once: rules check, pricing, notes
    with user_input():
        ruleset = load_rules(rules)
        check_compatible(ruleset, est)
        cfg, classes, channels = training_setup(config, train, a.resolution, num_classes,
                                                in_channels)
    applied = apply_rules(
        a, ruleset, est, num_classes=classes, in_channels=channels,
        max_accuracy_drop=max_accuracy_drop,
        max_peak_bytes=None if max_peak_mib is None else int(max_peak_mib * 2**20),
        max_params=None if max_params_m is None else int(max_params_m * 1e6))
    for note in applied.notes:
        err.print(f"note: {note}", highlight=False)
    note_outside(a, est.space, est.parallelism_factor, "the base architecture")
    new = Architecture.from_string(applied.arch)
    if new != a:
        note_outside(new, est.space, est.parallelism_factor, "the new architecture")
    trained = None
    if cfg is not None:
        err.print(f"training both on {cfg.task.dataset} for {cfg.training.epochs} epoch(s), "
                  f"seed {cfg.seed} ...", highlight=False)
        trained = train_pair(a, new, cfg)
    if as_json:
        emit_json({**applied.to_json(), "estimator": label,
                   "training": trained.to_json() if trained is not None else None})
        return
    table = Table(box=box.SIMPLE, title=f"{len(applied.kept())} of {len(applied.steps)} steps "
                  f"kept (rules for {ruleset.profile}, P={ruleset.parallelism_factor})")
    table.add_column("rule", no_wrap=True)
    for column in ("stage", "outcome", "Δ ms", "Δ %", "candidate"):
        table.add_column(column, no_wrap=True)
    table.add_column("why", overflow="fold")
    styles = {"kept": "bold green", "skipped": "dim", "n/a": "dim"}
    for s in applied.steps:
        table.add_row(s.rule, "-" if s.stage is None else str(s.stage), s.outcome,
                      "" if s.delta_ms is None else f"{s.delta_ms:+.4f}",
                      "" if s.delta_pct is None else f"{s.delta_pct:+.2f}", s.after or s.before,
                      s.reason, style=styles.get(s.outcome))
    out.print(table)
    accuracy = ["accuracy"] if trained is not None else []
    summary = Table("", "latency ms", "params", "peak act.", *accuracy, box=box.SIMPLE)
    summary.add_column("arch", overflow="fold")
    for row, ms, params, peak, acc, text in (
            ("base", applied.base_latency_ms, applied.base_params,
             applied.base_peak_activation_bytes, trained and trained.base_accuracy, applied.base),
            ("new", applied.latency_ms, applied.params, applied.peak_activation_bytes,
             trained and trained.accuracy, applied.arch)):
        summary.add_row(row, f"{ms:.4f}", si(params), mib(peak),
                        *([f"{acc:.4f}"] if trained is not None else []), text)
    out.print(summary)
    out.print(f"predicted latency reduction {applied.reduction_pct:.1f}% on {applied.profile}",
              highlight=False)
    if trained is not None:
        out.print(f"accuracy after {trained.epochs} epoch(s) on {trained.dataset}: base "
                  f"{trained.base_accuracy:.4f}, new {trained.accuracy:.4f} "
                  f"({trained.accuracy_change_points:+.1f} points)", highlight=False)


@app.command("mine")
def mine(
    experiments: Annotated[str, typer.Option(
        "--experiments", help="MLflow experiments whose finished searches to read, "
        "comma-separated (e.g. quickstart,cifar).")],
    out_path: Annotated[Path, typer.Option(
        "--out", help="Rules file to write (YAML); the Markdown report goes beside it (.md).")],
    tracking_uri: Annotated[str, typer.Option(
        "--tracking-uri", help="MLflow tracking URI the searches logged to.")
                            ] = DEFAULT_TRACKING_URI,
    min_support: Annotated[int, typer.Option(
        "--min-support", min=1, help="Pareto-optimal architectures that must have a value.")
                           ] = DEFAULT_MIN_SUPPORT,
    min_lift: Annotated[float, typer.Option(
        "--min-lift", min=0.0, max=1.0, help="Least Pareto share minus dominated share.")
                        ] = DEFAULT_MIN_LIFT,
    include_surrogate: Annotated[bool, typer.Option(
        "--include-surrogate", help="Also read searches scored by the NASWOT surrogate "
        "(skipped by default: their accuracy is a proxy).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Mine rules from finished searches: the (position, knob, value) features that
    Pareto-optimal architectures share and dominated ones lack, with support and effect, as a
    rules file for `hwnas expert apply` and a Markdown report."""
    from nas.expert.mine import mine_command, mine_rules, report_path, write_report
    from nas.expert.rules import save_rules

    names = [e.strip() for e in experiments.split(",") if e.strip()]
    with user_input():  # the searches in the store are this command's input
        report = report_path(out_path)
        command = mine_command(names, out_path, tracking_uri=tracking_uri,
                               min_support=min_support, min_lift=min_lift,
                               include_surrogate=include_surrogate)
        mined = mine_rules(tracking_uri, names, min_support=min_support, min_lift=min_lift,
                           include_surrogate=include_surrogate, command=command)
    for line in mined.skipped:
        err.print(f"note: skipped {line}", highlight=False, soft_wrap=True)
    save_rules(mined.ruleset, out_path)
    write_report(mined, report)
    if as_json:
        emit_json({**mined.to_json(), "rules_file": str(out_path), "report": str(report)})
        return
    _print_rules(mined)
    src = mined.ruleset.source
    n, k = len(mined.ruleset.rules), len(mined.searches)
    out.print(f"{n} rule{'s' * (n != 1)} from {k} search{'es' * (k != 1)} "
              f"({src['architectures']} trained architectures, {src['pareto']} Pareto-optimal); "
              f"rules {out_path}, report {report}", highlight=False)


def _print_rules(mined: MinedRules) -> None:
    rules = mined.ruleset.rules
    if not rules:
        out.print(f"No value passed the thresholds (at least {mined.min_support} Pareto-optimal "
                  f"architectures and lift >= {mined.min_lift:g}).", highlight=False)
        return
    table = Table("#", "rule", "Pareto", "dominated", "searches", "lift", "latency", "accuracy",
                  box=box.SIMPLE, title=f"Rules, strongest first (space "
                  f"{mined.ruleset.space}, P={mined.ruleset.parallelism_factor})")
    for i, r in enumerate(rules, 1):
        s = r.support
        table.add_row(str(i), r.label, f"{s.pareto} ({s.pareto_share:.0%})",
                      f"{s.dominated} ({s.dominated_share:.0%})", str(s.searches),
                      f"{s.lift:.2f}", f"{r.effect.latency_pct:+.1f}%",
                      f"{r.effect.accuracy_points:+.2f} pts")
    out.print(table)
