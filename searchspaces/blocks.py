"""Torch blocks of the search space, named as in timm's ``_efficientnet_blocks.py``.

- :class:`IBN` — MobileNetV2's inverted bottleneck (Sandler et al., 2018): 1x1 expand ->
  KxK depthwise -> 1x1 linear projection; expansion 1 skips the expand conv.
- :class:`FusedIBN` — the fused inverted bottleneck of EfficientNet-EdgeTPU (Gupta & Akin, 2019;
  timm's ``EdgeResidual``): one KxK standard conv expands, a 1x1 conv projects. More MACs, but one
  dense conv maps onto an accelerator's array far better than a depthwise one.
- :class:`ConvBlock` — a plain KxK conv, what an expert puts in place of a depthwise stage.

All use BatchNorm and ReLU6 (MobileNetV2's defaults) and add the input back when the block keeps
its shape (stride 1 and ``cin == cout``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .layers import HEAD_BLOCK_KINDS, BlockSpec

ActFactory = Callable[[], nn.Module]


def _act() -> nn.Module:
    return nn.ReLU6(inplace=True)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)


class ConvBnAct(nn.Module):
    """Conv -> BatchNorm -> activation; used for the stem and the head."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                 act: ActFactory = _act) -> None:
        super().__init__()
        self.conv = _conv(cin, cout, kernel, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn1(self.conv(x)))


class IBN(nn.Module):
    """Inverted bottleneck: ``conv_pw -> bn1 -> act1 -> conv_dw -> bn2 -> act2 -> conv_pwl ->
    bn3``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int,
                 act: ActFactory = _act) -> None:
        super().__init__()
        mid = int(round(cin * expansion))
        self.has_skip = stride == 1 and cin == cout
        if expansion != 1:
            self.conv_pw = _conv(cin, mid, 1)
            self.bn1 = nn.BatchNorm2d(mid)
            self.act1 = act()
        else:
            self.conv_pw = self.bn1 = self.act1 = nn.Identity()
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = act()
        self.conv_pwl = _conv(mid, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.has_skip else y


class FusedIBN(nn.Module):
    """Fused inverted bottleneck: ``conv_exp (KxK) -> bn1 -> act -> conv_pwl (1x1) -> bn2``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int,
                 act: ActFactory = _act) -> None:
        super().__init__()
        mid = int(round(cin * expansion))
        self.has_skip = stride == 1 and cin == cout
        self.conv_exp = _conv(cin, mid, kernel, stride)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = act()
        self.conv_pwl = _conv(mid, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pwl(self.act1(self.bn1(self.conv_exp(x)))))
        return x + y if self.has_skip else y


