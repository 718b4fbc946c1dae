"""``hwnas expert mine`` (registered on :data:`expert_app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from nas.cli import JsonOpt, _emit_json, err, out
from nas.expert.app import expert_app
from nas.expert.mine import (
    DEFAULT_MIN_LIFT,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_TRACKING_URI,
    MinedRules,
    mine_command,
    mine_rules,
    report_path,
    write_report,
)
from nas.expert.rules import save_rules


@expert_app.command("mine")
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
    names = [e.strip() for e in experiments.split(",") if e.strip()]
    report = report_path(out_path)
    command = mine_command(names, out_path, tracking_uri=tracking_uri, min_support=min_support,
                           min_lift=min_lift, include_surrogate=include_surrogate)
    mined = mine_rules(tracking_uri, names, min_support=min_support, min_lift=min_lift,
                       include_surrogate=include_surrogate, command=command)
    for line in mined.skipped:
        err.print(f"note: skipped {line}", highlight=False, soft_wrap=True)
    save_rules(mined.ruleset, out_path)
    write_report(mined, report)
    if as_json:
        _emit_json({**mined.to_json(), "rules_file": str(out_path), "report": str(report)})
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
                      f"{r.support.lift:.2f}", f"{r.effect.latency_pct:+.1f}%",
                      f"{r.effect.accuracy_points:+.2f} pts")
    out.print(table)
