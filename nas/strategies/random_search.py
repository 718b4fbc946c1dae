"""Random search: every choice uniform and independent — the baseline every strategy must beat
(Li & Talwalkar, "Random Search and Reproducibility for NAS", UAI 2019)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchspaces.spaces import SearchSpace

from .base import AskTellStrategy


class RandomSearch(AskTellStrategy):
    """Same ask/tell interface as :class:`~nas.strategies.evolution.Evolution`."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]],
                 objectives: Sequence[tuple[str, str]] = (), seed: int = 0,
                 max_retries: int = 50) -> None:
        """``objectives`` is accepted for a uniform interface; random search ignores results."""
        super().__init__(space, seed, max_retries)

    def propose(self) -> dict[str, Any]:
        return self.random_config()
