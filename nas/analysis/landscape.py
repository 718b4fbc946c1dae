"""The latency landscape of a search space: latency against channel count, and how rough it is.

An accelerator with a P-wide PE array pays per *pass* over the array, so a dense conv's latency
follows ``ceil(channels / P)``: flat for P channels, then a step. A searcher that moves channels
one at a time (an uncurated space) walks that staircase, and on the flat treads and after
estimator artefacts it meets local minima that are not about the network at all; a curated
space (channels in multiples of P) only stands on the step edges. This module measures that:

- :func:`channel_sweep`: the latency of one architecture with one stage set to a block kind and
  its output channels swept, as the latency estimator predicts it;
- :func:`roughness`: how far such a curve is from monotone (down steps, local minima);
- :func:`edge_rise_share`: how much of the rise happens where the hardware adds a pass;
- :func:`descend` / :func:`descent_minima`: greedy descent over all channel dimensions from
  random starts, and how many distinct local minima it ends in;
- :func:`landscape_report`: all of it for a space, curated against uncurated, with a table,
  JSON (:meth:`LandscapeReport.to_dict`) and a plot (:func:`plot_landscape`).

Channels here are always *actual* conv channels. An :class:`Architecture` stores base channels
and builds ``make_divisible(channels * width_mult, channel_divisor)``; the sweeps run on the
base architecture rewritten at width 1.0 and channel divisor 1 (:func:`sweep_base`), which
builds exactly the same network, so a swept value ``c`` is the number of output channels of the
stage's convs. Sweeping base channels under a width multiplier instead would alias several base
values onto one built width and hide (or fake) steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from estimators.latency import LatencyEstimator, load_estimator
from searchspaces.genome import Architecture, Stage
from searchspaces.spaces import SearchSpace, get_space

OBJECTIVES: tuple[str, ...] = ("latency", "latency_per_channel")
"""Descent objectives, both minimised: ``latency`` is the predicted network latency in ms;
``latency_per_channel`` divides it by the sum of the stages' output channels (cost per unit of
width, the ratio a searcher trading accuracy, which grows with width, against latency sees)."""

DEFAULT_KINDS: tuple[str, ...] = ("ibn", "fibn", "conv")


# -- roughness of a 1-D curve ------------------------------------------------------------------

@dataclass(frozen=True)
class Roughness:
    """Roughness of a latency curve sampled at increasing channel counts.

    ``steps`` are the differences between neighbouring samples (unit steps in an uncurated
    sweep, P-steps in a curated one). A step is *down* when latency falls by more than ``atol``
    as channels rise, *flat* when it changes by at most ``atol``, *up* otherwise.
    ``non_monotone_fraction`` is ``down_steps / steps`` (0.0 when there is no step): the share
    of steps where more channels are predicted to be faster.

    ``local_minima`` counts the basins of the curve: flat runs are merged into one point, and a
    point (or plateau) is a minimum when every neighbour it has is strictly higher, the two ends
    included (they have one neighbour). A non-decreasing curve has exactly one (its low end),
    ``[1, 2, 1, 2, 1]`` has three. ``interior_minima`` leaves out the two ends: it is the
    number of valleys (a down step later followed by an up step), 0 for a monotone curve.
    """

    points: int
    steps: int
    down_steps: int
    flat_steps: int
    non_monotone_fraction: float
    local_minima: int
    interior_minima: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roughness(latency: Sequence[float] | np.ndarray, atol: float = 0.0) -> Roughness:
    """The :class:`Roughness` of ``latency`` (ordered by increasing channels).

    ``atol`` (ms) is the change below which a step counts as flat; the default 0.0 compares
    exactly, which is what a greedy searcher does. A tolerance of the estimator's error would
    be wrong here: one channel changes a network's latency by far less than that, so every
    step would look flat.
    """
    y = np.asarray(latency, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"roughness needs a non-empty 1-D latency array, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("roughness needs finite latencies")
    if atol < 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    d = np.diff(y)
    signs = np.where(d > atol, 1, np.where(d < -atol, -1, 0))
    moving = signs[signs != 0]
    if len(moving) == 0:
        minima, interior = 1, 0  # a single point or a flat curve: one basin
    else:
        interior = int(np.sum((moving[:-1] == -1) & (moving[1:] == 1)))
        minima = interior + int(moving[0] == 1) + int(moving[-1] == -1)
    steps = len(d)
    down = int(np.sum(signs == -1))
    return Roughness(
        points=len(y),
        steps=steps,
        down_steps=down,
        flat_steps=int(np.sum(signs == 0)),
        non_monotone_fraction=down / steps if steps else 0.0,
        local_minima=minima,
        interior_minima=interior,
    )


def edge_rise_share(channels: Sequence[int] | np.ndarray, latency: Sequence[float] | np.ndarray,
                    parallelism_factor: int) -> float:
    """Share of the total rise of a unit-step sweep that happens on the steps into a new pass.

    Only the up steps count (the rise is the sum of positive differences). A step from ``c - 1``
    to ``c`` starts a new pass of a P-wide array when ``(c - 1) % P == 0`` (``kP -> kP + 1``).
    An ideal ``ceil(c / P)`` staircase gives 1.0; a smooth ramp gives about ``1 / P``. 0.0 when
    the curve never rises. Steps wider than one channel are ignored.
    """
    c = np.asarray(channels, dtype=np.int64)
    y = np.asarray(latency, dtype=np.float64)
    if c.shape != y.shape or c.ndim != 1:
        raise ValueError(f"channels and latency must be 1-D and alike, got {c.shape}, {y.shape}")
    unit = np.diff(c) == 1
    rise = np.where(unit, np.maximum(np.diff(y), 0.0), 0.0)
    total = float(rise.sum())
    if total <= 0:
        return 0.0
    edge = unit & ((c[1:] - 1) % parallelism_factor == 0)
    return float(rise[edge].sum() / total)


def top_rises(channels: Sequence[int] | np.ndarray, latency: Sequence[float] | np.ndarray,
              count: int = 5) -> tuple[int, ...]:
    """The channel counts ``c`` (ascending) reached by the ``count`` largest rises
    ``latency[c] - latency[c_prev]``: where the curve's steps are."""
    c = np.asarray(channels, dtype=np.int64)
    d = np.diff(np.asarray(latency, dtype=np.float64))
    order = np.argsort(-d, kind="stable")[:count]
    return tuple(sorted(int(c[i + 1]) for i in order if d[i] > 0))


