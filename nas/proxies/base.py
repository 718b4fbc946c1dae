"""What every trainability proxy shares: the signature, a seeded and side-effect-free call, and
the layers whose weights the gradient proxies read.

A proxy is ``proxy(model, images, labels, seed) -> float``, higher = more trainable. It looks at
the *untrained* network on one minibatch and must leave the model exactly as it found it
(weights, BatchNorm statistics, gradients, train/eval mode), because the same model may be
trained afterwards. :func:`preserved` guarantees that for proxies that run forward/backward
passes in place; the proxies that rewrite weights (synflow's ``|w|``, Zen-score's Gaussian
re-initialisation) work on a copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import nn


class Proxy(Protocol):
    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 seed: int) -> float: ...


@contextlib.contextmanager
def preserved(model: nn.Module, seed: int) -> Iterator[nn.Module]:
    """Run a proxy on ``model`` in place and put everything back afterwards: its state dict
    (weights and BatchNorm running statistics), every parameter's ``.grad`` and
    ``requires_grad``, and its train/eval mode. Torch's global RNG is forked and seeded with
    ``seed`` (dropout in a training-mode pass), so the score is a function of the seed and the
    caller's random stream is left alone."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    requires = [p.requires_grad for p in params]
    was_training = model.training
    devices = [d.index for d in _cuda_devices(model)]
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield model
    finally:
        model.load_state_dict(state)
        for p, g, r in zip(params, grads, requires):
            p.grad = g
            p.requires_grad_(r)
        model.train(was_training)


def _cuda_devices(model: nn.Module) -> list[torch.device]:
    return sorted({p.device for p in model.parameters() if p.device.type == "cuda"},
                  key=str)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The convolutions and linear layers: the weights SNIP and grad-norm score (as in
    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def loss_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor
                   ) -> list[nn.Module]:
    """Cross-entropy of one training-mode pass, backpropagated into fresh gradients; returns the
    weighted layers (call inside :func:`preserved`)."""
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    nn.functional.cross_entropy(model(images), labels).backward()
    return weighted_layers(model)
