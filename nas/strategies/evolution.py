"""Multi-objective regularized (aging) evolution.

Regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019) keeps a FIFO population: each new candidate is a mutation of a tournament
winner, and the *oldest* member leaves, which favours architectures that stay good under
retraining. Here the tournament is multi-objective, NSGA-II style (Deb et al., 2002): the winner
of a random sample of the population has the lowest non-dominated rank, ties broken by the
largest crowding distance.

It searches either a hwnas :class:`~searchspaces.spaces.SearchSpace` (genome-aware mutation:
one stage's block, kernel, expansion or repeats, one channel step, the width multiplier or the
resolution, through ``space.mutate``) or a plain categorical space ``{name: choices}`` (one
dimension changed to another value), so the same searcher runs on tabular benchmarks.

Ask/tell, no Ray: an adapter turns it into a Ray Tune ``Searcher``. Its whole state is
JSON-serializable (:meth:`state_dict`), so a resumed search keeps its population.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.pareto import crowding_distance, nondominated_ranks
from searchspaces.spaces import SearchSpace

from .base import AskTellStrategy

Objectives = Sequence[tuple[str, str]]


class Evolution(AskTellStrategy):
    """``ask()`` a config, ``tell(config, result)`` its objectives (``None`` if it failed)."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]],
                 objectives: Objectives = (("accuracy", "max"), ("latency_ms", "min")),
                 population_size: int = 20, sample_size: int = 8, seed: int = 0,
                 max_retries: int = 50) -> None:
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be in [1, population_size], got {sample_size}")
        for name, mode in objectives:
            if mode not in ("min", "max"):
                raise ValueError(f"objective {name!r}: mode must be 'min' or 'max', got {mode!r}")
        super().__init__(space, seed, max_retries)
        self.objectives = [(n, m) for n, m in objectives]
        self.population_size, self.sample_size = population_size, sample_size
        self.population: deque[tuple[dict[str, Any], list[float]]] = deque(
            maxlen=population_size)

    # -- ask / tell ---------------------------------------------------------------------------
    def propose(self) -> dict[str, Any]:
        if len(self.population) < self.population_size:
            return self.random_config()
        return self._mutate(self._tournament())

    def tell(self, config: Mapping[str, Any], result: Mapping[str, float] | None) -> None:
        """Record a finished candidate; ``None`` or a missing/NaN objective leaves it out of
        the population (it still counts as seen)."""
        super().tell(config, result)
        if result is None:
            return
        values = [result.get(name) for name, _ in self.objectives]
        if any(v is None or not np.isfinite(v) for v in values):
            return
        self.population.append((dict(config), [float(v) for v in values]))

    # -- operators ----------------------------------------------------------------------------
    def _tournament(self) -> dict[str, Any]:
        members = list(self.population)
        values = np.array([v for _, v in members])
        maximize = [mode == "max" for _, mode in self.objectives]
        ranks = nondominated_ranks(values, maximize)
        crowd = np.zeros(len(members))
        for r in np.unique(ranks):
            idx = np.flatnonzero(ranks == r)
            crowd[idx] = crowding_distance(values[idx])
        sample = self.rng.choice(len(members), size=self.sample_size, replace=False)
        best = min(sample, key=lambda i: (ranks[i], -crowd[i], i))
        return members[int(best)][0]

    def _mutate(self, parent: Mapping[str, Any]) -> dict[str, Any]:
        if self.space is not None:
            arch = self.space.from_choices(dict(parent))
            return self.space.to_choices(self.space.mutate(arch, self.rng))
        variable = [k for k, v in self.dimensions.items() if len(v) > 1]
        if not variable:
            return dict(parent)
        key = variable[int(self.rng.integers(len(variable)))]
        options = [v for v in self.dimensions[key] if v != parent[key]]
        child = dict(parent)
        child[key] = options[int(self.rng.integers(len(options)))]
        return child

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this left off (JSON-serializable)."""
        return {**super().state_dict(), "population": [[c, v] for c, v in self.population]}

    def load_state_dict(self, state: Mapping[str, Any], extra: Any = None) -> None:
        def population(st: Mapping[str, Any]) -> None:
            self.population = deque(((dict(c), list(v)) for c, v in st["population"]),
                                    maxlen=self.population_size)
            if extra is not None:  # a subclass's own state
                extra(st)

        super().load_state_dict(state, population)
