"""The genome: what a candidate network *is*, and its compact string form.

An :class:`Architecture` is a stem, a list of :class:`Stage` s and a head, plus a global width
("depth") multiplier and the input resolution. It follows the MobileNetV2 skeleton
(Sandler et al., 2018, arXiv:1801.04381) with the fused inverted bottleneck of EfficientNet-EdgeTPU
(Gupta & Akin, 2019) and a plain KxK conv block as the per-stage alternatives.

String grammar (in the spirit of timm's block strings, ``_efficientnet_builder.py``)::

    arch    := header ":" stem "-" stage ("-" stage)* "-" head
    header  := "r" INT "_w" FLOAT "_d" INT        resolution, width multiplier, channel divisor
    stem    := "stem_c" INT "_s" INT              stem channels and stride (3x3 conv)
    stage   := KIND ("_" KEY VALUE)*              KIND in {ibn, fibn, conv}
               keys: k kernel, e expansion (not for conv), c out channels, r repeats, s stride
    head    := "head_c" INT                       classifier: 1x1 conv channels before pooling
             | "det_c" INT "_n" INT               detection: head channels, output scales (1, 2)
             | "seg_c" INT "_o" INT               segmentation (LR-ASPP): inter channels, output
                                                  stride of the low-level branch

Example (torchvision's MobileNetV2)::

    r224_w1.0_d8:stem_c32_s2-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s2-...-ibn_k3_e6_c320_r1_s1-head_c1280

Tokens may come in any order within an element; :meth:`Architecture.to_string` writes the
canonical order, and ``Architecture.from_string(a.to_string()) == a`` for every valid ``a``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

BLOCK_KINDS: tuple[str, ...] = ("ibn", "fibn", "conv")
HEAD_KINDS: tuple[str, ...] = ("head", "det", "seg")
"""The task heads an architecture ends in (:func:`searchspaces.layers.decompose` resolves them)."""
TASK_HEADS: dict[str, str] = {"classification": "head", "detection": "det",
                              "segmentation": "seg"}
"""The head kind each task's candidates end in."""
SEG_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 32)
DEFAULT_NUM_CLASSES: dict[str, int] = {"head": 1000, "det": 80, "seg": 21}
"""Classes a head predicts when nobody says: ImageNet's (classifier), COCO's (detector), VOC's
with the background (segmenter). A segmenter's score map is full resolution, so a classifier's
1000 would make it a different network altogether."""


