"""SynFlow (Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by
iteratively conserving synaptic flow", NeurIPS 2020), used as a NAS proxy by Abdelfattah et al.
("Zero-Cost Proxies for Lightweight NAS", ICLR 2021).

Replace every weight by its absolute value, feed an all-ones input, and sum
``|w * dR/dw|`` over all weights for ``R`` = the sum of the outputs. No data, no labels: it
measures how much "signal" can flow through the architecture. In float64 (the sums span many
orders of magnitude) on a copy of the model (its weights are overwritten), with BatchNorm in
eval mode (a batch of one identical image has no batch variance). hwnas returns the *log* of
the sum, which ranks the same and stays in range; a net with zero weights has no flow: ``-inf``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .base import preserved, weighted_layers


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    with preserved(model, seed):
        net = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
        for p in net.parameters():
            p.requires_grad_(True)
            p.grad = None
        ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
        torch.sum(net(ones)).backward()
        total = sum(float((m.weight.detach() * m.weight.grad).abs().sum())
                    for m in weighted_layers(net) if m.weight.grad is not None)
    return math.log(total) if total > 0 else -math.inf
