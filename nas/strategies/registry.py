"""Every search strategy hwnas knows, by name: the one list config validation, the CLI, ``hwnas
compare`` and :func:`nas.strategies.tune_adapter.create_searcher` read (like Ray Tune's
``ray/tune/search/__init__.py`` name -> factory table).

A strategy is one :func:`register` call below. Its ``build`` turns ``(name, space, objectives,
seed, **params)`` into the Ray Tune ``Searcher`` that proposes candidates: :class:`AskTell` for an
hwnas ask/tell class (behind :class:`~nas.strategies.tune_adapter.StrategySearcher`),
:class:`OptunaSampler` for an Optuna sampler (behind
:class:`~nas.strategies.constraints.ConstrainedOptunaSearch`). Nothing here imports Ray or
Optuna: loading a config stays cheap, and the builders import them when called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .evolution import Evolution
from .hybrid import Hybrid
from .random_search import RandomSearch
from .zeroshot import ZeroShot

Objectives = Sequence[tuple[str, str]]


def check_params(name: str, factory: Callable[..., Any], params: Mapping[str, Any],
                 reserved: Sequence[str] = ()) -> None:
    """A one-line ``ValueError`` naming the parameters ``factory`` does not take."""
    accepted = inspect.signature(factory).parameters
    unknown = sorted(k for k in params if k not in accepted or k in reserved)
    if unknown:
        takes = [p for p in accepted if p not in ("space", "self", *reserved)]
        raise ValueError(f"strategy {name!r} takes no parameter {', '.join(unknown)}; it takes "
                         f"{', '.join(takes) or 'none'}")


@dataclass(frozen=True)
class AskTell:
    """Build an hwnas ask/tell ``strategy`` class behind a ``StrategySearcher``; ``max_trials``
    (a parameter of the searcher, not the strategy) ends the search after that many."""

    strategy: type

    def __call__(self, name: str, space: Any, objectives: Objectives, seed: int,
                 **params: Any) -> Any:
        from .tune_adapter import StrategySearcher

        max_trials = params.pop("max_trials", None)
        check_params(name, self.strategy, params, reserved=("objectives", "seed"))
        strategy = self.strategy(space, objectives=objectives, seed=seed, **params)
        return StrategySearcher(strategy, list(objectives), max_trials=max_trials)


@dataclass(frozen=True)
class OptunaSampler:
    """Build ``optuna.samplers.<sampler>(seed=seed, **params)`` behind Ray's ``OptunaSearch``
    (our :class:`~nas.strategies.constraints.ConstrainedOptunaSearch`), over the space's flat
    categorical dimensions."""

    sampler: str

    def __call__(self, name: str, space: Any, objectives: Objectives, seed: int,
                 **params: Any) -> Any:
        from optuna.distributions import CategoricalDistribution

        from searchspaces.spaces import SearchSpace

        from .constraints import ConstrainedOptunaSearch
        from .optuna_samplers import sampler_class as picklable

        sampler_class = picklable(self.sampler)
        check_params(name, sampler_class, params, reserved=("seed", "constraints_func"))
        dims = space.dimensions() if isinstance(space, SearchSpace) else space
        distributions = {k: CategoricalDistribution(list(v)) for k, v in dims.items()}
        return ConstrainedOptunaSearch(space=distributions, metric=[n for n, _ in objectives],
                                       mode=[m for _, m in objectives],
                                       sampler=sampler_class(seed=seed, **params))


@dataclass(frozen=True)
class StrategySpec:
    """One strategy: its name, its family (``multishot``: every candidate is evaluated by
    training it; ``zero-shot``: candidates are ranked without training; ``hybrid``: both), one
    line for ``--help`` and the docs, whether it optimises several objectives at once, and how to
    build its searcher."""

    name: str
    family: str
    description: str
    multi_objective: bool
    build: Callable[..., Any]

    @property
    def ask_tell(self) -> type | None:
        """The hwnas ask/tell class behind this strategy, if it is one."""
        return self.build.strategy if isinstance(self.build, AskTell) else None


REGISTRY: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    if spec.name in REGISTRY:
        raise ValueError(f"strategy {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def strategy_names(ask_tell: bool = False) -> tuple[str, ...]:
    """Every registered name (in registration order); ``ask_tell``: only hwnas ask/tell ones."""
    return tuple(n for n, s in REGISTRY.items() if not ask_tell or s.ask_tell is not None)


def get_spec(name: str) -> StrategySpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: "
                         f"{', '.join(strategy_names())}") from None


register(StrategySpec(
    "evolution", "multishot",
    "model-assisted (LightGBM; from 100 trials accuracy by a GP, latency the estimator's, a "
    "quarter of asks a climb of the accuracy end, ranked with a proxy while it ranks the trials) "
    "aging evolution with an NSGA-II tournament and "
    "a Pareto archive; first trials picked along the (parameters, predicted latency) front",
    multi_objective=True, build=AskTell(Evolution)))
register(StrategySpec(
    "random", "multishot", "every choice uniform and independent: the baseline",
    multi_objective=True, build=AskTell(RandomSearch)))
register(StrategySpec(
    "optuna-nsga2", "multishot", "Optuna's NSGA-II sampler (constrained domination)",
    multi_objective=True, build=OptunaSampler("NSGAIISampler")))
register(StrategySpec(
    "optuna-tpe", "multishot", "Optuna's multi-objective TPE sampler (constraint-aware)",
    multi_objective=True, build=OptunaSampler("TPESampler")))
register(StrategySpec(
    "zeroshot", "zero-shot", "trains only the top of many candidates ranked untrained by a "
    "trainability proxy (nas/proxies)", multi_objective=True, build=AskTell(ZeroShot)))
register(StrategySpec(
    "hybrid", "hybrid", "evolution seeded and fed by proxy-screened candidates",
    multi_objective=True, build=AskTell(Hybrid)))
