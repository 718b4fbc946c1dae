"""Search strategies: small ask/tell classes that never import Ray (a Tune adapter wraps them).

``create_strategy(name, space, **kwargs)`` builds one by name, like Ray Tune's searcher registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from searchspaces.spaces import SearchSpace

from .evolution import Evolution
from .hybrid import Hybrid
from .random_search import RandomSearch
from .zeroshot import ZeroShot

STRATEGIES: dict[str, Callable[..., Any]] = {"evolution": Evolution, "random": RandomSearch,
                                             "zeroshot": ZeroShot, "hybrid": Hybrid}
SEARCHERS: tuple[str, ...] = (*STRATEGIES, "optuna-nsga2", "optuna-tpe")
"""Every strategy a search config may name: ours, and Optuna's samplers that
:func:`nas.strategies.tune_adapter.create_searcher` wraps for Ray Tune."""


def create_strategy(name: str, space: SearchSpace | Mapping[str, Sequence[Any]],
                    **kwargs: Any) -> Any:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    import inspect

    accepted = inspect.signature(factory).parameters
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(f"strategy {name!r} takes no parameter {', '.join(unknown)}; it takes "
                         f"{', '.join(p for p in accepted if p != 'space')}")
    return factory(space, **kwargs)


__all__ = ["SEARCHERS", "STRATEGIES", "Evolution", "Hybrid", "RandomSearch", "ZeroShot",
           "create_strategy"]
