"""Search spaces: per-stage choices around a skeleton, curated or not for a hardware target.

A *curated* space offers only channel counts that are multiples of the target's parallelism
factor P (the PE-array width: 8, 16, 32 are typical) and rounds width-multiplied channels to P;
an *uncurated* one steps channels by 1 over the same range and rounds to 1. On an accelerator a
channel count one above a multiple of P can cost a whole extra pass over the array, which is why
the curated space removes those points before any search starts.

Every space converts architectures to and from a flat dict of categorical choices
(:meth:`SearchSpace.dimensions`), which is what Ray Tune and Optuna search over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from .baselines import MBV2_SETTINGS
from .genome import BLOCK_KINDS, HEAD_KINDS, Architecture, Stage, expansions_for

STAGE_KEYS: tuple[str, ...] = ("block", "kernel", "expansion", "repeats", "channels")


@dataclass(frozen=True)
class StageSkeleton:
    """Baseline channels, repeats and stride of one stage (the stride is not searched)."""

    channels: int
    repeats: int
    stride: int


@dataclass(frozen=True)
class SearchSpace:
    """Per stage: block kind, kernel, expansion, repeats (baseline +-``repeat_delta``) and
    channels; globally: width multiplier and input resolution."""

    name: str
    skeleton: tuple[StageSkeleton, ...]
    resolutions: tuple[int, ...]
    width_mults: tuple[float, ...]
    parallelism_factor: int = 8
    curated: bool = True
    stem_channels: int = 32
    stem_stride: int = 2
    head_channels: int = 1280
    block_kinds: tuple[str, ...] = BLOCK_KINDS
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (1, 3, 4, 6)
    repeat_delta: int = 1
    channel_range: tuple[float, float] = (0.5, 1.5)
    head_kind: str = "head"
    head_options: tuple[int, ...] = ()
    """A detection head's choices of output scales (dimension ``head_scales``) or a
    segmentation head's choices of output stride (``head_stride``); none for a classifier."""

    def __post_init__(self) -> None:
        if self.parallelism_factor < 1:
            raise ValueError(f"parallelism factor must be >= 1, got {self.parallelism_factor}")
        unknown = set(self.block_kinds) - set(BLOCK_KINDS)
        if unknown:
            raise ValueError(f"unknown block kinds {sorted(unknown)}; known: {BLOCK_KINDS}")
        for label, values in (("resolutions", self.resolutions), ("width_mults", self.width_mults),
                              ("kernels", self.kernels), ("expansions", self.expansions),
                              ("block_kinds", self.block_kinds)):
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{label} must be non-empty and distinct, got {values}")
        if 1 not in self.expansions:
            raise ValueError("expansions must include 1 (the value conv stages take)")
        if self.head_kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {self.head_kind!r}; known: {HEAD_KINDS}")
        if (self.head_kind == "head") != (not self.head_options):
            wanted = "no" if self.head_kind == "head" else "some"
            raise ValueError(f"a {self.head_kind!r} head takes {wanted} head options, got "
                             f"{self.head_options}")

    def with_head(self, kind: str) -> SearchSpace:
        """This space with candidates ending in a ``kind`` head (:data:`HEAD_SPACES`): a task's
        head with its own channels and its searchable output scales or stride."""
        try:
            channels, options = HEAD_SPACES[kind]
        except KeyError:
            raise ValueError(f"unknown head kind {kind!r}; known: {', '.join(HEAD_SPACES)}"
                             ) from None
        if kind == "head":
            return replace(self, head_kind=kind, head_options=())
        return replace(self, head_kind=kind, head_channels=channels, head_options=options)

    @property
    def head_dimension(self) -> str | None:
        """The name of the head's dimension (``head_scales``, ``head_stride``), if it has one."""
        return {"det": "head_scales", "seg": "head_stride"}.get(self.head_kind)

    # -- choices ---------------------------------------------------------------------------
    @property
    def channel_divisor(self) -> int:
        return self.parallelism_factor if self.curated else 1

    @property
    def label(self) -> str:
        kind = "curated" if self.curated else "uncurated"
        return f"{self.name} ({kind}, P={self.parallelism_factor})"

    @cached_property
    def channel_choices(self) -> tuple[tuple[int, ...], ...]:
        """Per stage. The range is ``channel_range`` times the baseline, widened up to the first
        multiple of P when it holds none; curated keeps the multiples of P, uncurated all."""
        p = self.parallelism_factor
        out = []
        for st in self.skeleton:
            lo = max(1, math.floor(st.channels * self.channel_range[0]))
            hi = math.ceil(st.channels * self.channel_range[1])
            if hi // p * p < lo:
                hi = -(-lo // p) * p
            if self.curated:
                out.append(tuple(range(-(-lo // p) * p, hi + 1, p)))
            else:
                out.append(tuple(range(lo, hi + 1)))
        return tuple(out)

    @cached_property
    def repeat_choices(self) -> tuple[tuple[int, ...], ...]:
        d = self.repeat_delta
        return tuple(tuple(range(max(1, st.repeats - d), st.repeats + d + 1))
                     for st in self.skeleton)

    def dimensions(self) -> dict[str, tuple[Any, ...]]:
        """Flat categorical dimensions: ``resolution``, ``width_mult``, ``s{i}_{key}``."""
        dims: dict[str, tuple[Any, ...]] = {
            "resolution": self.resolutions,
            "width_mult": self.width_mults,
        }
        for i in range(len(self.skeleton)):
            dims[f"s{i}_block"] = self.block_kinds
            dims[f"s{i}_kernel"] = self.kernels
            dims[f"s{i}_expansion"] = self.expansions
            dims[f"s{i}_repeats"] = self.repeat_choices[i]
            dims[f"s{i}_channels"] = self.channel_choices[i]
        if self.head_dimension:
            dims[self.head_dimension] = self.head_options
        return dims

    def size(self) -> int:
        """Number of distinct architectures (a conv stage has no expansion to choose)."""
        per_kind = (sum(len(expansions_for(b, self.expansions)) for b in self.block_kinds)
                    * len(self.kernels))
        total = len(self.resolutions) * len(self.width_mults) * max(1, len(self.head_options))
        for reps, chans in zip(self.repeat_choices, self.channel_choices):
            total *= per_kind * len(reps) * len(chans)
        return total

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: identity, size and every dimension's choices."""
        return {
            "name": self.name,
            "curated": self.curated,
            "parallelism_factor": self.parallelism_factor,
            "channel_divisor": self.channel_divisor,
            "size": self.size(),
            "num_stages": len(self.skeleton),
            "strides": [sk.stride for sk in self.skeleton],
            "head": self.head_kind,
            "dimensions": {k: list(v) for k, v in self.dimensions().items()},
        }

    # -- conversions -----------------------------------------------------------------------
    def to_choices(self, arch: Architecture) -> dict[str, Any]:
        self.validate(arch)
        out: dict[str, Any] = {"resolution": arch.resolution, "width_mult": arch.width_mult}
        for i, st in enumerate(arch.stages):
            out[f"s{i}_block"] = st.block
            out[f"s{i}_kernel"] = st.kernel
            out[f"s{i}_expansion"] = st.expansion
            out[f"s{i}_repeats"] = st.repeats
            out[f"s{i}_channels"] = st.channels
        if self.head_dimension:
            out[self.head_dimension] = _head_option(arch)
        return out

    def from_choices(self, choices: dict[str, Any]) -> Architecture:
        """Inverse of :meth:`to_choices`; a conv stage ignores its ``expansion`` choice."""
        dims = self.dimensions()
        missing = [k for k in dims if k not in choices]
        if missing:
            raise ValueError(f"choices lack {', '.join(missing)} for space {self.label}")
        extra = [k for k in choices if k not in dims]
        if extra:
            raise ValueError(f"unknown choices {', '.join(extra)} for space {self.label}")
        stages = []
        for i, sk in enumerate(self.skeleton):
            block = choices[f"s{i}_block"]
            stages.append(Stage(
                block=block,
                kernel=int(choices[f"s{i}_kernel"]),
                expansion=expansions_for(block, (int(choices[f"s{i}_expansion"]),))[0],
                channels=int(choices[f"s{i}_channels"]),
                repeats=int(choices[f"s{i}_repeats"]),
                stride=sk.stride,
            ))
        option = int(choices[self.head_dimension]) if self.head_dimension else None
        arch = self._arch(tuple(stages), int(choices["resolution"]),
                          float(choices["width_mult"]), option)
        self.validate(arch)
        return arch

    def _arch(self, stages: tuple[Stage, ...], resolution: int, width: float,
              head_option: int | None = None) -> Architecture:
        if head_option is None and self.head_options:
            head_option = self.head_options[0]
        return Architecture(
            resolution=resolution,
            stem_channels=self.stem_channels,
            stem_stride=self.stem_stride,
            stages=stages,
            head_channels=self.head_channels,
            width_mult=width,
            channel_divisor=self.channel_divisor,
            head_kind=self.head_kind,
            head_scales=head_option if self.head_kind == "det" else 1,
            head_stride=head_option if self.head_kind == "seg" else 8,
        )

    # -- validation ------------------------------------------------------------------------
    def validate(self, arch: Architecture) -> None:
        """Raise ``ValueError`` naming the first property of ``arch`` outside this space."""
        where = f"outside space {self.label}"
        checks = (
            ("resolution", arch.resolution, self.resolutions),
            ("width multiplier", arch.width_mult, self.width_mults),
            ("channel divisor", arch.channel_divisor, (self.channel_divisor,)),
            ("stem channels", arch.stem_channels, (self.stem_channels,)),
            ("stem stride", arch.stem_stride, (self.stem_stride,)),
            ("head kind", arch.head_kind, (self.head_kind,)),
            ("head channels", arch.head_channels, (self.head_channels,)),
        )
        for label, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{label} {value} {where}: expected one of {_fmt(allowed)}")
        if self.head_dimension and _head_option(arch) not in self.head_options:
            raise ValueError(f"{self.head_dimension.replace('_', ' ')} {_head_option(arch)} "
                             f"{where}: expected one of {_fmt(self.head_options)}")
        if len(arch.stages) != len(self.skeleton):
            raise ValueError(f"{len(arch.stages)} stages {where}: expected {len(self.skeleton)}")
        for i, (st, sk) in enumerate(zip(arch.stages, self.skeleton)):
            stage_checks = (
                ("block", st.block, self.block_kinds),
                ("kernel", st.kernel, self.kernels),
                ("expansion", st.expansion, expansions_for(st.block, self.expansions)),
                ("repeats", st.repeats, self.repeat_choices[i]),
                ("channels", st.channels, self.channel_choices[i]),
                ("stride", st.stride, (sk.stride,)),
            )
            for label, value, allowed in stage_checks:
                if value not in allowed:
                    raise ValueError(
                        f"stage {i} {label} {value} {where}: expected one of {_fmt(allowed)}"
                    )

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    # -- sampling and mutation ----------------------------------------------------------------
    @cached_property
    def _stage_pool(self) -> dict[Stage, Stage]:
        return {}

    def _intern(self, stage: Stage) -> Stage:
        """One object per distinct stage: the latency estimator's caches key on stages, and a
        dict finds an identical object without calling ``__eq__``."""
        return self._stage_pool.setdefault(stage, stage)

    def sample(self, rng: np.random.Generator) -> Architecture:
        """One architecture, each choice uniform and independent."""
        stages = []
        for i, sk in enumerate(self.skeleton):
            block = _pick(rng, self.block_kinds)
            stages.append(self._intern(Stage(
                block=block,
                kernel=_pick(rng, self.kernels),
                expansion=_pick(rng, expansions_for(block, self.expansions)),
                channels=_pick(rng, self.channel_choices[i]),
                repeats=_pick(rng, self.repeat_choices[i]),
                stride=sk.stride,
            )))
        resolution, width = _pick(rng, self.resolutions), _pick(rng, self.width_mults)
        # a classifier space draws nothing more, so its samples stay what they always were
        option = _pick(rng, self.head_options) if self.head_options else None
        return self._arch(tuple(stages), resolution, width, option)

    def baseline(self) -> Architecture:
        """The skeleton as MobileNetV2 sets it, snapped onto this space's nearest choices."""
        stages = []
        for i, (t, _c, _n, _s) in enumerate(MBV2_SETTINGS[: len(self.skeleton)]):
            sk = self.skeleton[i]
            stages.append(Stage(
                block="ibn" if "ibn" in self.block_kinds else self.block_kinds[0],
                kernel=_nearest(self.kernels, 3),
                expansion=_nearest(self.expansions, t),
                channels=_nearest(self.channel_choices[i], sk.channels),
                repeats=_nearest(self.repeat_choices[i], sk.repeats),
                stride=sk.stride,
            ))
        stages = [s.as_block(s.block) for s in stages]
        return self._arch(tuple(stages), _nearest(self.resolutions, 224),
                          _nearest(self.width_mults, 1.0))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """One small valid change, chosen uniformly among those possible: a stage's block kind,
        kernel, expansion or repeats, a step to the neighbouring channel choice, a step of the
        width multiplier or of the resolution. The result always differs from ``arch``."""
        self.validate(arch)
        moves: list[tuple[str, int]] = []
        if len(self.width_mults) > 1:
            moves.append(("width_mult", -1))
        if len(self.resolutions) > 1:
            moves.append(("resolution", -1))
        if len(self.head_options) > 1:
            moves.append(("head", -1))
        for i, st in enumerate(arch.stages):
            if len(self.block_kinds) > 1:
                moves.append(("block", i))
            if len(self.kernels) > 1:
                moves.append(("kernel", i))
            if len(expansions_for(st.block, self.expansions)) > 1:
                moves.append(("expansion", i))
            if len(self.repeat_choices[i]) > 1:
                moves.append(("repeats", i))
            if len(self.channel_choices[i]) > 1:
                moves.append(("channels", i))
        if not moves:
            raise ValueError(f"space {self.label} has a single architecture; nothing to mutate")
        key, i = moves[int(rng.integers(len(moves)))]
        if key == "width_mult":
            return replace(arch, width_mult=_step(rng, self.width_mults, arch.width_mult))
        if key == "resolution":
            return replace(arch, resolution=_step(rng, self.resolutions, arch.resolution))
        if key == "head":
            option = _step(rng, self.head_options, _head_option(arch))
            return replace(arch, **{self.head_dimension: option})
        st = arch.stages[i]
        if key == "block":
            block = _pick(rng, [b for b in self.block_kinds if b != st.block])
            # from a conv (expansion 1) an IBN draws its expansion; otherwise it keeps its own
            fresh = _pick(rng, self.expansions) if st.block == "conv" and block != "conv" else None
            new = st.as_block(block, fresh)
        elif key == "kernel":
            new = replace(st, kernel=_pick(rng, [k for k in self.kernels if k != st.kernel]))
        elif key == "expansion":
            new = replace(st, expansion=_pick(rng, [e for e in self.expansions
                                                    if e != st.expansion]))
        elif key == "repeats":
            new = replace(st, repeats=_step(rng, self.repeat_choices[i], st.repeats))
        else:
            new = replace(st, channels=_step(rng, self.channel_choices[i], st.channels))
        return arch.replace_stage(i, self._intern(new))


HEAD_SPACES: dict[str, tuple[int, tuple[int, ...]]] = {
    "head": (1280, ()),
    "det": (64, (2, 1)),
    "seg": (128, (4, 8)),
}
"""Per head kind: its channels (CenterNet's 64 head channels; torchvision's LR-ASPP uses 128
inter channels) and its searchable options (output scales; the skip branch's output stride),
the baseline's first: two detection scales, since a one-scale baseline barely learns in a brief
training (map50 0.01-0.04 after 6-12 epochs on the presence scenes, against 0.4-0.65 with two;
docs/tasks.md)."""


def _head_option(arch: Architecture) -> int:
    return arch.head_scales if arch.head_kind == "det" else arch.head_stride


def _pick(rng: np.random.Generator, values: Any) -> Any:
    values = tuple(values)
    return values[int(rng.integers(len(values)))]


def _step(rng: np.random.Generator, values: tuple[Any, ...], current: Any) -> Any:
    """A neighbour of ``current`` in the ordered ``values``."""
    ordered = sorted(values)
    idx = ordered.index(current)
    options = [ordered[j] for j in (idx - 1, idx + 1) if 0 <= j < len(ordered)]
    return _pick(rng, options)


def _nearest(values: tuple[Any, ...], target: float) -> Any:
    return min(values, key=lambda v: (abs(v - target), v))


def _fmt(values: tuple[Any, ...]) -> str:
    if len(values) > 8 and all(isinstance(v, int) for v in values):
        return f"{min(values)}..{max(values)} ({len(values)} values)"
    return "(" + ", ".join(str(v) for v in values) + ")"


# -- registry --------------------------------------------------------------------------------

def _mbv2_skeleton(small_input: bool) -> tuple[StageSkeleton, ...]:
    return tuple(
        StageSkeleton(c, n, 1 if small_input and i == 1 else s)
        for i, (_t, c, n, s) in enumerate(MBV2_SETTINGS)
    )


def mbv2(parallelism_factor: int = 8, curated: bool = True) -> SearchSpace:
    """MobileNetV2 skeleton at ImageNet resolutions."""
    return SearchSpace(
        name="mbv2",
        skeleton=_mbv2_skeleton(small_input=False),
        resolutions=(128, 160, 192, 224),
        width_mults=(0.5, 0.75, 1.0, 1.4),
        parallelism_factor=parallelism_factor,
        curated=curated,
    )


def mbv2_small(parallelism_factor: int = 8, curated: bool = True) -> SearchSpace:
    """MobileNetV2 skeleton for small inputs (CIFAR-10, upsampled digits): stem and second stage
    at stride 1, resolutions 24-32."""
    return SearchSpace(
        name="mbv2-small",
        skeleton=_mbv2_skeleton(small_input=True),
        resolutions=(24, 32),
        width_mults=(0.5, 0.75, 1.0),
        parallelism_factor=parallelism_factor,
        curated=curated,
        stem_stride=1,
    )


SPACES: dict[str, Callable[..., SearchSpace]] = {"mbv2": mbv2, "mbv2-small": mbv2_small}


def get_space(name: str, parallelism_factor: int = 8, curated: bool = True,
              head: str = "head") -> SearchSpace:
    """A registered space by name, its candidates ending in a ``head`` head (``head`` a
    classifier, ``det``, ``seg``: :data:`~searchspaces.genome.TASK_HEADS`); ``ValueError`` lists
    the known names."""
    try:
        factory = SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; known spaces: {', '.join(SPACES)}") from None
    space = factory(parallelism_factor=parallelism_factor, curated=curated)
    return space if head == "head" else space.with_head(head)
