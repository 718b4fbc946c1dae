"""Search strategies: small ask/tell classes that never import Ray (a Tune adapter wraps them),
and the registry of every strategy a search may name (:mod:`nas.strategies.registry`).

``create_strategy(name, space, **kwargs)`` builds an hwnas ask/tell strategy by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchspaces.spaces import SearchSpace

from .evolution import Evolution
from .random_search import RandomSearch
from .registry import REGISTRY, StrategySpec, get_spec, register, strategy_names


def create_strategy(name: str, space: SearchSpace | Mapping[str, Sequence[Any]],
                    **kwargs: Any) -> Any:
    """The ask/tell strategy ``name`` (``evolution``, ``random``, ...) without Ray."""
    from .registry import check_params

    factory = get_spec(name).ask_tell
    if factory is None:
        raise ValueError(f"strategy {name!r} is not an hwnas ask/tell strategy; those are: "
                         f"{', '.join(strategy_names(ask_tell=True))}")
    check_params(name, factory, kwargs)
    return factory(space, **kwargs)


__all__ = ["REGISTRY", "Evolution", "RandomSearch", "StrategySpec", "create_strategy",
           "get_spec", "register", "strategy_names"]
