"""NAS-Bench-201's network in torch, untrained: what hwnas's proxies score on NAS-Bench-201.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search",
ICLR 2020: a 3x3 convolution stem (16 channels) and BatchNorm, then three stages of
``cells`` (5) copies of the searched cell at 16, 32 and 64 channels, a ResNet basic block with
stride 2 between stages, and BatchNorm, ReLU, global average pool and a linear classifier. The
cell has 4 nodes; node ``j`` is the sum of one operation on every earlier node (edges
``e{to}{from}``, :data:`~benchmarks.nb201_data.EDGES`) and node 3 is its output. Operations:
``none`` (zeros), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU,
convolution without bias, BatchNorm) and ``avg_pool_3x3`` (stride 1, padding not counted).

Only for scoring untrained networks (the table holds the trained accuracies): nothing here is
tuned for training speed. Written from the paper's description; the cell parameter counts agree
with :func:`~benchmarks.nb201_data.cell_params` (tested), and synflow on these networks reproduces
NASLib's published synflow scores (``benchmarks/proxy_validation.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from benchmarks.nb201_data import EDGES, OPS

INPUTS: dict[str, tuple[int, int]] = {"cifar10": (32, 10), "cifar100": (32, 100),
                                     "imagenet16": (16, 120)}
"""Per dataset (the prefix of the table's accuracy columns): image side and number of classes."""


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2,
                                              bias=False), nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def operation(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return relu_conv_bn(channels, channels, int(name[-1]))
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; known: {', '.join(OPS)}")


class Cell(nn.Module):
    def __init__(self, choices: Mapping[str, str], channels: int) -> None:
        super().__init__()
        missing = [e for e in EDGES if e not in choices]
        if missing:
            raise ValueError(f"NAS-Bench-201 cell lacks edges {', '.join(missing)}")
        self.edges = nn.ModuleDict({e: operation(choices[e], channels) for e in EDGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in (1, 2, 3):
            nodes.append(sum(self.edges[f"e{to}{src}"](nodes[src]) for src in range(to)))
        return nodes[3]


class Reduction(nn.Module):
    """The ResNet basic block between stages: two ReLU-conv-BN (the first with stride 2) plus an
    average-pooled, 1x1-projected shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = relu_conv_bn(c_in, c_out, 3, 2)
        self.b = relu_conv_bn(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


def nb201_network(choices: Mapping[str, str], num_classes: int, channels: int = 16,
                  cells: int = 5) -> nn.Sequential:
    """The network of one cell (``{edge: operation}``, as :func:`~benchmarks.nb201_data.parse_arch`
    gives), untrained, with torch's default initialisation (seed torch before calling)."""
    if num_classes < 1 or channels < 1 or cells < 1:
        raise ValueError(f"num_classes, channels and cells must be >= 1, got {num_classes}, "
                         f"{channels}, {cells}")
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(channels)]
    for stage in range(3):
        width = channels * 2 ** stage
        if stage:
            layers.append(Reduction(width // 2, width))
        layers += [Cell(choices, width) for _ in range(cells)]
    top = channels * 4
    layers += [nn.BatchNorm2d(top), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(top, num_classes)]
    return nn.Sequential(*layers)


def score_cell(proxy: str, choices: Mapping[str, str], dataset: str, batch: int = 1) -> float:
    """hwnas's ``proxy`` (:func:`nas.proxies.score_model`, finite) of the untrained network of
    ``choices`` for ``dataset`` (a key of :data:`INPUTS`), built from ``torch.manual_seed(0)`` and
    shown a zero batch of ``batch`` images: the data-free proxies read only its shape."""
    from nas.proxies import score_model

    side, classes = INPUTS[dataset]
    torch.manual_seed(0)
    model = nb201_network(choices, classes)
    return score_model(proxy, model, torch.zeros(batch, 3, side, side),
                       torch.zeros(batch, dtype=torch.long), 0)