# -- sweeps ------------------------------------------------------------------------------------

def _check_stage(space: SearchSpace, stage: int) -> None:
    n = len(space.skeleton)
    if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)) or not 0 <= stage < n:
        raise ValueError(f"stage {stage!r} out of range: space {space.name} has stages 0..{n - 1}")


def _check_kind(space: SearchSpace, kind: str) -> None:
    if kind not in space.block_kinds:
        raise ValueError(f"unknown block kind {kind!r} for space {space.name}; expected one of "
                         f"{', '.join(space.block_kinds)}")


def sweep_base(space: SearchSpace, base: Architecture | None = None) -> Architecture:
    """The architecture sweeps and descents start from, rewritten so channels are actual.

    ``base`` defaults to the *curated* twin's :meth:`~SearchSpace.baseline` (MobileNetV2's
    stages snapped to multiples of P, width 1.0): at width 1.0 it is a point of both the curated
    and the uncurated space, so both sweep around the same network. The result has width 1.0,
    channel divisor 1 and every channel count (stem, stages, head) replaced by what ``base``
    builds, so ``decompose`` gives the same blocks for both.
    """
    if base is None:
        base = replace(space, curated=True).baseline()
    if len(base.stages) != len(space.skeleton):
        raise ValueError(f"base has {len(base.stages)} stages; space {space.name} has "
                         f"{len(space.skeleton)}")
    stages = tuple(replace(s, channels=base.scaled(s.channels)) for s in base.stages)
    return Architecture(resolution=base.resolution, stem_channels=base.scaled_stem,
                        stages=stages, head_channels=base.scaled_head, width_mult=1.0,
                        channel_divisor=1, stem_stride=base.stem_stride)


def _as_kind(space: SearchSpace, stage: Stage, index: int, kind: str,
             expansion: int | None) -> Stage:
    """``stage`` as block kind ``kind``: a conv has expansion 1; an ibn/fibn keeps ``expansion``
    if given, else the stage's own, else (from a conv stage) the space baseline's."""
    if expansion is None and stage.block == "conv" and kind != "conv":
        expansion = space.baseline().stages[index].expansion
    return stage.as_block(kind, expansion)


