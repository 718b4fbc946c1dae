"""Random search: every choice uniform and independent — the baseline every strategy must beat
(Li & Talwalkar, "Random Search and Reproducibility for NAS", UAI 2019)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from searchspaces.spaces import SearchSpace


class RandomSearch:
    """Same ask/tell interface as :class:`~nas.strategies.evolution.Evolution`."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]],
                 objectives: Sequence[tuple[str, str]] = (), seed: int = 0,
                 max_retries: int = 50) -> None:
        """``objectives`` is accepted for a uniform interface; random search ignores results."""
        self.space = space if isinstance(space, SearchSpace) else None
        self.dimensions = (dict(space.dimensions()) if isinstance(space, SearchSpace)
                           else {k: tuple(v) for k, v in space.items()})
        if not self.dimensions or any(len(v) == 0 for v in self.dimensions.values()):
            raise ValueError("the search space needs at least one dimension with choices")
        self.rng = np.random.default_rng(seed)
        self.max_retries = max_retries
        self.seen: set[str] = set()
        self.told = 0

    def ask(self) -> dict[str, Any]:
        for _ in range(self.max_retries):
            if self.space is not None:
                config = self.space.to_choices(self.space.sample(self.rng))
            else:
                config = {k: v[int(self.rng.integers(len(v)))]
                          for k, v in self.dimensions.items()}
            if json.dumps(config, sort_keys=True) not in self.seen:
                break
        self.seen.add(json.dumps(config, sort_keys=True))
        return config

    def tell(self, config: Mapping[str, Any], result: Mapping[str, float] | None) -> None:
        self.seen.add(json.dumps(dict(config), sort_keys=True))
        self.told += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "seen": sorted(self.seen),
                "told": self.told}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self.rng.bit_generator.state = state["rng"]
            self.seen = set(state["seen"])
            self.told = int(state["told"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a random-search state: {err}") from None
