"""A training-free accuracy proxy for fast strategy comparisons (``training.surrogate``).

The NASWOT score (:mod:`nas.proxies.naswot`; Mellor et al., ICML 2021) of the untrained network
on one minibatch, mapped into [0, 1] so it can stand in for accuracy in the accuracy/latency
hypervolume: with ``L`` ReLU units in total, the kernel ``K`` has ``L`` on its diagonal and
``log det K <= N log L`` (Hadamard's inequality), reached when all activation patterns are
orthogonal, so the proxy is ``score / (N log L)`` clipped to [0, 1]. It ranks candidates; it is
not an accuracy, and results found with it are labelled as surrogate runs. The zero-shot
*strategies* (``zeroshot``, ``hybrid``) use the proxies differently: to choose what to train.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.proxies.naswot import naswot_score


def surrogate_accuracy(model: nn.Module, images: torch.Tensor) -> float:
    """The NASWOT score normalised to [0, 1] by its upper bound ``N log L``."""
    score, units = naswot_score(model, images)
    bound = len(images) * math.log(max(units, 2))
    if not math.isfinite(score):
        return 0.0
    return float(min(max(score / bound, 0.0), 1.0))
