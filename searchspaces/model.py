"""Build a torch model from an architecture; the named baselines."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBnAct, make_block
from .genome import Architecture
from .layers import decompose


class Network(nn.Module):
    """``stem -> blocks -> head (1x1 conv) -> pool -> dropout -> classifier``."""

    def __init__(self, arch: Architecture, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__()
        specs = decompose(arch, num_classes, in_channels)
        stem, *body, head, _pool, classifier = specs
        self.arch = arch.to_string()
        self.stem = ConvBnAct(stem.cin, stem.cout, stem.kernel, stem.stride)
        self.blocks = nn.Sequential(*(make_block(spec) for spec in body))
        self.head = ConvBnAct(head.cin, head.cout, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(classifier.cin, classifier.cout)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's MobileNetV2 initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.flatten(self.pool(x))))


def build_model(arch: Architecture | str, num_classes: int = 1000, in_channels: int = 3,
                dropout: float = 0.2) -> Network:
    """A ``torch.nn.Module`` for ``arch`` (an :class:`Architecture` or its string form)."""
    if isinstance(arch, str):
        arch = Architecture.from_string(arch)
    return Network(arch, num_classes, in_channels, dropout)