class ConvBlock(nn.Module):
    """Plain ``conv (KxK) -> bn1 -> act``, with the skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: ActFactory = _act
                 ) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv = _conv(cin, cout, kernel, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = act()

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv(x)))
        return x + y if self.has_skip else y


def make_block(spec: BlockSpec, act: ActFactory = _act) -> nn.Module:
    """The torch module of one stage block described by ``spec``."""
    if spec.kind == "ibn":
        return IBN(spec.cin, spec.cout, spec.kernel, spec.stride, spec.expansion, act)
    if spec.kind == "fibn":
        return FusedIBN(spec.cin, spec.cout, spec.kernel, spec.stride, spec.expansion, act)
    if spec.kind == "conv":
        return ConvBlock(spec.cin, spec.cout, spec.kernel, spec.stride, act)
    raise ValueError(f"no block module for kind {spec.kind!r}")


class DetHead(nn.Module):
    """CenterNet's per-scale head: ``conv (3x3) -> bn1 -> act -> pred (1x1, bias)``; ``pred``
    gives ``num_classes`` heat-map logits and four box channels per cell."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int = 3, act: ActFactory = _act
                 ) -> None:
        super().__init__()
        self.conv = _conv(cin, mid, kernel)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = act()
        self.pred = nn.Conv2d(mid, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pred(self.act(self.bn1(self.conv(x))))


class LRASPP(nn.Module):
    """The high-level branch of LR-ASPP (torchvision's ``LRASPPHead``): ``cbr (1x1) -> bn1 ->
    act``, gated by ``sigmoid(scale(pool(x)))``, classified by ``pred`` (1x1, bias) and resized
    bilinearly to ``size`` (the classifier comes before the resize: see
    :meth:`~searchspaces.layers.BlockSpec.layers`)."""

    def __init__(self, cin: int, mid: int, cout: int, size: int, act: ActFactory = _act) -> None:
        super().__init__()
        self.size = size
        self.cbr = _conv(cin, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = act()
        self.scale = nn.Conv2d(cin, mid, 1)
        self.pred = nn.Conv2d(mid, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.scale(nn.functional.adaptive_avg_pool2d(x, 1)))
        y = self.pred(self.act(self.bn1(self.cbr(x))) * gate)
        return nn.functional.interpolate(y, size=(self.size, self.size), mode="bilinear",
                                         align_corners=False)


class SegSkip(nn.Module):
    """LR-ASPP's low-level branch: ``pred`` (1x1, bias) on the features at the output stride,
    plus the high branch, resized bilinearly to the input resolution ``size``."""

    def __init__(self, cin: int, cout: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.pred = nn.Conv2d(cin, cout, 1)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        return nn.functional.interpolate(self.pred(low) + high, size=(self.size, self.size),
                                         mode="bilinear", align_corners=False)


class _SegSkipAlone(nn.Module):
    """:class:`SegSkip` with its second operand held as a buffer, for timing it on its own."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.skip = SegSkip(spec.cin, spec.cout, spec.out_res)
        self.register_buffer("high", torch.zeros(1, spec.cout, spec.in_res, spec.in_res))

    def forward(self, low: Tensor) -> Tensor:
        return self.skip(low, self.high)


def make_head_block(spec: BlockSpec, act: ActFactory = _act) -> nn.Module:
    """The torch module of a task head's block (``dethead``, ``lraspp``, ``segskip``)."""
    if spec.kind == "dethead":
        return DetHead(spec.cin, spec.mid, spec.cout, spec.kernel, act)
    if spec.kind == "lraspp":
        return LRASPP(spec.cin, spec.mid, spec.cout, spec.out_res, act)
    if spec.kind == "segskip":
        return SegSkip(spec.cin, spec.cout, spec.out_res)
    raise ValueError(f"no head module for block kind {spec.kind!r}")


class PoolFlatten(nn.Module):
    """Global average pooling to a ``(N, C)`` vector."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def make_module(spec: BlockSpec, act: ActFactory = _act) -> nn.Module:
    """A standalone module for *any* block of :func:`~searchspaces.layers.decompose` (stem, stage
    blocks, head, pool, classifier, a task head's blocks), as a back end measures it on its own
    (a ``segskip`` block adds a zero buffer in place of the high branch it sums). Input shape:
    ``(N, cin, in_res, in_res)``, except the classifier which takes ``(N, cin)``."""
    if spec.kind in ("stem", "head"):
        return ConvBnAct(spec.cin, spec.cout, spec.kernel, spec.stride, act)
    if spec.kind == "pool":
        return PoolFlatten()
    if spec.kind == "classifier":
        return nn.Linear(spec.cin, spec.cout)
    if spec.kind == "segskip":
        return _SegSkipAlone(spec)
    if spec.kind in HEAD_BLOCK_KINDS:
        return make_head_block(spec, act)
    return make_block(spec, act)


def block_input_shape(spec: BlockSpec, batch: int = 1) -> tuple[int, ...]:
    """The input shape that :func:`make_module` 's module takes."""
    if spec.kind == "classifier":
        return (batch, spec.cin)
    return (batch, spec.cin, spec.in_res, spec.in_res)
