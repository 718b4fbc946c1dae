"""Build a torch model from an architecture; the named baselines."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBnAct, PoolFlatten, make_block, make_head_block
from .genome import Architecture
from .layers import decompose

HEATMAP_PRIOR_BIAS = -2.19
"""CenterNet's initial heat-map bias: ``sigmoid(-2.19) = 0.1``, so that the focal loss starts
from a low, stable prior instead of every cell predicting an object."""
PRED_STD = 0.01
"""The std of a task head's prediction conv weights at initialisation (the classifier's linear
layer starts so too). CenterNet starts its output convs near zero. At the backbone's Kaiming
scale a detector's first heat-map logits are -0.6 +- 3.0 instead of -2.18 +- 0.05 and a 3-epoch
trial learns nothing (``benchmarks/detection_quickstart.py --kaiming-pred``: map50 0.001 against
0.219); a segmenter's first loss is 3.2 for 4 classes (ln 4 = 1.4) and six epochs reach mIoU
0.29 instead of 0.42 (``benchmarks/segmentation_quickstart.py --kaiming-pred``)."""


class Network(nn.Module):
    """``stem -> blocks`` and the task head :func:`~searchspaces.layers.decompose` names:

    - ``head`` (classifier): ``head (1x1 conv) -> pool -> dropout -> classifier``; returns
      logits ``(N, num_classes)``;
    - ``det``: one :class:`~searchspaces.blocks.DetHead` per scale in ``det``; returns a tuple
      of ``(N, num_classes + 4, H_i, W_i)``, coarsest first (heat-map logits, then four box
      channels);
    - ``seg``: ``seg.high`` (LR-ASPP) and ``seg.low``; returns logits
      ``(N, num_classes, R, R)`` at the input resolution ``R``.
    """

    def __init__(self, arch: Architecture, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__()
        specs = decompose(arch, num_classes, in_channels)
        stem, *rest = specs
        body = rest[:arch.num_blocks]
        tail = rest[arch.num_blocks:]
        self.arch = arch.to_string()
        self.head_kind = arch.head_kind
        self.num_classes = num_classes
        self.stem = ConvBnAct(stem.cin, stem.cout, stem.kernel, stem.stride)
        self.blocks = nn.Sequential(*(make_block(spec) for spec in body))
        self.taps = tuple(spec.source for spec in tail)
        if arch.head_kind == "head":
            head, _pool, classifier = tail
            self.head = ConvBnAct(head.cin, head.cout, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten(1)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(classifier.cin, classifier.cout)
        elif arch.head_kind == "det":
            self.det = nn.ModuleList(make_head_block(spec) for spec in tail)
        else:
            self.seg = nn.ModuleDict({"high": make_head_block(tail[0]),
                                      "low": make_head_block(tail[1])})
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's MobileNetV2 initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        for conv in head_predictions(self):
            nn.init.normal_(conv.weight, 0.0, PRED_STD)
        for head in getattr(self, "det", ()):
            nn.init.constant_(head.pred.bias[:self.num_classes], HEATMAP_PRIOR_BIAS)

    def block_modules(self) -> list[nn.Module]:
        """The modules of a classifier's :func:`~searchspaces.layers.decompose` blocks, in that
        order (stem, stage blocks, head, pool, classifier): run one after another on the
        input, each on the previous one's output, they compute :meth:`forward` (the eval-time
        no-op dropout left out), so a back end can time each block inside the network.
        The modules are this network's own (shared weights), except the parameterless pool.
        One-line ``ValueError`` for a detection or segmentation network, whose head blocks
        read several earlier outputs."""
        if self.head_kind != "head":
            raise ValueError(f"block_modules needs a classifier network; this one has a "
                             f"{self.head_kind!r} head, whose blocks are not a chain")
        return [self.stem, *self.blocks, self.head, PoolFlatten(), self.classifier]

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        if self.head_kind == "head":
            x = self.head(self.blocks(self.stem(x)))
            return self.classifier(self.dropout(self.flatten(self.pool(x))))
        features = [self.stem(x)]  # decompose's indices: 0 the stem, i the i-th stage block
        for block in self.blocks:
            features.append(block(features[-1]))
        if self.head_kind == "det":
            return tuple(head(features[tap]) for head, tap in zip(self.det, self.taps))
        high = self.seg["high"](features[self.taps[0]])
        return self.seg["low"](features[self.taps[1]], high)


def head_predictions(model: Network) -> list[nn.Conv2d]:
    """The 1x1 prediction convs of a detection or segmentation head (none for a classifier)."""
    branches = list(getattr(model, "det", ())) + list(getattr(model, "seg", {}).values())
    return [branch.pred for branch in branches]


def build_model(arch: Architecture | str, num_classes: int = 1000, in_channels: int = 3,
                dropout: float = 0.2) -> Network:
    """A ``torch.nn.Module`` for ``arch`` (an :class:`Architecture` or its string form)."""
    if isinstance(arch, str):
        arch = Architecture.from_string(arch)
    return Network(arch, num_classes, in_channels, dropout)
