"""Decompose an :class:`~searchspaces.genome.Architecture` into resolved blocks and layers.

This is the single source of truth for the shapes of a candidate: ``build_model`` builds its
modules from :func:`decompose`, the memory model counts its layers, and the latency estimator
predicts one value per :class:`BlockSpec` and sums them. Layer names equal the names of the torch
modules that ``build_model`` creates (``blocks.3.conv_dw``), so per-layer reports line up.
"""

from __future__ import annotations

from dataclasses import dataclass

from .genome import Architecture, Stage

LAYER_OPS: tuple[str, ...] = ("conv", "dwconv", "add", "pool", "linear", "pconv", "mul",
                              "resize")
HEAD_BLOCKS: dict[str, tuple[str, ...]] = {"det": ("dethead",), "seg": ("lraspp", "segskip")}
"""The block kinds each task head resolves into (:func:`head_blocks`)."""
HEAD_BLOCK_KINDS: tuple[str, ...] = tuple(k for kinds in HEAD_BLOCKS.values() for k in kinds)
"""The blocks of the detection and segmentation heads."""


def conv_out(resolution: int, stride: int) -> int:
    """Output size of a 'same'-padded conv with an odd kernel: ``ceil(resolution / stride)``."""
    return (resolution + stride - 1) // stride