def expansions_for(block: str, expansions: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """The expansions a stage of kind ``block`` may take out of ``expansions``: a ``conv`` stage
    has no expanding conv, so only 1; an IBN or fused IBN any of them. Spaces, mutations, edits
    and sweeps ask here rather than restating the rule."""
    return (1,) if block == "conv" else tuple(expansions)
"""``ibn``: 1x1 expand -> KxK depthwise -> 1x1 project; ``fibn``: KxK expand -> 1x1 project;
``conv``: one KxK conv (no expansion)."""

_TOKEN = re.compile(r"^([a-z]+)(\d+(?:\.\d+)?)$")


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going down by more than 10%.

    This is the rule of the TensorFlow/torchvision MobileNet code (``_make_divisible``), so that
    width-multiplied baselines match torchvision exactly. With ``divisor`` equal to the hardware
    parallelism factor it rounds channels onto the array width.
    """
    if divisor < 1:
        raise ValueError(f"channel divisor must be >= 1, got {divisor}")
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class Stage:
    """``repeats`` blocks of one kind; the first has ``stride``, the others stride 1."""

    block: str
    kernel: int
    expansion: int
    channels: int
    repeats: int
    stride: int
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # cached: stages key the latency estimator's caches, hashed millions of times
        return self._hash

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.block, self.kernel, self.expansion,
                                                self.channels, self.repeats, self.stride)))
        if self.block not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.block!r}; expected one of {BLOCK_KINDS}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")
        if self.expansion < 1:
            raise ValueError(f"expansion must be >= 1, got {self.expansion}")
        if self.block == "conv" and self.expansion != 1:
            raise ValueError(f"a conv stage has no expansion; got e{self.expansion}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")

    def as_block(self, block: str, expansion: int | None = None) -> Stage:
        """This stage as kind ``block``: a conv gets expansion 1 (:func:`expansions_for`); an
        IBN or fused IBN gets ``expansion``, by default this stage's own."""
        wanted = self.expansion if expansion is None else int(expansion)
        return replace(self, block=block, expansion=expansions_for(block, (wanted,))[0])

    def to_string(self) -> str:
        parts = [self.block, f"k{self.kernel}"]
        if self.block != "conv":
            parts.append(f"e{self.expansion}")
        parts += [f"c{self.channels}", f"r{self.repeats}", f"s{self.stride}"]
        return "_".join(parts)

    @classmethod
    def from_string(cls, text: str) -> Stage:
        kind, *tokens = text.split("_")
        if kind not in BLOCK_KINDS:
            raise ValueError(
                f"unknown block kind {kind!r} in stage {text!r}; expected one of {BLOCK_KINDS}"
            )
        values = _parse_tokens(tokens, {"k": int, "e": int, "c": int, "r": int, "s": int}, text)
        missing = {"k", "c", "r", "s"} - values.keys()
        if missing:
            raise ValueError(f"stage {text!r} lacks {', '.join(sorted(missing))}")
        if kind != "conv" and "e" not in values:
            raise ValueError(f"stage {text!r} lacks e (expansion)")
        if kind == "conv" and "e" in values:
            raise ValueError(f"token 'e{values['e']}' in {text!r}: a conv stage has no expansion")
        try:
            return cls(
                block=kind,
                kernel=values["k"],
                expansion=values.get("e", 1),
                channels=values["c"],
                repeats=values["r"],
                stride=values["s"],
            )
        except ValueError as err:
            raise ValueError(f"stage {text!r}: {err}") from None


@dataclass(frozen=True)
class Architecture:
    """A candidate network. Channels are *base* channels: the built model uses
    ``make_divisible(channels * width_mult, channel_divisor)`` (see :meth:`scaled`)."""

    resolution: int
    stem_channels: int
    stages: tuple[Stage, ...]
    head_channels: int
    width_mult: float = 1.0
    channel_divisor: int = 8
    stem_stride: int = 2
    head_kind: str = "head"
    head_scales: int = 1
    """Detection only: heads on the last ``head_scales`` feature-map resolutions (1 or 2)."""
    head_stride: int = 8
    """Segmentation only: the output stride of the LR-ASPP low-level (skip) branch."""
    _string: str = field(default="", init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple):
            object.__setattr__(self, "stages", tuple(self.stages))
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {self.resolution}")
        if not self.stages:
            raise ValueError("an architecture needs at least one stage")
        if self.stem_channels < 1 or self.head_channels < 1:
            raise ValueError("stem and head channels must be >= 1")
        if not (0.0 < self.width_mult <= 4.0):
            raise ValueError(f"width multiplier must be in (0, 4], got {self.width_mult}")
        if self.channel_divisor < 1:
            raise ValueError(f"channel divisor must be >= 1, got {self.channel_divisor}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem stride must be 1 or 2, got {self.stem_stride}")
        if self.head_kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {self.head_kind!r}; expected one of {HEAD_KINDS}")
        if self.head_scales not in (1, 2) or (self.head_kind != "det" and self.head_scales != 1):
            raise ValueError(f"head scales must be 1 or 2 (and 1 unless the head is 'det'), got "
                             f"{self.head_scales}")
        if self.head_stride not in SEG_STRIDES or (self.head_kind != "seg"
                                                   and self.head_stride != 8):
            raise ValueError(f"head stride must be one of {SEG_STRIDES} (and 8 unless the head is "
                             f"'seg'), got {self.head_stride}")
        object.__setattr__(self, "width_mult", float(self.width_mult))

    # -- width multiplier ------------------------------------------------------------------
    def scaled(self, channels: int) -> int:
        """Channels after the width multiplier, rounded to the channel divisor."""
        return make_divisible(channels * self.width_mult, self.channel_divisor)

    @property
    def scaled_stem(self) -> int:
        return self.scaled(self.stem_channels)

    @property
    def scaled_head(self) -> int:
        """The head is never narrowed (MobileNetV2 keeps 1280 for multipliers below 1)."""
        return make_divisible(self.head_channels * max(1.0, self.width_mult), self.channel_divisor)

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    # -- string form -------------------------------------------------------------------------
    def to_string(self) -> str:
        if not self._string:
            header = f"r{self.resolution}_w{self.width_mult!r}_d{self.channel_divisor}"
            body = [f"stem_c{self.stem_channels}_s{self.stem_stride}"]
            body += [s.to_string() for s in self.stages]
            body.append(self.head_string())
            object.__setattr__(self, "_string", header + ":" + "-".join(body))
        return self._string

    def head_string(self) -> str:
        """The head element of the string form (``head_c1280``, ``det_c64_n2``, ``seg_c128_o8``)."""
        extra = {"head": "", "det": f"_n{self.head_scales}", "seg": f"_o{self.head_stride}"}
        return f"{self.head_kind}_c{self.head_channels}{extra[self.head_kind]}"

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        """Parse the compact form; a ``ValueError`` names the offending token."""
        text = text.strip()
        if text.count(":") != 1:
            raise ValueError(
                f"architecture string must look like 'r224_w1.0_d8:stem_..-<stages>-head_c..', "
                f"got {text!r}"
            )
        header, body = text.split(":")
        hv = _parse_tokens(header.split("_"), {"r": int, "w": float, "d": int}, header)
        missing = {"r", "w", "d"} - hv.keys()
        if missing:
            raise ValueError(f"header {header!r} lacks {', '.join(sorted(missing))}")
        elements = body.split("-")
        if len(elements) < 3:
            raise ValueError(f"{body!r} needs a stem, at least one stage and a head")
        stem, *stage_texts, head = elements
        stem_kind, *stem_tokens = stem.split("_")
        if stem_kind != "stem":
            raise ValueError(f"first element must be the stem ('stem_c32_s2'), got {stem!r}")
        sv = _parse_tokens(stem_tokens, {"c": int, "s": int}, stem)
        head_kind, *head_tokens = head.split("_")
        head_keys = {"head": {"c": int}, "det": {"c": int, "n": int},
                     "seg": {"c": int, "o": int}}
        if head_kind not in head_keys:
            raise ValueError(f"last element must be a head ('head_c1280', 'det_c64_n2' or "
                             f"'seg_c128_o8'), got {head!r}")
        hd = _parse_tokens(head_tokens, head_keys[head_kind], head)
        for name, values, keys in ((stem, sv, ("c", "s")), (head, hd, head_keys[head_kind])):
            for key in keys:
                if key not in values:
                    raise ValueError(f"{name!r} lacks {key}")
        stages = tuple(Stage.from_string(s) for s in stage_texts)
        return cls(
            resolution=hv["r"],
            width_mult=hv["w"],
            channel_divisor=hv["d"],
            stem_channels=sv["c"],
            stem_stride=sv["s"],
            stages=stages,
            head_channels=hd["c"],
            head_kind=head_kind,
            head_scales=hd.get("n", 1),
            head_stride=hd.get("o", 8),
        )

    def replace_stage(self, index: int, stage: Stage) -> Architecture:
        stages = list(self.stages)
        stages[index] = stage
        return replace(self, stages=tuple(stages))


def _parse_tokens(tokens: list[str], schema: dict[str, type], where: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for token in tokens:
        match = _TOKEN.match(token)
        if not match or match.group(1) not in schema:
            keys = ", ".join(f"{k}<{schema[k].__name__}>" for k in schema)
            raise ValueError(f"bad token {token!r} in {where!r}; expected one of {keys}")
        key, raw = match.groups()
        if key in values:
            raise ValueError(f"token {token!r} repeats key {key!r} in {where!r}")
        kind = schema[key]
        if kind is int and "." in raw:
            raise ValueError(f"token {token!r} in {where!r} needs an integer")
        value = kind(raw)
        if kind is float and not math.isfinite(value):
            raise ValueError(f"token {token!r} in {where!r} is not a finite number")
        values[key] = value
    return values
