"""Zen-score (Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition",
ICCV 2021).

Re-initialise a copy of the network with Gaussian weights (N(0, 1) convolutions, BatchNorm
gamma 1 / beta 0), feed a Gaussian batch ``x`` and its perturbation ``x + alpha * eps``
(``alpha`` = 0.01), and measure how far the pre-pooling feature map moves:
``Delta = E_batch sum |f(x) - f(x + alpha eps)|``. BatchNorm (training mode, batch statistics) hides
the scale each layer adds, so it is put back: ``score = log(Delta / alpha) + sum over BN layers
of log sqrt(mean batch variance)``. It is a function of the architecture alone: the model's own
weights and the minibatch's images are not used (only their shape), so a net with zero weights
scores like a freshly initialised one. The feature map is the input of the network's global
average pool (the last ``AdaptiveAvgPool2d``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .base import preserved

ALPHA = 0.01


def _gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()


@torch.no_grad()
def zen(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ValueError("Zen-score needs a network with a global average pool")
    with preserved(model, seed):
        net = copy.deepcopy(model).cpu().train()
        generator = torch.Generator().manual_seed(seed)
        _gaussian_init(net, generator)
        features: list[torch.Tensor] = []
        variances: list[torch.Tensor] = []
        pool = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)][-1]
        handles = [pool.register_forward_hook(lambda _m, i, _o: features.append(i[0]))]
        handles += [m.register_forward_hook(
            lambda _m, i, _o: variances.append(i[0].var(dim=(0, 2, 3)).mean()))
            for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        x = torch.randn(images.shape, generator=generator)
        eps = torch.randn(images.shape, generator=generator)
        try:
            net(x)
            bn_log_scale = sum(0.5 * math.log(max(float(v), 1e-30)) for v in variances)
            net(x + ALPHA * eps)
        finally:
            for handle in handles:
                handle.remove()
        delta = float((features[0] - features[1]).abs().sum(dim=(1, 2, 3)).mean())
    return math.log(delta / ALPHA) + bn_log_scale if delta > 0 else -math.inf
