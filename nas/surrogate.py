"""A training-free accuracy proxy for fast strategy comparisons (``training.surrogate``).

NASWOT (Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training",
ICML 2021): push one mini-batch of ``N`` images through the untrained network, record for every
ReLU unit whether it fired, and build the ``N x N`` kernel ``K[i, j]`` = number of units on which
images ``i`` and ``j`` agree (both on or both off). A network that already separates the inputs
into distinct activation patterns has a well-conditioned ``K``; the score is ``log |det K|``.
The paper reports a Kendall tau of about 0.6 with trained accuracy on NAS-Bench-201.

hwnas maps the score into [0, 1] so it can stand in for accuracy in the accuracy/latency
hypervolume: with ``L`` units in total, ``K`` has ``L`` on its diagonal and ``log det K <=
N log L`` (Hadamard's inequality), reached when all patterns are orthogonal, so the proxy is
``score / (N log L)`` clipped to [0, 1]. It ranks candidates; it is not an accuracy, and results
found with it are labelled as surrogate runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def naswot_score(model: nn.Module, images: torch.Tensor) -> tuple[float, int]:
    """``(log |det K|, L)`` of ``model`` on ``images`` (see the module docstring)."""
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"need a batch of at least 2 images (N, C, H, W), got shape "
                         f"{tuple(images.shape)}")
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)
    units = 0

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal kernel, units
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64)
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


def surrogate_accuracy(model: nn.Module, images: torch.Tensor) -> float:
    """The NASWOT score normalised to [0, 1] by its upper bound ``N log L``."""
    score, units = naswot_score(model, images)
    bound = len(images) * math.log(max(units, 2))
    if not math.isfinite(score):
        return 0.0
    return float(min(max(score / bound, 0.0), 1.0))
