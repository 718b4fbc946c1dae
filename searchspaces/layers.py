"""Decompose an :class:`~searchspaces.genome.Architecture` into resolved blocks and layers.

This is the single source of truth for the shapes of a candidate: ``build_model`` builds its
modules from :func:`decompose`, the memory model counts its layers, and the latency estimator
predicts one value per :class:`BlockSpec` and sums them. Layer names equal the names of the torch
modules that ``build_model`` creates (``blocks.3.conv_dw``), so per-layer reports line up.
"""

from __future__ import annotations

from dataclasses import dataclass

from .genome import Architecture, Stage

LAYER_OPS: tuple[str, ...] = ("conv", "dwconv", "add", "pool", "linear")


def conv_out(resolution: int, stride: int) -> int:
    """Output size of a 'same'-padded conv with an odd kernel: ``ceil(resolution / stride)``."""
    return (resolution + stride - 1) // stride


@dataclass(frozen=True)
class LayerSpec:
    """One execution step. ``conv``/``dwconv`` include their BatchNorm and activation (folded at
    inference); ``add`` is the residual add; ``pool`` is global average pooling."""

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
        if self.op == "linear":
            return self.cin * self.cout + self.cout
        return 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the conv/linear (the convention of torchvision's and
        fvcore's counters; BatchNorm, activations, adds and pooling count zero)."""
        if self.op in ("conv", "dwconv"):
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
    ``classifier``. ``mid`` is the expanded width (``cin`` where there is no expansion).
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

    @property
    def out_res(self) -> int:
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


def decompose(arch: Architecture, num_classes: int = 1000, in_channels: int = 3) -> list[BlockSpec]:
    """Resolve the genome into the blocks that ``build_model`` creates, in execution order."""
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
    return [stem, *body, *tail]


def layers(arch: Architecture, num_classes: int = 1000, in_channels: int = 3) -> list[LayerSpec]:
    """All execution steps of ``arch`` in order (the layers of :func:`decompose`'s blocks)."""
    blocks = decompose(arch, num_classes, in_channels)
    return [layer for block in blocks for layer in block.layers()]
