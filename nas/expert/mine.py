"""Rules read off finished searches: what the Pareto-optimal nets share and the dominated lack.

The seed work (an Amazon study of NAS for an edge accelerator) had an expert read rules off
earlier searches (fuse the early inverted bottlenecks, align channels to the parallelism factor
P, prefer standard convs where the chip favours them, use a width multiplier) and reached a 50%
latency reduction with them, against 53% for a full search. This module does the reading.

**Candidates.** Per search (an MLflow parent run tagged ``hwnas.role=search``), the trained
trials (outcome ``completed`` or ``stopped`` by ASHA) with their validation ``accuracy`` and
predicted ``latency_ms``. Each is Pareto-optimal *within its search* (max accuracy, min latency,
:func:`nas.pareto.pareto_mask`) or dominated.

**Features.** An architecture *has* ``(position, knob, value)`` when at least half of its stages
at that position (early, middle, late: thirds of the stages, :func:`nas.expert.rules.stages_at`)
have the value (:func:`nas.expert.edits.stage_value`); ``expansion`` only counts inverted
bottlenecks (a standard conv has none). ``width_mult`` is the global feature. The input
resolution is not a knob: it belongs to the task.

**Support and lift.** ``pareto_share`` is the share of all Pareto-optimal architectures that
have the value, ``dominated_share`` the share of all dominated ones; ``lift = pareto_share -
dominated_share``. A value becomes a rule when at least ``min_support`` Pareto-optimal
architectures have it, its lift is at least ``min_lift``, and some architectures lack it (a
value every candidate has says nothing). Per ``(position, knob)`` only the value with the highest
lift is kept; rules are sorted by lift, strongest first (``apply`` tries them in that order).

**Effect.** Searches on different tasks and budgets combine only after normalising: latency is
divided by its search's median latency and accuracy has its search's median subtracted. Then
``latency_pct = 100 * (median normalised latency with the value / median without - 1)`` and
``accuracy_points = 100 * (median centred accuracy with - median without)``. Accuracy effects
(and the per-search median they are centred on) use only the candidates that trained all their
epochs: one ASHA stopped after its first epoch sits near chance and would swamp the median (both
sides need one such candidate; otherwise all are used). Stopped candidates still count in the
support, as dominated.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.expert.edits import stage_value
from nas.expert.rules import (
    KNOBS,
    POSITIONS,
    STAGE_KNOBS,
    Effect,
    Rule,
    RuleSet,
    Support,
    stages_at,
)
from nas.pareto import pareto_mask
from searchspaces.files import atomic_write
from searchspaces.genome import Architecture

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MIN_SUPPORT = 2
DEFAULT_MIN_LIFT = 0.15
TRAINED = ("completed", "stopped")  # trial outcomes with a trained accuracy (stopped: by ASHA)
ROW_KEYS = ("search_id", "arch", "accuracy", "latency_ms")

Feature = tuple[str, str, Any]  # (position, knob, value)


# -- features ---------------------------------------------------------------------------------
def features(arch: Architecture, parallelism_factor: int) -> set[Feature]:
    """The ``(position, knob, value)`` triples ``arch`` has (see the module docstring)."""
    found: set[Feature] = {("global", "width_mult", float(arch.width_mult))}
    n = len(arch.stages)
    for position in POSITIONS[:3]:
        stages = stages_at(position, n)
        for knob in STAGE_KNOBS:
            at = [i for i in stages if knob != "expansion" or arch.stages[i].block != "conv"]
            if not at:
                continue
            counts = Counter(stage_value(arch, i, knob, parallelism_factor) for i in at)
            found.update((position, knob, value) for value, k in counts.items()
                         if 2 * k >= len(at))
    return found


# -- candidates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One trained architecture of one search, placed against the others of that search."""

    search_id: str
    arch: Architecture
    accuracy: float
    latency_ms: float
    pareto: bool  # non-dominated within its search
    rel_latency: float  # latency / the search's median latency
    rel_accuracy: float  # accuracy - the search's median accuracy (of complete candidates)
    complete: bool = True  # trained all its epochs (not stopped early by ASHA)


