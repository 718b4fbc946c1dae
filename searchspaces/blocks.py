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

from torch import Tensor, nn

from .layers import BlockSpec

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


class PoolFlatten(nn.Module):
    """Global average pooling to a ``(N, C)`` vector."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def make_module(spec: BlockSpec, act: ActFactory = _act) -> nn.Module:
    """A standalone module for *any* block of :func:`~searchspaces.layers.decompose` (stem, stage
    blocks, head, pool, classifier), as a back end measures it on its own. Input shape:
    ``(N, cin, in_res, in_res)``, except the classifier which takes ``(N, cin)``."""
    if spec.kind in ("stem", "head"):
        return ConvBnAct(spec.cin, spec.cout, spec.kernel, spec.stride, act)
    if spec.kind == "pool":
        return PoolFlatten()
    if spec.kind == "classifier":
        return nn.Linear(spec.cin, spec.cout)
    return make_block(spec, act)


def block_input_shape(spec: BlockSpec, batch: int = 1) -> tuple[int, ...]:
    """The input shape that :func:`make_module` 's module takes."""
    if spec.kind == "classifier":
        return (batch, spec.cin)
    return (batch, spec.cin, spec.in_res, spec.in_res)
