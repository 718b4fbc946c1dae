"""Explain an architecture's cost per stage, and what each expert edit would change.

The seed work (the Amazon study on an edge accelerator) read its rules off earlier searches:
fuse the early inverted bottlenecks, align channels to the parallelism factor P, replace
depthwise with standard convs where the chip favours them, use a width multiplier. Before
trusting such a rule on a new network an expert wants to see where the time goes and what each
move would buy. :func:`explain` answers both without a device:

- the cost of every stage (the stem, stage 0..n-1, the head with pooling and classifier):
  predicted latency (the estimator's per-block predictions, times its per-network overhead
  scale; the overhead offset, if any, is its own row so the rows sum to ``predict``), share,
  parameters and peak activation bytes of the stage's layers (the exact memory model);
- the predicted effect of each one-knob edit of :mod:`nas.expert.edits` on each stage: fuse /
  unfuse, align channels to P (down and up), depthwise -> standard conv, the next lower and
  higher expansion of (1, 3, 4, 6), kernel 3 <-> 5, and globally the next lower and higher
  width multiplier. Each edit is priced as ``predict(edited) - predict(base)``, the whole
  network, so a change of the next stage's input channels counts too.

The best edit of a stage is the one with the lowest latency, marked only when it lowers latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from estimators.latency import load_estimator
from estimators.memory import memory_report
from nas.expert.edits import describe, edit
from nas.expert.rules import position_of
from searchspaces.genome import Architecture, expansions_for

EXPANSIONS = (1, 3, 4, 6)
KERNELS = (3, 5)
WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.4)
EDIT_NAMES = ("fuse", "unfuse", "dw->conv", "align down", "align up", "expansion down",
              "expansion up", "kernel down", "kernel up", "width down", "width up")
"""Every edit :func:`explain` prices, in the order of the tables and the plot's bar groups."""
END_GROUPS = {"stem": "stem", "head": "head", "pool": "head", "classifier": "head"}


@dataclass(frozen=True)
class StageCost:
    """One row of the cost table: the stem, a stage, the head (head conv, pool, classifier) or
    the estimator's per-network overhead offset."""

    name: str  # "stem", "stage 0", ..., "head", "overhead"
    index: int | None  # the stage index; None for the stem, head and overhead
    position: str  # early / middle / late for a stage, "" otherwise
    stage: str  # the stage string (Stage.to_string()), "" otherwise
    kinds: tuple[str, ...]  # block kinds of the row's blocks, in order, without repeats
    blocks: int
    latency_ms: float
    share: float  # of the predicted total
    params: int
    peak_activation_bytes: int  # the largest live bytes of the row's layers (fp32, batch 1)


@dataclass(frozen=True)
class EditEffect:
    """The predicted effect of one edit on the whole network."""

    stage: int | None  # None: a global edit (width multiplier)
    name: str  # one of EDIT_NAMES
    knob: str  # the rules-file knob this edit sets
    value: Any  # the value it sets (as a rule would write it)
    before: str  # the stage string before (the multiplier "w1.0" for a global edit)
    after: str  # ... and after
    arch: str  # the edited architecture
    latency_ms: float
    delta_ms: float
    delta_pct: float  # percent of the base latency
    params: int
    delta_params: int
    peak_activation_bytes: int
    delta_peak_bytes: int
    best: bool  # the lowest-latency edit of its stage, and it lowers latency


@dataclass(frozen=True)
class Explanation:
    arch: str
    estimator: str
    space: str
    profile: str
    backend: str
    parallelism_factor: int
    num_classes: int
    in_channels: int
    latency_ms: float
    params: int
    macs: int
    peak_activation_bytes: int
    peak_layer: str
    stages: tuple[StageCost, ...]
    edits: tuple[EditEffect, ...]

    def best_edits(self) -> list[EditEffect]:
        return [e for e in self.edits if e.best]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["stages"] = [asdict(s) for s in self.stages]
        out["edits"] = [asdict(e) for e in self.edits]
        return out


def _neighbours(values: tuple[Any, ...], current: Any) -> tuple[Any | None, Any | None]:
    """The next lower and the next higher value of ``values`` (``None`` where there is none)."""
    lower = [v for v in values if v < current]
    higher = [v for v in values if v > current]
    return (max(lower) if lower else None, min(higher) if higher else None)