def channel_sweep(space: SearchSpace, estimator: LatencyEstimator, stage: int, block_kind: str,
                  channels: Sequence[int] | np.ndarray, base: Architecture | None = None,
                  num_classes: int = 1000, in_channels: int = 3,
                  expansion: int | None = None) -> np.ndarray:
    """Predicted network latency (ms) of ``base`` with stage ``stage`` set to ``block_kind`` and
    its output channels set to each of ``channels``.

    ``channels`` are actual conv channels: the sweep runs on :func:`sweep_base` (width 1.0,
    divisor 1), so ``c`` is the width of the stage's output convs and the input width of the
    next stage's first block. ``base`` defaults to the curated twin's baseline. The stage keeps
    its kernel, repeats and stride; ``expansion`` (ignored for ``conv``) defaults to the stage's
    own, or the space baseline's when the base stage is a conv. Everything else is the base's,
    so the curve is the whole network's latency, next stage included.
    """
    _check_stage(space, stage)
    _check_kind(space, block_kind)
    chans = np.asarray(channels)
    if chans.ndim != 1 or len(chans) == 0:
        raise ValueError(f"channels must be a non-empty 1-D sequence, got shape {chans.shape}")
    if not np.issubdtype(chans.dtype, np.integer) or np.any(chans < 1):
        raise ValueError("channels must be positive integers")
    ctx = sweep_base(space, base)
    st = _as_kind(space, ctx.stages[stage], stage, block_kind, expansion)
    archs = [ctx.replace_stage(stage, replace(st, channels=int(c))) for c in chans]
    return estimator.predict_many(archs, num_classes, in_channels)


# -- descent -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DescentEnd:
    """Where one greedy descent started and stopped (channels per stage) and the objective
    value there; ``moves`` is the number of steps taken."""

    start: tuple[int, ...]
    end: tuple[int, ...]
    value: float
    moves: int


def channel_neighbours(space: SearchSpace, channels: Sequence[int]) -> list[tuple[int, ...]]:
    """The channel vectors one step away: one stage moved to the next lower or higher of its
    channel choices (one channel in an uncurated space, P in a curated one)."""
    out = []
    for i, c in enumerate(channels):
        choices = space.channel_choices[i]
        j = choices.index(c)
        for k in (j - 1, j + 1):
            if 0 <= k < len(choices):
                out.append((*channels[:i], choices[k], *channels[i + 1:]))
    return out


class _Objective:
    """Objective values of channel vectors around one context architecture, memoised; each
    batch of new vectors is one :meth:`LatencyEstimator.predict_many` call."""

    def __init__(self, space: SearchSpace, estimator: LatencyEstimator, context: Architecture,
                 objective: str, num_classes: int, in_channels: int) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of "
                             f"{', '.join(OBJECTIVES)}")
        self.context, self.objective = context, objective
        self.estimator, self.num_classes, self.in_channels = estimator, num_classes, in_channels
        self.values: dict[tuple[int, ...], float] = {}
        self._stages: dict[tuple[int, int], Stage] = {}

    def _stage(self, i: int, c: int) -> Stage:
        key = (i, c)
        if key not in self._stages:
            self._stages[key] = replace(self.context.stages[i], channels=c)
        return self._stages[key]

    def fill(self, vectors: Sequence[tuple[int, ...]]) -> None:
        todo = list(dict.fromkeys(v for v in vectors if v not in self.values))
        if not todo:
            return
        archs = [replace(self.context, stages=tuple(self._stage(i, c) for i, c in enumerate(v)))
                 for v in todo]
        lat = self.estimator.predict_many(archs, self.num_classes, self.in_channels)
        if self.objective == "latency_per_channel":
            lat = lat / np.array([sum(v) for v in todo], dtype=np.float64)
        self.values.update(zip(todo, lat.tolist()))


def _context(space: SearchSpace, base: Architecture | None, kind: str | None) -> Architecture:
    ctx = sweep_base(space, base)
    if kind is None:
        return ctx
    _check_kind(space, kind)
    return replace(ctx, stages=tuple(_as_kind(space, s, i, kind, None)
                                     for i, s in enumerate(ctx.stages)))


