"""What a person reads in the MLflow UI: the trials' run names and the search's description.

The runs table cuts names to about 15 characters, so a trial's name starts with what tells
trials apart: ``t007 ciifcci 0.138ms`` is the search's 7th trial run, its stages' block kinds one
letter each (``i`` ibn, ``f`` fibn, ``c`` conv; see :mod:`searchspaces.genome`) and its predicted
latency. (Tune's own trial ids are random hex, useless for telling trials apart at a glance.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchspaces.genome import Architecture

KIND_LETTERS = {"ibn": "i", "fibn": "f", "conv": "c"}
NAME_LEGEND = ("trial runs are named `t<n> <block kinds> <predicted latency>` (n: the order "
               "the trials started), one letter "
               "per stage: " + ", ".join(f"`{v}` {k}" for k, v in KIND_LETTERS.items()))
UNTRAINED = ("rejected", "failed", "killed", "lost")  # outcomes that say so in the run name
FRONT_ROWS = 20  # more front points are in pareto_front.json


def trial_label(number: int) -> str:
    """``t007`` for the search's 7th trial run (in the order the trials started)."""
    return f"t{number:03d}"


def block_kinds(arch: str) -> str:
    """One letter per stage (``ciifcci``), or ``""`` for a string that is no architecture."""
    try:
        stages = Architecture.from_string(arch).stages
    except ValueError:
        return ""
    return "".join(KIND_LETTERS.get(s.block, "?") for s in stages)


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def trial_run_name(label: str, arch: str, latency_ms: float | None = None,
                   outcome: str | None = None) -> str:
    """``t007 ciifcci 0.138ms`` (``label`` from :func:`trial_label`), with ``rejected``,
    ``failed``, ... appended for a trial that has no trained accuracy; the latency once a result
    has brought it."""
    parts = [label, block_kinds(arch)]
    if latency_ms is not None:
        parts.append(f"{_ms(latency_ms)}ms")
    if outcome in UNTRAINED:
        parts.append(outcome)
    return " ".join(p for p in parts if p)


def _setting(settings: Mapping[str, str], key: str) -> str | None:
    value = settings.get(key)
    return None if value in (None, "", "None") else str(value)


def _budgets(settings: Mapping[str, str]) -> str:
    units = (("latency_ms", "latency ≤ {} ms"), ("params_m", "parameters ≤ {} M"),
             ("peak_activation_mib", "peak activations ≤ {} MiB"))
    found = [text.format(v) for key, text in units
             if (v := _setting(settings, f"budgets.{key}")) is not None]
    return ", ".join(found) or "none"


def search_note(run_name: str, status: str, settings: Mapping[str, str],
                counts: Mapping[str, int], front: Sequence[Mapping[str, Any]],
                hypervolume: float, reference_ms: float) -> str:
    """The parent run's description (Markdown): what was searched, how it went, the front, and
    how to run it again. ``settings`` are the run's params (the flattened config)."""
    s = settings
    strategy, trials = _setting(s, "strategy.name") or "?", _setting(s, "trials") or "?"
    c = {k: counts.get(k, 0) for k in ("finished", "completed", "stopped", "rejected", "failed")}
    lines = [  # the UI previews the first lines: the outcome comes first
        f"**hwnas search `{run_name}`** ({strategy}, {status.lower()}): {c['finished']} of "
        f"{trials} trials finished: {c['completed']} completed, {c['stopped']} stopped by ASHA, "
        f"{c['rejected']} rejected before training, {c['failed']} failed. Hypervolume "
        f"**{hypervolume:.4f}**, Pareto front of {len(front)}.",
        "",
        f"- space {_setting(s, 'space.name') or '?'} (curated {_setting(s, 'space.curated')}), "
        f"hardware {_setting(s, 'hardware.profile') or '?'} (estimator "
        f"{_setting(s, 'hardware.estimator') or '?'}), data {_setting(s, 'task.dataset') or '?'}"
        f", seed {_setting(s, 'seed') or '?'}",
        f"- budgets: {_budgets(s)} (a candidate over one is rejected before training)",
        f"- training: {_setting(s, 'training.epochs') or '?'} epochs, ASHA "
        f"{_setting(s, 'training.asha') or '?'}, surrogate {_setting(s, 'training.surrogate')}",
        f"- hypervolume: of accuracy x latency up to the reference latency {reference_ms:g} ms; "
        "the `hypervolume` metric's history is its curve over the trials",
        "- plots: `pareto_front.png` and `pareto_front.html` (hover shows each architecture), "
        "the front in `pareto_front.json`",
    ]
    if front:
        lines += ["", "| trial | latency ms | accuracy | epochs | arch |", "|---|---|---|---|---|"]
        lines += [f"| {p.get('trial', '')} | {p['latency_ms']:.4f} | "
                  f"{p['accuracy']:.4f} | {p.get('epochs', '')} | `{p['arch']}` |"
                  for p in front[:FRONT_ROWS]]
        if len(front) > FRONT_ROWS:
            lines.append(f"\n... and {len(front) - FRONT_ROWS} more in `pareto_front.json`.")
    lines += [
        "",
        f"Reading the runs: {NAME_LEGEND}. A rejected candidate has tag "
        "`hwnas.outcome = rejected`, its reason in `hwnas.reject_reason`, and no accuracy. A "
        "trial that ran out of memory was retried at half the batch: its first attempt is a "
        "nested `FAILED` run with its reason in `hwnas.failure_reason`.",
        "",
        "Run it again: download this run's artifact `search_config.yaml`, then "
        "`hwnas search --config search_config.yaml`. Continue it after a crash: "
        f"`hwnas search --resume {run_name}`.",
    ]
    return "\n".join(lines)