def _stage_edits(arch: Architecture, i: int, p: int
                 ) -> list[tuple[str, str, Any, Architecture]]:
    """(name, knob, value, edited architecture) of every edit of stage ``i``."""
    st = arch.stages[i]
    out: list[tuple[str, str, Any, Architecture]] = []

    def add(name: str, knob: str, value: Any) -> None:
        for cand in edit(arch, i, knob, value, p):
            out.append((name, knob, value, cand))

    if st.block == "ibn":
        add("fuse", "block", "fibn")
    if st.block == "fibn":
        add("unfuse", "block", "ibn")
    if st.block == "ibn":
        add("dw->conv", "block", "conv")
    for cand in edit(arch, i, "channels_aligned", True, p):
        built = arch.scaled(cand.stages[i].channels)
        name = "align down" if built < arch.scaled(st.channels) else "align up"
        out.append((name, "channels_aligned", True, cand))
    lower, higher = _neighbours(expansions_for(st.block, EXPANSIONS), st.expansion)
    if lower is not None:
        add("expansion down", "expansion", lower)
    if higher is not None:
        add("expansion up", "expansion", higher)
    lower, higher = _neighbours(KERNELS, st.kernel)
    if lower is not None:
        add("kernel down", "kernel", lower)
    if higher is not None:
        add("kernel up", "kernel", higher)
    return out


def _global_edits(arch: Architecture, p: int) -> list[tuple[str, str, Any, Architecture]]:
    lower, higher = _neighbours(WIDTHS, arch.width_mult)
    out = []
    for name, value in (("width down", lower), ("width up", higher)):
        if value is not None:
            out += [(name, "width_mult", value, c) for c in edit(arch, None, "width_mult",
                                                                  value, p)]
    return out


def _groups(arch: Architecture) -> tuple[list[tuple[str, int | None]], dict[str, int]]:
    """The rows (name, stage index) and the row of every block name of :func:`decompose`."""
    rows: list[tuple[str, int | None]] = [("stem", None)]
    row_of = {"stem": 0}
    first = 0
    for i, st in enumerate(arch.stages):
        rows.append((f"stage {i}", i))
        for rep in range(st.repeats):
            row_of[f"blocks.{first + rep}"] = len(rows) - 1
        first += st.repeats
    rows.append(("head", None))
    for name in ("head", "pool", "classifier"):
        row_of[name] = len(rows) - 1
    return rows, row_of


