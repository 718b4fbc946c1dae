"""NASWOT (Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training",
ICML 2021).

Push the minibatch of ``N`` images through the untrained network, record for every ReLU unit
whether it fired, and build the ``N x N`` kernel ``K[i, j]`` = number of units on which images
``i`` and ``j`` agree (both on or both off). A network that already separates the inputs into
distinct activation patterns has a well-conditioned ``K``; the score is ``log |det K|``. A net
whose units never fire (all patterns equal) has a singular ``K``: ``-inf``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import preserved


@torch.no_grad()
def naswot_score(model: nn.Module, images: torch.Tensor) -> tuple[float, int]:
    """``(log |det K|, L)`` of ``model`` on ``images``, ``L`` the number of units."""
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"need a batch of at least 2 images (N, C, H, W), got shape "
                         f"{tuple(images.shape)}")
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)
    units = 0

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal kernel, units
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64).cpu()
        kernel += codes @ codes.T + (1 - codes) @ (1 - codes).T
        units += codes.shape[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not handles:
        raise ValueError("the model has no ReLU units to score")
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    _sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet), units


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """``log |det K|`` (labels unused: NASWOT needs no targets)."""
    with preserved(model, seed):
        return naswot_score(model, images)[0]
