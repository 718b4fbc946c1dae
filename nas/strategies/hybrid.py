"""Hybrid search: zero-shot screening seeds and feeds multi-objective regularized evolution.

Two places where :class:`~nas.strategies.evolution.Evolution` spends trials blindly take a
proxy's advice instead (the combination of multishot and zero-shot search the design card
calls for; in the spirit of Zen-NAS's and "Zero-Cost Proxies" warm-started evolution):

- the initial population: instead of ``population_size`` uniform random candidates, the first
  ``population_size`` of ``candidates`` random ones within the budgets, in
  :func:`~nas.strategies.screening.pareto_order` of (proxy, latency);
- every child: ``children`` mutations of tournament winners (population and archive) are priced
  and scored untrained; one on their (proxy, latency) non-dominated front, chosen at random, is
  trained. Children over
  a budget are dropped before training (when all are, one is asked anyway and rejected).

Everything else (aging population, NSGA-II tournament, tell) is Evolution's. Proxy evaluations
cost CPU time on the driver; ``hwnas search`` charges it to the search's compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.pareto import nondominated_ranks
from searchspaces.spaces import SearchSpace

from .base import config_key
from .evolution import Evolution, Objectives
from .screening import DEFAULT_PROXY, Cost, Score, Screen


class Hybrid(Evolution):
    """``ask()`` a config, ``tell(config, result)`` its objectives (``None`` if it failed)."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]],
                 objectives: Objectives = (("accuracy", "max"), ("latency_ms", "min")),
                 population_size: int = 20, sample_size: int = 8, proxy: str = DEFAULT_PROXY,
                 candidates: int | None = None, children: int = 8, score: Score | None = None,
                 cost: Cost | None = None, seed: int = 0, max_retries: int = 50) -> None:
        """``candidates`` defaults to ``5 * population_size``."""
        super().__init__(space, objectives, population_size, sample_size, seed, max_retries)
        candidates = 5 * population_size if candidates is None else candidates
        if candidates < 1 or children < 1:
            raise ValueError(f"candidates and children must be >= 1, got {candidates} and "
                             f"{children}")
        self.screen = Screen(self, proxy, score, cost)
        self.candidates, self.children = candidates, children
        self.seeds: list[dict[str, Any]] | None = None  # the screened initial population
        self.next = 0

    def propose(self) -> dict[str, Any]:
        if len(self.population) < self.population_size:
            if self.seeds is None:
                self.seeds = self.screen.pool(self.candidates)[:self.population_size]
            if self.next < len(self.seeds):
                self.next += 1
                return dict(self.seeds[self.next - 1])
            return self.random_config()
        members = self._parents()  # population and archive, as evolution breeds from
        fitness = self._fitness(members)
        kids = [self._mutate(self._tournament(members, fitness)) for _ in range(self.children)]
        fresh = [k for k in kids if config_key(k) not in self.seen] or kids
        rated = self.screen.rate(fresh)
        if not rated:
            return fresh[0]
        ranks = nondominated_ranks(np.array([[s, lat] for _, s, lat in rated]), (True, False))
        front = np.flatnonzero(ranks == ranks.min())
        return rated[int(front[int(self.rng.integers(len(front)))])][0]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seeds": self.seeds, "next": self.next}

    def load_state_dict(self, state: Mapping[str, Any], extra: Any = None) -> None:
        def screened(st: Mapping[str, Any]) -> None:
            seeds = st["seeds"]
            self.seeds = None if seeds is None else [dict(c) for c in seeds]
            self.next = int(st["next"])

        super().load_state_dict(state, screened)