@dataclass(frozen=True)
class LayerSpec:
    """One execution step. ``conv``/``dwconv`` include their BatchNorm and activation (folded at
    inference); ``pconv`` is a prediction conv with a bias and no BatchNorm (an activation such
    as the LR-ASPP gate's sigmoid is folded in); ``add`` is the residual add, ``mul`` an
    elementwise product (its second operand, ``cin`` values, is broadcast); ``pool`` is global
    average pooling; ``resize`` is bilinear resampling from ``in_res`` to ``out_res``."""

    name: str
    op: str
    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int
    in_res: int
    out_res: int

    @property
    def params(self) -> int:
        """Weights + biases. A conv has no bias; its BatchNorm adds 2 * cout (gamma, beta)."""
        if self.op in ("conv", "dwconv"):
            return self.cout * (self.cin // self.groups) * self.kernel**2 + 2 * self.cout
        if self.op == "pconv":
            return self.cout * (self.cin // self.groups) * self.kernel**2 + self.cout
        if self.op == "linear":
            return self.cin * self.cout + self.cout
        return 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the conv/linear (the convention of torchvision's and
        fvcore's counters; BatchNorm, activations, adds and pooling count zero)."""
        if self.op in ("conv", "dwconv", "pconv"):
            return self.out_res**2 * self.cout * (self.cin // self.groups) * self.kernel**2
        if self.op == "linear":
            return self.cin * self.cout
        return 0

    @property
    def input_elements(self) -> int:
        return self.cin * self.in_res**2

    @property
    def output_elements(self) -> int:
        return self.cout * self.out_res**2


@dataclass(frozen=True)
class BlockSpec:
    """One block with resolved (width-multiplied) channels and its input resolution.

    ``kind`` is one of ``stem``, ``ibn``, ``fibn``, ``conv``, ``head`` (1x1 conv), ``pool``,
    ``classifier``, or a task head's block (:data:`HEAD_BLOCK_KINDS`). ``mid`` is the expanded
    width (``cin`` where there is no expansion). ``source`` is the index in :func:`decompose`'s
    list of the block whose output this one reads (-1: the block before it); ``resize_to``, when
    positive, is the resolution the block resizes its output to.
    """

    name: str
    kind: str
    cin: int
    cout: int
    mid: int
    kernel: int
    stride: int
    in_res: int
    expansion: int = 1
    source: int = -1
    resize_to: int = 0

    @property
    def out_res(self) -> int:
        if self.resize_to:
            return self.resize_to
        return 1 if self.kind in ("pool", "classifier") else conv_out(self.in_res, self.stride)

    @property
    def residual(self) -> bool:
        """MobileNetV2's rule: a skip connection when the block keeps the shape."""
        return self.kind in ("ibn", "fibn", "conv") and self.stride == 1 and self.cin == self.cout

    def layers(self) -> tuple[LayerSpec, ...]:
        n, r, o = self.name, self.in_res, self.out_res
        if self.kind in ("stem", "head"):
            return (LayerSpec(f"{n}.conv", "conv", self.cin, self.cout, self.kernel,
                              self.stride, 1, r, o),)
        if self.kind == "pool":
            return (LayerSpec(n, "pool", self.cin, self.cout, r, r, 1, r, 1),)
        if self.kind == "classifier":
            return (LayerSpec(n, "linear", self.cin, self.cout, 1, 1, 1, 1, 1),)
        if self.kind in HEAD_BLOCK_KINDS:
            return self._head_layers()
        out: list[LayerSpec] = []
        if self.kind == "ibn":
            if self.expansion != 1:
                out.append(LayerSpec(f"{n}.conv_pw", "conv", self.cin, self.mid, 1, 1, 1, r, r))
            out.append(LayerSpec(f"{n}.conv_dw", "dwconv", self.mid, self.mid, self.kernel,
                                 self.stride, self.mid, r, o))
            out.append(LayerSpec(f"{n}.conv_pwl", "conv", self.mid, self.cout, 1, 1, 1, o, o))
        elif self.kind == "fibn":
            out.append(LayerSpec(f"{n}.conv_exp", "conv", self.cin, self.mid, self.kernel,
                                 self.stride, 1, r, o))
            out.append(LayerSpec(f"{n}.conv_pwl", "conv", self.mid, self.cout, 1, 1, 1, o, o))
        elif self.kind == "conv":
            out.append(LayerSpec(f"{n}.conv", "conv", self.cin, self.cout, self.kernel,
                                 self.stride, 1, r, o))
        else:
            raise ValueError(f"unknown block kind {self.kind!r}")
        if self.residual:
            out.append(LayerSpec(f"{n}.add", "add", self.cout, self.cout, 1, 1, 1, o, o))
        return tuple(out)

    def _head_layers(self) -> tuple[LayerSpec, ...]:
        n, r, o, c, m = self.name, self.in_res, self.out_res, self.cout, self.mid
        if self.kind == "dethead":  # CenterNet's head: 3x3 conv, then a 1x1 prediction conv
            return (LayerSpec(f"{n}.conv", "conv", self.cin, m, self.kernel, 1, 1, r, r),
                    LayerSpec(f"{n}.pred", "pconv", m, c, 1, 1, 1, r, r))
        if self.kind == "lraspp":
            # torchvision's LRASPPHead, with the 1x1 classifier before the upsampling: both are
            # linear per pixel and bilinear weights sum to one, so the order does not change the
            # output, and the resize moves num_classes channels instead of ``mid``
            return (LayerSpec(f"{n}.cbr", "conv", self.cin, m, 1, 1, 1, r, r),
                    LayerSpec(f"{n}.pool", "pool", self.cin, self.cin, r, r, 1, r, 1),
                    LayerSpec(f"{n}.scale", "pconv", self.cin, m, 1, 1, 1, 1, 1),
                    LayerSpec(f"{n}.mul", "mul", m, m, 1, 1, 1, r, r),
                    LayerSpec(f"{n}.pred", "pconv", m, c, 1, 1, 1, r, r),
                    LayerSpec(f"{n}.resize", "resize", c, c, 1, 1, 1, r, o))
        if self.kind == "segskip":  # the low-level classifier, the sum, the final upsampling
            return (LayerSpec(f"{n}.pred", "pconv", self.cin, c, 1, 1, 1, r, r),
                    LayerSpec(f"{n}.add", "add", c, c, 1, 1, 1, r, r),
                    LayerSpec(f"{n}.resize", "resize", c, c, 1, 1, 1, r, o))
        raise ValueError(f"unknown head block kind {self.kind!r}")

    def held_elements(self) -> tuple[int, ...]:
        """Per layer of :meth:`layers`, the elements of this block's own tensors kept alive
        besides the layer's input and output: the block input kept for a residual add; in an
        LR-ASPP block the 1x1 branch's output while the gate is computed, and the gate's vector
        during the product. (:mod:`estimators.memory` adds the tensors other blocks keep.)"""
        layers = self.layers()
        if self.kind == "lraspp":
            branch = self.mid * self.in_res**2
            return (0, branch, branch, self.mid, 0, 0)
        held = self.cin * self.in_res**2 if self.residual else 0
        return (0,) + (held,) * (len(layers) - 1)


def stage_blocks(stage: Stage, cin: int, cout: int, res: int, first_index: int = 0
                 ) -> list[BlockSpec]:
    """The blocks of one stage with resolved channels: the first with the stage's stride, the
    repeats at stride 1 (all repeats after the first are identical)."""
    out = []
    for rep in range(stage.repeats):
        stride = stage.stride if rep == 0 else 1
        mid = cin if stage.block == "conv" else int(round(cin * stage.expansion))
        spec = BlockSpec(f"blocks.{first_index + rep}", stage.block, cin, cout, mid,
                         stage.kernel, stride, res, stage.expansion)
        out.append(spec)
        res, cin = spec.out_res, cout
    return out


def end_blocks(arch: Architecture, cin: int, res: int, num_classes: int, in_channels: int
               ) -> tuple[BlockSpec, list[BlockSpec]]:
    """The stem, and the head, pool and classifier after a last stage of ``cin`` channels at
    resolution ``res``."""
    stem = BlockSpec("stem", "stem", in_channels, arch.scaled_stem, in_channels, 3,
                     arch.stem_stride, arch.resolution)
    head = arch.scaled_head
    return stem, [BlockSpec("head", "head", cin, head, cin, 1, 1, res),
                  BlockSpec("pool", "pool", head, head, head, res, res, res),
                  BlockSpec("classifier", "classifier", head, num_classes, head, 1, 1, 1)]


def head_blocks(arch: Architecture, trunk: list[BlockSpec], num_classes: int) -> list[BlockSpec]:
    """The blocks of a detection or segmentation head after ``trunk`` (the stem and the stage
    blocks, in order); they read the trunk's feature maps by index (``source``).

    - ``det`` (CenterNet, Zhou et al. 2019, "Objects as Points"): one ``dethead`` per scale,
      coarsest first: on the last feature map and, with two scales, on the last block at the
      next larger resolution. Each predicts ``num_classes`` heat maps and four box channels.
    - ``seg`` (LR-ASPP, Howard et al. 2019, "Searching for MobileNetV3"): ``lraspp`` on the last
      feature map, then ``segskip`` on the last block at output stride ``head_stride``.
    """
    last = len(trunk) - 1
    head = arch.scaled_head
    if arch.head_kind == "det":
        taps = [last]
        if arch.head_scales == 2:
            larger = [i for i, b in enumerate(trunk) if b.out_res > trunk[last].out_res]
            if not larger:
                raise ValueError(f"a two-scale detection head needs a stage of stride 2; "
                                 f"{arch.to_string()} keeps one resolution throughout")
            taps.append(larger[-1])
        return [BlockSpec(f"det.{i}", "dethead", trunk[t].cout, num_classes + 4, head, 3, 1,
                          trunk[t].out_res, source=t) for i, t in enumerate(taps)]
    strides, stride = [], 1
    for block in trunk:
        stride *= block.stride
        strides.append(stride)
    low = [i for i, s in enumerate(strides) if s == arch.head_stride]
    if not low:
        raise ValueError(f"segmentation head output stride {arch.head_stride} is not a stride of "
                         f"{arch.to_string()} (it has {sorted(set(strides))})")
    tap = trunk[low[-1]]
    return [BlockSpec("seg.high", "lraspp", trunk[last].cout, num_classes, head, 1, 1,
                      trunk[last].out_res, source=last, resize_to=tap.out_res),
            BlockSpec("seg.low", "segskip", tap.cout, num_classes, tap.cout, 1, 1, tap.out_res,
                      source=low[-1], resize_to=arch.resolution)]


def decompose(arch: Architecture, num_classes: int = 1000, in_channels: int = 3) -> list[BlockSpec]:
    """Resolve the genome into the blocks that ``build_model`` creates, in execution order:
    the stem, the stage blocks, then the task head (``head``, ``pool`` and ``classifier`` for a
    classifier; :func:`head_blocks` for detection and segmentation)."""
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, "
                         f"{in_channels}")
    res = conv_out(arch.resolution, arch.stem_stride)
    cin = arch.scaled_stem
    body: list[BlockSpec] = []
    for stage in arch.stages:
        cout = arch.scaled(stage.channels)
        body += stage_blocks(stage, cin, cout, res, len(body))
        res, cin = body[-1].out_res, cout
    stem, tail = end_blocks(arch, cin, res, num_classes, in_channels)
    if arch.head_kind != "head":
        tail = head_blocks(arch, [stem, *body], num_classes)
    return [stem, *body, *tail]


def layers(arch: Architecture, num_classes: int = 1000, in_channels: int = 3) -> list[LayerSpec]:
    """All execution steps of ``arch`` in order (the layers of :func:`decompose`'s blocks)."""
    blocks = decompose(arch, num_classes, in_channels)
    return [layer for block in blocks for layer in block.layers()]
