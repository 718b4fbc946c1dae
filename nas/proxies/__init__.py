"""Trainability proxies: score an untrained network on one minibatch, higher = better.

Each proxy is a small module with one function ``proxy(model, images, labels, seed) -> float``
that leaves the model as it found it (:mod:`nas.proxies.base`). :data:`PROXIES` names them;
:func:`score_model` is the one way the rest of hwnas calls them: it maps a degenerate score
(``-inf``: a net through which nothing flows) to the finite :data:`FLOOR`, so scores can go into
strict JSON and sort below every real one. :class:`~nas.proxies.scorer.ProxyScorer` scores a
search config (build the model, draw the minibatch) for the zero-shot strategies.

Measured rank correlation with accuracy: ``benchmarks/proxy_validation.py`` (docs/search.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Proxy
from .grad_norm import grad_norm
from .naswot import naswot, naswot_score
from .snip import snip
from .synflow import synflow
from .zen import zen

PROXIES: dict[str, Proxy] = {"naswot": naswot, "synflow": synflow, "grad_norm": grad_norm,
                             "snip": snip, "zen": zen}
FLOOR = -1e300
"""The score of a network the proxy finds untrainable (a degenerate ``-inf`` or ``nan``)."""


def check_proxy(name: str) -> str:
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    return name


def score_model(name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                seed: int = 0) -> float:
    """Proxy ``name`` of ``model`` on ``(images, labels)``, finite (see :data:`FLOOR`)."""
    value = PROXIES[check_proxy(name)](model, images, labels, seed)
    return float(value) if math.isfinite(value) else FLOOR


__all__ = ["FLOOR", "PROXIES", "Proxy", "check_proxy", "naswot_score", "score_model"]
