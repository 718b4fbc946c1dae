"""What every ask/tell strategy shares: the space, a seeded generator, uniform sampling, the
set of configs already asked (so none is asked twice while fresh ones exist) and the JSON state
of those."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from searchspaces.spaces import SearchSpace


def config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


class AskTellStrategy:
    """Subclasses implement :meth:`propose` and may extend :meth:`tell` and the state."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]], seed: int = 0,
                 max_retries: int = 50) -> None:
        self.space = space if isinstance(space, SearchSpace) else None
        self.dimensions: dict[str, tuple[Any, ...]] = (
            dict(space.dimensions()) if isinstance(space, SearchSpace)
            else {k: tuple(v) for k, v in space.items()})
        if not self.dimensions or any(len(v) == 0 for v in self.dimensions.values()):
            raise ValueError("the search space needs at least one dimension with choices")
        self.rng = np.random.default_rng(seed)
        self.max_retries = max_retries
        self.seen: set[str] = set()
        self.told = 0

    def propose(self) -> dict[str, Any]:
        raise NotImplementedError

    def ask(self) -> dict[str, Any]:
        """A proposal not asked before (after ``max_retries`` tries, a repeat is allowed)."""
        for _ in range(self.max_retries):
            config = self.propose()
            if config_key(config) not in self.seen:
                break
        self.seen.add(config_key(config))
        return config

    def tell(self, config: Mapping[str, Any], result: Mapping[str, float] | None) -> None:
        self.seen.add(config_key(config))
        self.told += 1

    def random_config(self) -> dict[str, Any]:
        """Every choice uniform and independent (through the genome for a hwnas space)."""
        if self.space is not None:
            return self.space.to_choices(self.space.sample(self.rng))
        return {k: v[int(self.rng.integers(len(v)))] for k, v in self.dimensions.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "seen": sorted(self.seen),
                "told": self.told}

    def load_state_dict(self, state: Mapping[str, Any],
                        extra: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        try:
            self.rng.bit_generator.state = state["rng"]
            self.seen = set(state["seen"])
            self.told = int(state["told"])
            if extra is not None:
                extra(state)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a {type(self).__name__} state: {err}") from None