def descend(space: SearchSpace, estimator: LatencyEstimator,
            starts: Sequence[Sequence[int]], objective: str = "latency",
            base: Architecture | None = None, kind: str | None = None,
            num_classes: int = 1000, in_channels: int = 3) -> list[DescentEnd]:
    """Steepest one-step descent over the channel dimensions from each start.

    Every other choice is the context's: :func:`sweep_base` of ``base`` (default the curated
    twin's baseline), with every stage set to block ``kind`` when given. At each step every
    neighbour (:func:`channel_neighbours`) is scored and the descent moves to the lowest one if
    it is strictly lower than the current point (ties broken by the smaller channel vector);
    it stops where no neighbour is lower: a local minimum of the objective on the channel grid.
    The objective strictly decreases, so every descent ends. All starts advance in lockstep so
    each step is one batched estimator call.
    """
    return _descend(space, estimator, starts, objective, base, kind, num_classes,
                    in_channels)[0]


def _descend(space: SearchSpace, estimator: LatencyEstimator,
             starts: Sequence[Sequence[int]], objective: str, base: Architecture | None,
             kind: str | None, num_classes: int, in_channels: int
             ) -> tuple[list[DescentEnd], float, int]:
    """:func:`descend`, the objective at the floor (every stage at its lowest channels) and
    the number of distinct channel vectors scored."""
    ctx = _context(space, base, kind)
    f = _Objective(space, estimator, ctx, objective, num_classes, in_channels)
    current = []
    for s in starts:
        vec = tuple(int(c) for c in s)
        if len(vec) != len(space.skeleton):
            raise ValueError(f"start {vec} has {len(vec)} stages; space {space.name} has "
                             f"{len(space.skeleton)}")
        for i, c in enumerate(vec):
            if c not in space.channel_choices[i]:
                raise ValueError(f"start {vec}: stage {i} channels {c} are not a choice of "
                                 f"space {space.label}")
        current.append(vec)
    first = list(current)
    moves = [0] * len(current)
    active = list(range(len(current)))
    while active:
        neighbours = {k: channel_neighbours(space, current[k]) for k in active}
        f.fill([current[k] for k in active] + [v for k in active for v in neighbours[k]])
        still = []
        for k in active:
            if not neighbours[k]:
                continue
            best = min(neighbours[k], key=lambda v: (f.values[v], v))
            if f.values[best] < f.values[current[k]]:
                current[k] = best
                moves[k] += 1
                still.append(k)
        active = still
    ends = [DescentEnd(first[k], current[k], f.values[current[k]], moves[k])
            for k in range(len(current))]
    floor = tuple(ch[0] for ch in space.channel_choices)
    f.fill([floor])
    return ends, f.values[floor], len(f.values)