def _finite(value: Any, what: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} must be finite, got {number}")
    return number


def candidates_of(rows: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Rows ``{search_id, arch, accuracy, latency_ms}`` (``arch`` a string or an
    :class:`Architecture`; optional ``complete``, default true: false for a candidate ASHA
    stopped early) as candidates, Pareto-marked and normalised per search."""
    by_search: dict[str, list[tuple[Architecture, float, float, bool]]] = defaultdict(list)
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"row {i}: missing {', '.join(missing)} (rows need "
                             f"{', '.join(ROW_KEYS)})")
        arch = row["arch"]
        if not isinstance(arch, Architecture):
            try:
                arch = Architecture.from_string(str(arch))
            except ValueError as exc:
                raise ValueError(f"row {i}: {exc}") from None
        accuracy = _finite(row["accuracy"], "accuracy", f"row {i}")
        latency = _finite(row["latency_ms"], "latency_ms", f"row {i}")
        if latency <= 0:
            raise ValueError(f"row {i}: latency_ms must be positive, got {latency}")
        by_search[str(row["search_id"])].append((arch, accuracy, latency,
                                                 bool(row.get("complete", True))))
    out = []
    for search_id, items in by_search.items():
        values = np.array([[acc, lat] for _, acc, lat, _ in items])
        mask = pareto_mask(values, (True, False))
        complete = [acc for _, acc, _, done in items if done]
        median_acc = float(np.median(complete if complete else values[:, 0]))
        median_lat = float(np.median(values[:, 1]))
        out += [Candidate(search_id, arch, acc, lat, bool(keep), lat / median_lat,
                          acc - median_acc, done)
                for (arch, acc, lat, done), keep in zip(items, mask)]
    return out


# -- statistics -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureStats:
    """Support and effect of one ``(position, knob, value)`` over all candidates."""

    position: str
    knob: str
    value: Any
    searches: int  # searches with at least one candidate that has the value
    pareto: int  # Pareto-optimal candidates with the value
    dominated: int  # dominated candidates with the value
    pareto_total: int
    dominated_total: int
    without: int  # candidates without the value
    latency_pct: float
    accuracy_points: float

    @property
    def pareto_share(self) -> float:
        return self.pareto / self.pareto_total if self.pareto_total else 0.0

    @property
    def dominated_share(self) -> float:
        return self.dominated / self.dominated_total if self.dominated_total else 0.0

    @property
    def lift(self) -> float:
        return self.pareto_share - self.dominated_share

    def to_rule(self, parallelism_factor: int) -> Rule:
        return Rule(
            position=self.position, knob=self.knob, value=self.value,
            support=Support(searches=self.searches, pareto=self.pareto,
                            dominated=self.dominated,
                            pareto_share=round(self.pareto_share, 4),
                            dominated_share=round(self.dominated_share, 4)),
            effect=Effect(latency_pct=round(self.latency_pct, 2),
                          accuracy_points=round(self.accuracy_points, 2)),
            note=note(self, parallelism_factor))


def feature_stats(candidates: Sequence[Candidate], parallelism_factor: int
                  ) -> list[FeatureStats]:
    """Support and effect of every feature some candidate has, in knob and position order."""
    feats = [features(c.arch, parallelism_factor) for c in candidates]
    pareto_total = sum(c.pareto for c in candidates)
    dominated_total = len(candidates) - pareto_total
    order = {k: i for i, k in enumerate(KNOBS)}
    keys = sorted(set().union(*feats) if feats else set(),
                  key=lambda f: (order[f[1]], POSITIONS.index(f[0]), str(f[2])))
    out = []
    for key in keys:
        has = [key in f for f in feats]
        with_ = [c for c, h in zip(candidates, has) if h]
        without = [c for c, h in zip(candidates, has) if not h]
        if without:
            latency_pct = 100.0 * (float(np.median([c.rel_latency for c in with_]))
                                   / float(np.median([c.rel_latency for c in without])) - 1.0)
            # accuracy after a first epoch is not comparable: complete candidates only,
            # where both sides have some
            acc_with = [c.rel_accuracy for c in with_ if c.complete]
            acc_without = [c.rel_accuracy for c in without if c.complete]
            if not (acc_with and acc_without):
                acc_with = [c.rel_accuracy for c in with_]
                acc_without = [c.rel_accuracy for c in without]
            accuracy_points = 100.0 * (float(np.median(acc_with))
                                       - float(np.median(acc_without)))
        else:
            latency_pct = accuracy_points = 0.0
        out.append(FeatureStats(
            position=key[0], knob=key[1], value=key[2],
            searches=len({c.search_id for c in with_}),
            pareto=sum(c.pareto for c in with_), dominated=sum(not c.pareto for c in with_),
            pareto_total=pareto_total, dominated_total=dominated_total, without=len(without),
            latency_pct=latency_pct, accuracy_points=accuracy_points))
    return out


def select(stats: Iterable[FeatureStats], *, min_support: int = DEFAULT_MIN_SUPPORT,
           min_lift: float = DEFAULT_MIN_LIFT) -> list[FeatureStats]:
    """The features that become rules: enough Pareto support, enough lift, some candidates
    without the value; the best lift per ``(position, knob)``; strongest first."""
    check_thresholds(min_support, min_lift)
    best: dict[tuple[str, str], FeatureStats] = {}
    for s in stats:
        if s.pareto < min_support or s.lift < min_lift - 1e-12 or s.without == 0:
            continue
        rank = (s.lift, s.pareto, -s.latency_pct)
        held = best.get((s.position, s.knob))
        if held is None or rank > (held.lift, held.pareto, -held.latency_pct):
            best[(s.position, s.knob)] = s
    return sorted(best.values(), key=lambda s: (-s.lift, -s.pareto, POSITIONS.index(s.position),
                                                KNOBS.index(s.knob)))


def check_thresholds(min_support: int, min_lift: float) -> None:
    if isinstance(min_support, bool) or not isinstance(min_support, int) or min_support < 1:
        raise ValueError(f"min_support must be an integer >= 1, got {min_support!r}")
    if not 0.0 <= float(min_lift) <= 1.0:
        raise ValueError(f"min_lift must be in [0, 1] (a difference of two shares), "
                         f"got {min_lift}")


@dataclass(frozen=True)
class Mining:
    """What :func:`mine_rows` read off a set of candidates."""

    rules: tuple[Rule, ...]
    stats: tuple[FeatureStats, ...]  # every feature, kept or not
    architectures: int
    pareto: int
    dominated: int
    pareto_by_search: dict[str, int] = field(default_factory=dict)
    candidates_by_search: dict[str, int] = field(default_factory=dict)


def mine_rows(rows: Iterable[Mapping[str, Any]], parallelism_factor: int, *,
              min_support: int = DEFAULT_MIN_SUPPORT,
              min_lift: float = DEFAULT_MIN_LIFT) -> Mining:
    """Rules from in-memory rows ``{search_id, arch, accuracy, latency_ms}`` (no MLflow)."""
    check_thresholds(min_support, min_lift)
    if parallelism_factor < 1:
        raise ValueError(f"parallelism factor must be >= 1, got {parallelism_factor}")
    candidates = candidates_of(rows)
    stats = feature_stats(candidates, parallelism_factor)
    if not any(c.pareto for c in candidates) or all(c.pareto for c in candidates):
        kept: list[FeatureStats] = []  # no dominated candidates: nothing to contrast with
    else:
        kept = select(stats, min_support=min_support, min_lift=min_lift)
    pareto = Counter(c.search_id for c in candidates if c.pareto)
    total = Counter(c.search_id for c in candidates)
    return Mining(rules=tuple(s.to_rule(parallelism_factor) for s in kept), stats=tuple(stats),
                  architectures=len(candidates), pareto=sum(pareto.values()),
                  dominated=len(candidates) - sum(pareto.values()),
                  pareto_by_search=dict(pareto), candidates_by_search=dict(total))


# -- notes ------------------------------------------------------------------------------------
def _phrase(position: str, knob: str, value: Any, parallelism_factor: int) -> str:
    where = f"the {position} stages"
    if knob == "width_mult":
        return f"use width multiplier {value}"
    if knob == "block":
        return {"fibn": f"fuse {where}",
                "ibn": f"keep depthwise inverted bottlenecks in {where}",
                "conv": f"use standard convs in {where}"}.get(value, f"use {value} in {where}")
    if knob == "kernel":
        return f"use {value}x{value} kernels in {where}"
    if knob == "expansion":
        return f"use expansion {value} in {where}"
    if knob == "repeats":
        return f"repeat {where}' blocks {value} times" if value != 1 else \
            f"use one block in each of {where}"
    if value:
        return f"align {where}' channels to P={parallelism_factor}"
    return f"leave {where}' channels off multiples of P={parallelism_factor}"


def note(s: FeatureStats, parallelism_factor: int) -> str:
    """One human sentence: what the Pareto-optimal nets do, the counts, the effect."""
    return (f"Pareto-optimal nets {_phrase(s.position, s.knob, s.value, parallelism_factor)}: "
            f"{s.pareto} of {s.pareto_total} vs {s.dominated} of {s.dominated_total} dominated; "
            f"{s.latency_pct:+.0f}% latency, {s.accuracy_points:+.1f} accuracy points")


# -- MLflow -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchStats:
    """One mined search (an MLflow parent run)."""

    run_id: str
    name: str
    experiment: str
    candidates: int  # trained candidates (completed + stopped)
    pareto: int  # of which Pareto-optimal within the search
    surrogate: bool  # accuracy is the NASWOT proxy (only with include_surrogate)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "experiment": self.experiment,
                "candidates": self.candidates, "pareto": self.pareto,
                "surrogate": self.surrogate}


@dataclass(frozen=True)
class MinedRules:
    """The rules file's content plus what the report needs."""

    ruleset: RuleSet
    searches: tuple[SearchStats, ...]
    skipped: tuple[str, ...]  # one line per search or run left out, with the reason
    min_support: int
    min_lift: float
    dominated: int

    def to_json(self) -> dict[str, Any]:
        return {"ruleset": self.ruleset.model_dump(mode="json"),
                "searches": [s.to_json() for s in self.searches],
                "skipped": list(self.skipped)}


def mine_command(experiments: Sequence[str], out: str | Path | None = None, *,
                 tracking_uri: str = DEFAULT_TRACKING_URI,
                 min_support: int = DEFAULT_MIN_SUPPORT, min_lift: float = DEFAULT_MIN_LIFT,
                 include_surrogate: bool = False) -> str:
    """The ``hwnas expert mine`` command line that regenerates a rules file (defaults left
    out; ``RULES.yaml`` stands in for an unknown ``out``)."""
    parts = ["hwnas", "expert", "mine", "--experiments", ",".join(experiments),
             "--out", str(out) if out is not None else "RULES.yaml"]
    if tracking_uri != DEFAULT_TRACKING_URI:
        parts += ["--tracking-uri", tracking_uri]
    if min_support != DEFAULT_MIN_SUPPORT:
        parts += ["--min-support", str(min_support)]
    if float(min_lift) != DEFAULT_MIN_LIFT:
        parts += ["--min-lift", f"{float(min_lift):g}"]
    if include_surrogate:
        parts.append("--include-surrogate")
    return shlex.join(parts)


def _client(tracking_uri: str) -> Any:
    """An MLflow client for an existing store (reading never creates a database)."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import check_tracking_uri

    check_tracking_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise FileNotFoundError(f"no MLflow store {db} (tracking URI {tracking_uri}); "
                                    f"pass the --tracking-uri the searches used")
    return MlflowClient(tracking_uri)


def _parallelism_factor(run: Any) -> int | None:
    """P of a search: from its ``hwnas.space`` tag (``mbv2-small (curated, P=32)``), else from
    its hardware profile."""
    found = re.search(r"P=(\d+)", run.data.tags.get("hwnas.space", ""))
    if found:
        return int(found.group(1))
    profile = run.data.params.get("hardware.profile")
    if not profile:
        return None
    try:
        from estimators.profiles import load_profile

        return load_profile(profile).parallelism_factor
    except (ValueError, FileNotFoundError, OSError):
        return None


def _label(run: Any) -> str:
    return f"search {run.info.run_name} ({run.info.run_id[:8]})"


def mine_rules(tracking_uri: str, experiments: Sequence[str], *,
               min_support: int = DEFAULT_MIN_SUPPORT, min_lift: float = DEFAULT_MIN_LIFT,
               include_surrogate: bool = False, command: str | None = None) -> MinedRules:
    """Rules from every finished search in the MLflow ``experiments`` (see the module
    docstring). ``command`` goes into the rules file's ``source`` (default: the
    :func:`mine_command` of these arguments)."""
    from nas.tracking import all_runs

    check_thresholds(min_support, min_lift)
    names = list(dict.fromkeys(e.strip() for e in experiments if e.strip()))
    if not names:
        raise ValueError("name at least one MLflow experiment (--experiments a,b)")
    client = _client(tracking_uri)
    found = {}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage != "active":
            known = sorted(e.name for e in client.search_experiments())
            raise ValueError(f"unknown experiment {name!r} in {tracking_uri}; known: "
                             f"{', '.join(known) or '(none)'}")
        found[exp.experiment_id] = name
    ids = list(found)
    parents = all_runs(client, ids, "tags.`hwnas.role` = 'search'")
    if not parents:
        raise ValueError(f"no hwnas searches in experiment{'s' if len(names) > 1 else ''} "
                         f"{', '.join(names)} of {tracking_uri}")
    children: dict[str, list[Any]] = defaultdict(list)
    for run in all_runs(client, ids, "tags.`hwnas.role` = 'trial'"):
        children[run.data.tags.get("mlflow.parentRunId", "")].append(run)

    skipped: list[str] = []
    rows: list[dict[str, Any]] = []
    used: list[tuple[Any, int, bool]] = []
    for parent in parents:
        label = _label(parent)
        if parent.info.status != "FINISHED":
            skipped.append(f"{label}: ended {parent.info.status}, not finished")
            continue
        params = parent.data.params
        if "space.name" not in params or "hardware.profile" not in params:
            skipped.append(f"{label}: no space.name/hardware.profile params (not an hwnas "
                           f"search)")
            continue
        p = _parallelism_factor(parent)
        if p is None:
            skipped.append(f"{label}: cannot tell its parallelism factor (no P in its "
                           f"hwnas.space tag, profile {params['hardware.profile']} unknown)")
            continue
        trained = [r for r in children.get(parent.info.run_id, [])
                   if r.data.tags.get("hwnas.outcome") in TRAINED]
        surrogate = (params.get("training.surrogate", "").lower() == "true"
                     or any(r.data.metrics.get("surrogate") == 1 for r in trained))
        if surrogate and not include_surrogate:
            skipped.append(f"{label}: scored by the NASWOT surrogate, not trained (include it "
                           f"with --include-surrogate)")
            continue
        mine = []
        for r in trained:
            metrics, arch = r.data.metrics, r.data.params.get("arch")
            acc, lat = metrics.get("accuracy"), metrics.get("latency_ms")
            if arch is None or acc is None or lat is None or not (
                    math.isfinite(acc) and math.isfinite(lat) and lat > 0):
                skipped.append(f"trial run {r.info.run_id[:8]} of {label}: no arch, accuracy "
                               f"or latency_ms")
                continue
            try:
                Architecture.from_string(arch)
            except ValueError as exc:
                skipped.append(f"trial run {r.info.run_id[:8]} of {label}: {exc}")
                continue
            mine.append({"search_id": parent.info.run_id, "arch": arch, "accuracy": acc,
                         "latency_ms": lat,
                         "complete": r.data.tags.get("hwnas.outcome") == "completed"})
        if not mine:
            skipped.append(f"{label}: no trained candidates")
            continue
        rows += mine
        used.append((parent, p, surrogate))
    if not used:
        raise ValueError(f"no search left to mine in {', '.join(names)}: {len(skipped)} "
                         f"skipped ({skipped[0] if skipped else ''})")

    first, p0, _ = used[0]
    for run, p, _ in used[1:]:
        for what, a, b in (
                ("space", first.data.params["space.name"], run.data.params["space.name"]),
                ("parallelism factor", f"P={p0}", f"P={p}"),
                ("hardware profile", first.data.params["hardware.profile"],
                 run.data.params["hardware.profile"])):
            if a != b:
                raise ValueError(f"searches differ in {what}: {a} in {_label(first)} vs {b} in "
                                 f"{_label(run)}; mine one space, P and profile at a time")

    mining = mine_rows(rows, p0, min_support=min_support, min_lift=min_lift)
    searches = tuple(SearchStats(run.info.run_id, run.info.run_name,
                                 found[run.info.experiment_id],
                                 mining.candidates_by_search.get(run.info.run_id, 0),
                                 mining.pareto_by_search.get(run.info.run_id, 0), surrogate)
                     for run, _, surrogate in used)
    source = {"experiments": names, "searches": [s.run_id for s in searches],
              "architectures": mining.architectures, "pareto": mining.pareto,
              "command": command or mine_command(names, tracking_uri=tracking_uri,
                                                 min_support=min_support, min_lift=min_lift,
                                                 include_surrogate=include_surrogate)}
    ruleset = RuleSet(space=first.data.params["space.name"],
                      profile=first.data.params["hardware.profile"], parallelism_factor=p0,
                      source=source, rules=list(mining.rules))
    return MinedRules(ruleset, searches, tuple(skipped), min_support, float(min_lift),
                      mining.dominated)


# -- report -----------------------------------------------------------------------------------
def report_path(out: str | Path) -> Path:
    """Where the Markdown report goes: beside the rules file, with ``.md``."""
    out = Path(out)
    if out.suffix == ".md":
        raise ValueError(f"--out {out}: the rules file must not end in .md (the report "
                         f"goes beside it as .md)")
    return out.with_suffix(".md")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def report_markdown(mined: MinedRules) -> str:
    rs = mined.ruleset
    src = rs.source
    lines = [
        "# Rules mined from hwnas searches", "",
        f"Experiments {', '.join(src['experiments'])}: {len(mined.searches)} searches in space "
        f"{rs.space} for profile {rs.profile} (P={rs.parallelism_factor}), "
        f"{src['architectures']} trained architectures, {src['pareto']} Pareto-optimal within "
        f"their search and {mined.dominated} dominated.", "",
        f"A value is a rule when at least {mined.min_support} Pareto-optimal architectures have "
        f"it, its lift (share of Pareto-optimal minus share of dominated architectures with it) "
        f"is at least {mined.min_lift:g}, and some architectures lack it; per position and knob "
        f"the highest lift wins. Effects are medians, with the value minus without, of latency "
        f"divided by its search's median and of accuracy minus its search's median.", "",
        f"Regenerate with `{src['command']}`.", "", "## Rules", ""]
    if rs.rules:
        lines += ["| # | position | knob | value | Pareto | dominated | searches | lift | "
                  "latency | accuracy | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(rs.rules, 1):
            s = r.support
            lines.append(
                f"| {i} | {r.position} | {r.knob} | {_cell(r.value)} | {s.pareto} "
                f"({s.pareto_share:.0%}) | {s.dominated} ({s.dominated_share:.0%}) | "
                f"{s.searches} | {r.support.lift:.2f} | {r.effect.latency_pct:+.1f}% | "
                f"{r.effect.accuracy_points:+.2f} pts | {_cell(r.note)} |")
    else:
        lines.append("No value passed the thresholds.")
    lines += ["", "## Searches", "", "| run id | name | experiment | candidates | Pareto |",
              "|---|---|---|---|---|"]
    for s in mined.searches:
        kind = " (surrogate)" if s.surrogate else ""
        lines.append(f"| `{s.run_id}` | {_cell(s.name)}{kind} | {_cell(s.experiment)} | "
                     f"{s.candidates} | {s.pareto} |")
    lines += ["", "## Skipped", ""]
    lines += [f"- {_cell(line)}" for line in mined.skipped] or ["Nothing was skipped."]
    return "\n".join(lines) + "\n"


def write_report(mined: MinedRules, path: str | Path) -> Path:
    """Write the Markdown report to ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, report_markdown(mined))
    return path

