"""Grad-norm (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021): the sum
over convolutions and linear layers of the Euclidean norm of the cross-entropy gradient of
their weights, after one training-mode pass over the minibatch. Large gradients at
initialisation mean the loss can move; a dead net has none."""

from __future__ import annotations

import torch
from torch import nn

from .base import loss_gradients, preserved


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    with preserved(model, seed):
        layers = loss_gradients(model, images, labels)
        return float(sum(float(m.weight.grad.norm()) for m in layers
                         if m.weight.grad is not None))