def explain(arch: Architecture, estimator: Any, num_classes: int = 1000,
            in_channels: int = 3) -> Explanation:
    """Cost per stage of ``arch`` and the predicted effect of every edit (see module doc).

    ``estimator``: a loaded :class:`~estimators.latency.LatencyEstimator`, a folder or a shipped
    estimator's name; its parallelism factor decides which channel counts are aligned.
    """
    estimator, label = load_estimator(estimator)
    p = int(estimator.parallelism_factor)
    total = float(estimator.predict(arch, num_classes, in_channels))
    memory = memory_report(arch, num_classes, in_channels)
    scale, offset = estimator.overhead

    rows, row_of = _groups(arch)
    latency = [0.0] * len(rows)
    kinds: list[list[str]] = [[] for _ in rows]
    blocks = [0] * len(rows)
    layer_row: dict[str, int] = {}
    for block, ms in estimator.breakdown(arch, num_classes, in_channels):
        r = row_of[block.name]
        latency[r] += ms * scale
        blocks[r] += 1
        if block.kind not in kinds[r]:
            kinds[r].append(block.kind)
        for layer in block.layers():
            layer_row[layer.name] = r
    params = [0] * len(rows)
    peak = [0] * len(rows)
    for layer in memory.layers:
        r = layer_row[layer.name]
        params[r] += layer.params
        peak[r] = max(peak[r], layer.live_bytes)

    stages = []
    n = len(arch.stages)
    for r, (name, index) in enumerate(rows):
        stages.append(StageCost(
            name=name, index=index,
            position=position_of(index, n) if index is not None else "",
            stage=arch.stages[index].to_string() if index is not None else "",
            kinds=tuple(kinds[r]), blocks=blocks[r], latency_ms=latency[r],
            share=latency[r] / total if total else 0.0, params=params[r],
            peak_activation_bytes=peak[r]))
    if offset != 0.0:
        stages.append(StageCost("overhead", None, "", "", (), 0, float(offset),
                                offset / total if total else 0.0, 0, 0))

    todo: list[tuple[int | None, str, str, Any, Architecture]] = []
    for i in range(n):
        todo += [(i, *e) for e in _stage_edits(arch, i, p)]
    todo += [(None, *e) for e in _global_edits(arch, p)]
    predicted = estimator.predict_many([e[-1] for e in todo], num_classes, in_channels)

    effects: list[EditEffect] = []
    for (i, name, knob, value, cand), ms in zip(todo, predicted.tolist()):
        mem = memory_report(cand, num_classes, in_channels)
        before, after = describe(arch, i), describe(cand, i)
        delta = ms - total
        effects.append(EditEffect(
            stage=i, name=name, knob=knob, value=value, before=before, after=after,
            arch=cand.to_string(), latency_ms=ms, delta_ms=delta,
            delta_pct=100.0 * delta / total if total else 0.0, params=mem.params,
            delta_params=mem.params - memory.params,
            peak_activation_bytes=mem.peak_activation_bytes,
            delta_peak_bytes=mem.peak_activation_bytes - memory.peak_activation_bytes,
            best=False))
    best: dict[int | None, EditEffect] = {}
    for e in effects:
        if e.delta_ms < 0 and (e.stage not in best or e.delta_ms < best[e.stage].delta_ms):
            best[e.stage] = e
    marked = [replace(e, best=True) if best.get(e.stage) is e else e for e in effects]

    return Explanation(
        arch=arch.to_string(), estimator=label,
        space=estimator.space, profile=estimator.profile, backend=estimator.backend,
        parallelism_factor=p, num_classes=num_classes, in_channels=in_channels,
        latency_ms=total, params=memory.params, macs=memory.macs,
        peak_activation_bytes=memory.peak_activation_bytes, peak_layer=memory.peak_layer,
        stages=tuple(stages), edits=tuple(marked))


def plot_explanation(ex: Explanation, path: str | Path) -> Path:
    """A small PNG: predicted latency per stage (left), and per stage the latency change of each
    edit in percent of the whole network (right; the best edit of a stage outlined)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8), dpi=100,
                                      gridspec_kw={"width_ratios": [1, 2]})
    names = [s.name for s in ex.stages]
    left.bar(range(len(names)), [s.latency_ms for s in ex.stages], color="tab:blue")
    left.set_xticks(range(len(names)), [n.replace("stage ", "s") for n in names],
                    fontsize=8)
    left.set_ylabel("predicted latency (ms)")
    left.set_title(f"{ex.latency_ms:.4f} ms on {ex.profile}", fontsize=9)
    left.grid(axis="y", alpha=0.3)

    groups: list[int | None] = [s.index for s in ex.stages if s.index is not None] + [None]
    present = [n for n in EDIT_NAMES if any(e.name == n for e in ex.edits)]
    width = 0.8 / max(len(present), 1)
    cmap = plt.get_cmap("tab20")
    handles = []
    for k, name in enumerate(present):
        colour = cmap(EDIT_NAMES.index(name))  # one colour per edit in every plot
        xs, ys, edges = [], [], []
        for g, stage in enumerate(groups):
            for e in ex.edits:
                if e.stage == stage and e.name == name:
                    xs.append(g - 0.4 + (k + 0.5) * width)
                    ys.append(e.delta_pct)
                    edges.append("black" if e.best else "none")
        right.bar(xs, ys, width=width, color=colour, edgecolor=edges, linewidth=1.0)
        handles.append(Patch(facecolor=colour, label=name))
    right.axhline(0.0, color="0.3", lw=0.8)
    right.set_xticks(range(len(groups)), [f"s{g}" if g is not None else "global"
                                          for g in groups], fontsize=8)
    right.set_ylabel("latency change (%)")
    right.set_title("effect of each edit (outlined: best of the stage)", fontsize=9)
    right.grid(axis="y", alpha=0.3)
    right.legend(handles=handles, fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
