"""Zero-shot search: rank many untrained candidates by a trainability proxy, train the best.

Draw ``candidates`` random architectures within the budgets (priced by the latency estimator
and the memory model, no training), score each untrained one with ``proxy`` on one minibatch
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021; Mellor et al., NASWOT,
ICML 2021), and ask them in :func:`~nas.strategies.screening.pareto_order` of (proxy, latency):
the search's ``trials`` budget trains the top ``k``. Results told back are not used: the
ranking is fixed once drawn. When the ranked list runs out, it asks uniform random candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchspaces.spaces import SearchSpace

from .base import AskTellStrategy
from .screening import DEFAULT_PROXY, Cost, Score, Screen


class ZeroShot(AskTellStrategy):
    """Same ask/tell interface as :class:`~nas.strategies.evolution.Evolution`."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]],
                 objectives: Sequence[tuple[str, str]] = (), proxy: str = DEFAULT_PROXY,
                 candidates: int = 200, score: Score | None = None, cost: Cost | None = None,
                 seed: int = 0, max_retries: int = 50) -> None:
        """``objectives`` is accepted for a uniform interface; the ranking is the proxy's."""
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        super().__init__(space, seed, max_retries)
        self.screen = Screen(self, proxy, score, cost)
        self.candidates = candidates
        self.ranked: list[dict[str, Any]] | None = None  # drawn at the first ask
        self.next = 0

    def propose(self) -> dict[str, Any]:
        if self.ranked is None:
            self.ranked = self.screen.pool(self.candidates)
        if self.next < len(self.ranked):
            self.next += 1
            return dict(self.ranked[self.next - 1])
        return self.random_config()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "ranked": self.ranked, "next": self.next}

    def load_state_dict(self, state: Mapping[str, Any], extra: Any = None) -> None:
        def ranking(st: Mapping[str, Any]) -> None:
            ranked = st["ranked"]
            self.ranked = None if ranked is None else [dict(c) for c in ranked]
            self.next = int(st["next"])

        super().load_state_dict(state, ranking)