@dataclass(frozen=True)
class DescentResult:
    """Greedy descents from ``starts`` random channel vectors of one space.

    ``distinct_minima`` counts the distinct end points; ``reached_best`` is the share of starts
    that end at the lowest of them; ``best_channels`` is that point and ``best_value`` its
    objective, ``median_value`` the median objective over all ends (how deep the traps are).
    ``floor_value`` is the objective with every stage at its lowest channel choice: for
    ``latency`` the minimum a monotone landscape would lead every descent to. ``evaluations``
    counts the distinct channel vectors scored.
    """

    space: str
    curated: bool
    kind: str
    objective: str
    starts: int
    distinct_minima: int
    reached_best: float
    mean_moves: float
    evaluations: int
    best_value: float
    median_value: float
    floor_value: float
    best_channels: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["best_channels"] = list(self.best_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescentResult:
        return cls(**{**data, "best_channels": tuple(data["best_channels"])})


def random_channels(space: SearchSpace, rng: np.random.Generator) -> tuple[int, ...]:
    """One channel vector, each stage uniform over its channel choices."""
    return tuple(int(ch[int(rng.integers(len(ch)))]) for ch in space.channel_choices)


def descent_minima(space: SearchSpace, estimator: LatencyEstimator, rng: np.random.Generator,
                   starts: int = 32, objective: str = "latency", base: Architecture | None = None,
                   kind: str | None = None, num_classes: int = 1000,
                   in_channels: int = 3) -> DescentResult:
    """:func:`descend` from ``starts`` random channel vectors (:func:`random_channels`) of
    ``space`` and summarise where the descents end.

    Only the channels are random: block kinds, kernels, expansions, repeats and resolution are
    the context's, so every descent runs on the same landscape and end points are comparable.
    With a latency that only grows with channels all descents meet one minimum (every stage at
    its lowest choice); each extra distinct minimum is a trap the landscape sets.
    """
    if starts < 1:
        raise ValueError(f"starts must be >= 1, got {starts}")
    ends, floor, scored = _descend(space, estimator,
                            [random_channels(space, rng) for _ in range(starts)],
                            objective, base, kind, num_classes, in_channels)
    best = min(ends, key=lambda e: (e.value, e.end))
    distinct = {e.end for e in ends}
    return DescentResult(
        space=space.name,
        curated=space.curated,
        kind=kind or "base",
        objective=objective,
        starts=starts,
        distinct_minima=len(distinct),
        reached_best=sum(e.end == best.end for e in ends) / starts,
        mean_moves=float(np.mean([e.moves for e in ends])),
        evaluations=scored,
        best_value=best.value,
        median_value=float(np.median([e.value for e in ends])),
        floor_value=floor,
        best_channels=best.end,
    )


# -- the report --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LandscapeRow:
    """One (stage, block kind) sweep: the uncurated curve at unit steps over the stage's channel
    range, the curated channels (multiples of P, a subset), both roughnesses, the share of the
    rise on pass edges (:func:`edge_rise_share`) and where the largest rises are."""

    stage: int
    kind: str
    channels: tuple[int, ...]
    latency_ms: tuple[float, ...]
    curated_channels: tuple[int, ...]
    uncurated: Roughness
    curated: Roughness
    edge_rise_share: float
    top_rises: tuple[int, ...]

    @property
    def curated_latency_ms(self) -> tuple[float, ...]:
        where = {c: i for i, c in enumerate(self.channels)}
        return tuple(self.latency_ms[where[c]] for c in self.curated_channels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "channels": list(self.channels),
            "latency_ms": list(self.latency_ms),
            "curated_channels": list(self.curated_channels),
            "uncurated": self.uncurated.to_dict(),
            "curated": self.curated.to_dict(),
            "edge_rise_share": self.edge_rise_share,
            "top_rises": list(self.top_rises),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandscapeRow:
        return cls(
            stage=int(data["stage"]),
            kind=str(data["kind"]),
            channels=tuple(int(c) for c in data["channels"]),
            latency_ms=tuple(float(v) for v in data["latency_ms"]),
            curated_channels=tuple(int(c) for c in data["curated_channels"]),
            uncurated=Roughness(**data["uncurated"]),
            curated=Roughness(**data["curated"]),
            edge_rise_share=float(data["edge_rise_share"]),
            top_rises=tuple(int(c) for c in data["top_rises"]),
        )


@dataclass(frozen=True)
class LandscapeReport:
    """Sweeps and descents of one space, curated against uncurated, under one estimator."""

    space: str
    estimator: str
    parallelism_factor: int
    estimator_parallelism_factor: int
    base: str
    num_classes: int
    in_channels: int
    seed: int
    rows: tuple[LandscapeRow, ...]
    descent: tuple[DescentResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "estimator": self.estimator,
            "parallelism_factor": self.parallelism_factor,
            "estimator_parallelism_factor": self.estimator_parallelism_factor,
            "base": self.base,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "seed": self.seed,
            "rows": [r.to_dict() for r in self.rows],
            "descent": [d.to_dict() for d in self.descent],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandscapeReport:
        scalars = {k: data[k] for k in ("space", "estimator", "parallelism_factor",
                                         "estimator_parallelism_factor", "base", "num_classes",
                                         "in_channels", "seed")}
        return cls(**scalars, rows=tuple(LandscapeRow.from_dict(r) for r in data["rows"]),
                   descent=tuple(DescentResult.from_dict(d) for d in data["descent"]))

    def table(self) -> str:
        """The sweep table and the descent table as aligned text."""
        p = self.parallelism_factor
        head = (f"{'stage':>5} {'kind':<5} {'channels':>9} {'n':>4} {'down%':>6} {'minima':>6} "
                f"{'valleys':>7} {'edge@P':>6} | {'n':>3} {'down%':>6} {'minima':>6} | "
                f"largest rises at c =")
        lines = [f"space {self.space}, estimator {self.estimator} "
                 f"(P={self.estimator_parallelism_factor}), curated P={p}",
                 f"base {self.base}",
                 f"{'':>41}uncurated (step 1){'':>2}| curated (step {p})",
                 head]
        for r in self.rows:
            u, c = r.uncurated, r.curated
            lines.append(
                f"{r.stage:>5} {r.kind:<5} {f'{r.channels[0]}-{r.channels[-1]}':>9} "
                f"{u.points:>4} {100 * u.non_monotone_fraction:>6.1f} {u.local_minima:>6} "
                f"{u.interior_minima:>7} {r.edge_rise_share:>6.2f} | {c.points:>3} "
                f"{100 * c.non_monotone_fraction:>6.1f} {c.local_minima:>6} | "
                f"{', '.join(str(x) for x in r.top_rises)}")
        if self.descent:
            lines += ["", "greedy descent over all stages' channels from random starts:",
                      f"{'kind':<5} {'objective':<20} {'space':<10} {'starts':>6} "
                      f"{'minima':>6} {'at best':>7} {'moves':>7} {'scored':>7} "
                      f"{'best':>10} {'median':>10} {'floor':>10}"]
            for d in self.descent:
                lines.append(
                    f"{d.kind:<5} {d.objective:<20} {'curated' if d.curated else 'uncurated':<10} "
                    f"{d.starts:>6} {d.distinct_minima:>6} {100 * d.reached_best:>6.0f}% "
                    f"{d.mean_moves:>7.1f} {d.evaluations:>7} {d.best_value:>10.4g} "
                    f"{d.median_value:>10.4g} {d.floor_value:>10.4g}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LandscapePlan:
    """A validated landscape request (:func:`landscape_plan`), run by :func:`run_landscape`."""

    estimator: LatencyEstimator
    label: str
    curated: SearchSpace
    stages: tuple[int, ...]
    kinds: tuple[str, ...]
    starts: int
    objectives: tuple[str, ...]
    descent_kinds: tuple[str, ...]
    base: Architecture | None
    num_classes: int
    in_channels: int


def landscape_plan(space_name: str | SearchSpace, estimator: LatencyEstimator | str | Path,
                   parallelism_factor: int | None = None, stages: Sequence[int] | None = None,
                   kinds: Sequence[str] = DEFAULT_KINDS, *, starts: int = 32,
                   objectives: Sequence[str] = OBJECTIVES,
                   descent_kinds: Sequence[str] | None = None,
                   base: Architecture | None = None, num_classes: int = 1000,
                   in_channels: int = 3) -> LandscapePlan:
    """Check a landscape request before any sweep runs (arguments as :func:`landscape_report`):
    ``ValueError`` (one line) for an estimator of another space, a bad stage index, an unknown
    kind or objective."""
    est, label = load_estimator(estimator)
    p = est.parallelism_factor if parallelism_factor is None else int(parallelism_factor)
    if isinstance(space_name, SearchSpace):
        template = replace(space_name, parallelism_factor=p)
    else:
        template = get_space(space_name, p, curated=True)
    if est.space != template.name:
        raise ValueError(f"estimator {label} was built for space {est.space!r}, not "
                         f"{template.name!r}")
    cur = replace(template, curated=True)
    stage_list = list(range(len(cur.skeleton))) if stages is None else [int(s) for s in stages]
    for s in stage_list:
        _check_stage(cur, s)
    for k in kinds:
        _check_kind(cur, k)
    for obj in objectives:
        if obj not in OBJECTIVES:
            raise ValueError(f"unknown objective {obj!r}; expected one of {', '.join(OBJECTIVES)}")
    if starts < 0:
        raise ValueError(f"starts must be >= 0, got {starts}")
    return LandscapePlan(est, label, cur, tuple(stage_list), tuple(kinds), starts,
                         tuple(objectives), tuple(kinds if descent_kinds is None
                                                  else descent_kinds), base, num_classes,
                         in_channels)


def run_landscape(plan: LandscapePlan, seed: int = 0) -> LandscapeReport:
    """Sweep every (stage, kind) of ``plan`` over the stage's uncurated channel range and
    descend from random starts in both spaces (the same seed for both)."""
    est, cur = plan.estimator, plan.curated
    unc = replace(cur, curated=False)
    p, num_classes, in_channels = cur.parallelism_factor, plan.num_classes, plan.in_channels
    ctx = sweep_base(cur, plan.base)
    rows = []
    for s in plan.stages:
        chans = unc.channel_choices[s]
        curated = cur.channel_choices[s]
        for k in plan.kinds:
            lat = channel_sweep(unc, est, s, k, chans, ctx, num_classes, in_channels)
            where = {c: i for i, c in enumerate(chans)}
            cur_lat = lat[[where[c] for c in curated]]
            rows.append(LandscapeRow(
                stage=s, kind=k, channels=tuple(chans), latency_ms=tuple(lat.tolist()),
                curated_channels=tuple(curated), uncurated=roughness(lat),
                curated=roughness(cur_lat), edge_rise_share=edge_rise_share(chans, lat, p),
                top_rises=top_rises(chans, lat)))
    descents = []
    if plan.starts:
        for k in plan.descent_kinds:
            for obj in plan.objectives:
                for space in (unc, cur):
                    rng = np.random.default_rng(seed)
                    descents.append(descent_minima(space, est, rng, plan.starts, obj, ctx, k,
                                                   num_classes, in_channels))
    return LandscapeReport(
        space=cur.name, estimator=plan.label, parallelism_factor=p,
        estimator_parallelism_factor=est.parallelism_factor, base=ctx.to_string(),
        num_classes=num_classes, in_channels=in_channels, seed=seed, rows=tuple(rows),
        descent=tuple(descents))


def landscape_report(space_name: str | SearchSpace, estimator: LatencyEstimator | str | Path,
                     parallelism_factor: int | None = None, stages: Sequence[int] | None = None,
                     kinds: Sequence[str] = DEFAULT_KINDS, seed: int = 0, starts: int = 32,
                     objectives: Sequence[str] = OBJECTIVES,
                     descent_kinds: Sequence[str] | None = None,
                     base: Architecture | None = None, num_classes: int = 1000,
                     in_channels: int = 3) -> LandscapeReport:
    """Sweep every (stage, kind) over the stage's uncurated channel range and descend from
    random starts in both spaces: :func:`landscape_plan` then :func:`run_landscape`.

    ``space_name`` is a registered space name, or a :class:`SearchSpace` whose curated and
    uncurated twins are used. ``parallelism_factor`` (default: the estimator's) sets the
    curated space's step. ``stages`` default to all. The descents run per objective and per
    kind of ``descent_kinds`` (default ``kinds``; every stage set to that kind), with ``starts``
    random starts each, the same seed for both spaces; ``starts=0`` skips them. ``ValueError``
    (one line) for an estimator of another space, a bad stage index or an unknown kind.
    """
    return run_landscape(landscape_plan(
        space_name, estimator, parallelism_factor, stages, kinds, starts=starts,
        objectives=objectives, descent_kinds=descent_kinds, base=base, num_classes=num_classes,
        in_channels=in_channels), seed)


# -- the plot ----------------------------------------------------------------------------------

def plot_landscape(report: LandscapeReport | Sequence[LandscapeRow], path: str | Path,
                   parallelism_factor: int | None = None, title: str | None = None) -> Path:
    """A PNG grid, one panel per (stage, kind): the uncurated sweep as a thin line, the curated
    channels as markers on it, dotted verticals at the multiples of P (where a P-wide array
    starts a new pass after them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(report, LandscapeReport):
        rows = list(report.rows)
        p = parallelism_factor or report.parallelism_factor
        title = title or (f"{report.space}: predicted latency vs channels "
                          f"({report.estimator}, P={p})")
    else:
        rows = list(report)
        p = parallelism_factor
    if not rows:
        raise ValueError("nothing to plot: no sweeps")
    stage_ids = sorted({r.stage for r in rows})
    kind_ids = list(dict.fromkeys(r.kind for r in rows))
    fig, axes = plt.subplots(len(stage_ids), len(kind_ids), squeeze=False, dpi=100,
                             figsize=(3.4 * len(kind_ids), 2.2 * len(stage_ids) + 0.6))
    for r in rows:
        ax = axes[stage_ids.index(r.stage)][kind_ids.index(r.kind)]
        ax.plot(r.channels, r.latency_ms, lw=0.8, color="tab:blue", label="uncurated (step 1)")
        ax.plot(r.curated_channels, r.curated_latency_ms, "o", ms=4, color="tab:red",
                label=f"curated (step {p})" if p else "curated")
        if p:
            for edge in range(-(-r.channels[0] // p) * p, r.channels[-1] + 1, p):
                ax.axvline(edge, color="0.6", lw=0.6, ls=":")
        ax.set_title(f"stage {r.stage} {r.kind}: {r.uncurated.interior_minima} valleys, "
                     f"{100 * r.uncurated.non_monotone_fraction:.0f}% down", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes[-1]:
        ax.set_xlabel("output channels", fontsize=8)
    for row in axes:
        row[0].set_ylabel("latency (ms)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
