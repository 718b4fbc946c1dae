"""SNIP (Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity", ICLR 2019), summed over the network as a NAS proxy by Abdelfattah et al.
("Zero-Cost Proxies for Lightweight NAS", ICLR 2021): ``sum |w * dL/dw|`` over the weights of
convolutions and linear layers, for the cross-entropy ``L`` of one training-mode pass over the
minibatch: how much the loss would change if each connection were removed."""

from __future__ import annotations

import torch
from torch import nn

from .base import loss_gradients, preserved


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    with preserved(model, seed):
        layers = loss_gradients(model, images, labels)
        return float(sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in layers
                         if m.weight.grad is not None))
