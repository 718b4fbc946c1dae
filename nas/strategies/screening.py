"""Proxy screening shared by the zero-shot strategies (``zeroshot``, ``hybrid``).

A screened strategy is given two functions by :func:`nas.search.run_search` and imports no torch:

- ``score(config, proxy) -> float``: a trainability proxy of the untrained candidate on one
  minibatch (:class:`nas.proxies.scorer.ProxyScorer`), higher = better;
- ``cost(config) -> float | None``: its predicted latency in ms, ``None`` when it breaks a budget
  (:class:`nas.trial.PredictedLatency`, the trial's own check, no training).

Both objectives of the search are then known or guessed before training: latency exactly,
accuracy through the proxy. :func:`pareto_order` sorts candidates by their non-dominated rank on
(proxy max, latency min), best proxy first within a rank, so the first ``k`` spread along the
accuracy/latency front instead of piling up at the budget, where the largest (highest-scoring)
networks sit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nas.pareto import crowding_distance, nondominated_ranks

from .base import AskTellStrategy, config_key

Score = Callable[[Mapping[str, Any], str], float]
Cost = Callable[[Mapping[str, Any]], "float | None"]
Prior = Callable[[Mapping[str, Any]], "tuple[float, float] | None"]
"""``prior(config) -> (size, latency_ms)``, ``None`` when the config breaks a budget: what
:class:`~nas.strategies.evolution.Evolution` picks its first trials by
(:class:`nas.trial.SizeAndLatency`: parameters and predicted latency, no training, no torch)."""
DEFAULT_PROXY = "synflow"
"""The best proxy we implement on NAS-Bench-201 (Kendall tau 0.54-0.57) and the only one not
negative on mbv2-small, where it is no better than chance (``benchmarks/proxy_validation.py``,
docs/search.md)."""


def pareto_order(scores: Sequence[float], latencies: Sequence[float]) -> list[int]:
    """Indices by non-dominated rank on (score max, latency min), then score, then index."""
    if not scores:
        return []
    ranks = nondominated_ranks(np.column_stack([scores, latencies]), (True, False))
    return sorted(range(len(scores)), key=lambda i: (ranks[i], -scores[i], i))


def spread_order(values: Sequence[Sequence[float]], maximize: Sequence[bool],
                 count: int) -> list[int]:
    """Indices of ``count`` points (fewer if there are fewer), best fronts first: every point of
    non-dominated rank 0 by crowding distance (ends first, then the most isolated), then rank
    1, and so on; ties by index. The first ``count`` spread along the front instead of
    bunching where most points are."""
    if not len(values) or count < 1:
        return []
    points = np.asarray(values, dtype=np.float64)
    ranks = nondominated_ranks(points, maximize)
    order: list[int] = []
    for rank in np.unique(ranks):
        idx = np.flatnonzero(ranks == rank)
        crowd = crowding_distance(points[idx])
        order += [int(i) for i in idx[np.argsort(-crowd, kind="stable")]]
        if len(order) >= count:
            break
    return order[:count]


class Screen:
    """The screening half of a strategy: draws candidates within the budgets, scores them and
    orders them (the strategy owns the generator and the ``seen`` set)."""

    def __init__(self, strategy: AskTellStrategy, proxy: str, score: Score | None,
                 cost: Cost | None) -> None:
        name = type(strategy).__name__
        if score is None or cost is None:
            raise ValueError(f"{name} needs score and cost functions (hwnas search passes "
                             f"them; see nas.strategies.screening)")
        if not isinstance(proxy, str) or not proxy:
            raise ValueError(f"{name}: proxy must be a proxy name, got {proxy!r}")
        self.strategy, self.proxy, self.score, self.cost = strategy, proxy, score, cost
        self.scored = 0

    def rate(self, configs: Sequence[Mapping[str, Any]]) -> list[tuple[dict, float, float]]:
        """``(config, score, latency)`` of those within the budgets."""
        out = []
        for config in configs:
            latency = self.cost(config)
            if latency is not None:
                out.append((dict(config), float(self.score(config, self.proxy)),
                            float(latency)))
                self.scored += 1
        return out

    def pool(self, size: int) -> list[dict[str, Any]]:
        """Up to ``size`` distinct unseen random candidates within the budgets, in
        :func:`pareto_order` (at most ``20 * size`` draws)."""
        drawn: dict[str, dict[str, Any]] = {}
        fitting: list[tuple[dict, float, float]] = []
        for _ in range(20 * size):
            if len(fitting) >= size:
                break
            config = self.strategy.random_config()
            key = config_key(config)
            if key in drawn or key in self.strategy.seen:
                continue
            drawn[key] = config
            fitting += self.rate([config])
        order = pareto_order([s for _, s, _ in fitting], [lat for _, _, lat in fitting])
        return [fitting[i][0] for i in order]
