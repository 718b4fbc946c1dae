"""Edits of one knob of one architecture: the moves ``explain`` prices and ``apply`` makes.

Every edit returns candidate architectures (none where the edit does not apply or changes
nothing); the caller prices them with the latency estimator and the exact memory model and keeps
what they confirm. Channels in a genome are *base* channels, so ``channels_aligned`` works on the
*built* count (``arch.scaled(c)``) and offers the nearest base counts below and above whose built
count is a multiple of the parallelism factor P.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nas.expert.rules import GLOBAL_KNOBS, STAGE_KNOBS
from searchspaces.genome import Architecture, Stage, expansions_for

ALIGN_SEARCH = 0.5  # look for an aligned count within +-50% of the current base channels


def stage_value(arch: Architecture, stage: int, knob: str, parallelism_factor: int) -> Any:
    """The value a knob has in ``arch`` (``stage`` is ignored for global knobs)."""
    if knob == "width_mult":
        return arch.width_mult
    st = arch.stages[stage]
    if knob == "channels_aligned":
        return arch.scaled(st.channels) % parallelism_factor == 0
    if knob in ("block", "kernel", "expansion", "repeats"):
        return getattr(st, knob)
    raise ValueError(f"unknown knob {knob!r}; expected one of "
                     f"{', '.join(STAGE_KNOBS + GLOBAL_KNOBS)}")


def describe(arch: Architecture, stage: int | None) -> str:
    """What an edit changes, as text: the stage string, or the multiplier (``w1.0``) for a
    global edit (``stage`` None)."""
    return f"w{arch.width_mult!r}" if stage is None else arch.stages[stage].to_string()


def aligned_channels(arch: Architecture, channels: int, parallelism_factor: int) -> list[int]:
    """Base channel counts nearest to ``channels`` (one at or below, one above) whose built count
    is a multiple of P; empty when none lies within +-50%."""
    p = parallelism_factor
    lo = max(1, int(channels * (1 - ALIGN_SEARCH)))
    hi = int(channels * (1 + ALIGN_SEARCH)) + 1
    below = [c for c in range(channels, lo - 1, -1) if arch.scaled(c) % p == 0]
    above = [c for c in range(channels + 1, hi + 1) if arch.scaled(c) % p == 0]
    out = []
    for found in (below, above):
        if found:
            # of the base counts that build the same width, prefer the round one (c16, not c17)
            built = arch.scaled(found[0])
            same = [c for c in found if arch.scaled(c) == built]
            out.append(min(same, key=lambda c: (abs(c - built / arch.width_mult), c)))
    return out


def edit(arch: Architecture, stage: int | None, knob: str, value: Any,
         parallelism_factor: int) -> list[Architecture]:
    """Architectures with ``knob`` set to ``value`` at ``stage`` (or globally).

    - ``block``: ``fibn`` fuses an IBN (same kernel and expansion); ``ibn`` unfuses; ``conv``
      replaces the block by one KxK standard conv (expansion dropped); a conv stage turning into
      an IBN/fused IBN gets expansion 1.
    - ``kernel`` / ``expansion`` / ``repeats``: set the value (a conv stage has no expansion).
    - ``channels_aligned``: ``True`` moves the stage's channels to the nearest aligned counts;
      ``False`` is never proposed (misaligning is not an edit an expert makes).
    - ``width_mult``: the global multiplier.
    """
    if knob == "width_mult":  # the one global knob
        value = float(value)
        if not 0.0 < value <= 4.0:
            raise ValueError(f"width multiplier must be in (0, 4], got {value}")
        return [] if value == arch.width_mult else [replace(arch, width_mult=value)]
    if knob not in STAGE_KNOBS:
        raise ValueError(f"unknown knob {knob!r}; expected one of "
                         f"{', '.join(STAGE_KNOBS + GLOBAL_KNOBS)}")
    if stage is None or not 0 <= stage < len(arch.stages):
        raise ValueError(f"knob {knob!r} needs a stage in 0..{len(arch.stages) - 1}, got {stage}")
    st = arch.stages[stage]
    if knob == "channels_aligned":
        if not value or stage_value(arch, stage, knob, parallelism_factor):
            return []
        return [arch.replace_stage(stage, replace(st, channels=c))
                for c in aligned_channels(arch, st.channels, parallelism_factor)]
    if getattr(st, knob) == value:
        return []
    if knob == "block":
        if value not in ("ibn", "fibn", "conv"):
            raise ValueError(f"unknown block kind {value!r}; expected ibn, fibn or conv")
        return [arch.replace_stage(stage, st.as_block(value))]
    if knob == "expansion" and int(value) not in expansions_for(st.block, (int(value),)):
        return []  # a conv stage has no expansion to set
    try:
        new = Stage(**{**{k: getattr(st, k) for k in ("block", "kernel", "expansion",
                                                      "channels", "repeats", "stride")},
                       knob: int(value)})
    except ValueError as exc:
        raise ValueError(f"stage {stage}: {knob} = {value!r}: {exc}") from None
    return [arch.replace_stage(stage, new)]
