"""Turn any ask/tell strategy into a Ray Tune ``Searcher`` (the one place strategies meet Ray).

Like Ray's ``OptunaSearch``, a thin adapter: ``suggest`` asks the strategy for a config,
``on_trial_complete`` tells it the trial's objectives (or ``None`` for an errored trial, an
infeasible one: rejected by the budget check, see :mod:`nas.strategies.constraints`, or one out
of memory at every batch size, reported with a true ``failed`` key), and ``save``/``restore``
persist the strategy's JSON state together with the trials in flight, so ``Tuner.restore``
resumes with the same population. The file is written to a temporary name and renamed into
place: a killed process never leaves half a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from .constraints import ConstraintFeedback, Constraints, infeasible
from .registry import get_spec


class StrategySearcher(Searcher):
    """``strategy`` has ``ask()``, ``tell(config, result | None)``, ``state_dict()`` and
    ``load_state_dict(state)``; ``objectives`` are the result keys it is told."""

    def __init__(self, strategy: Any, objectives: list[tuple[str, str]],
                 max_trials: int | None = None) -> None:
        if not objectives:
            raise ValueError("StrategySearcher needs at least one objective")
        first, mode = objectives[0]
        super().__init__(metric=first, mode=mode)
        self.strategy = strategy
        self.objectives = list(objectives)
        self.max_trials = max_trials
        self.live: dict[str, dict[str, Any]] = {}
        self.suggested = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        # The objectives are the strategy's own; Tune's single metric/mode is for schedulers.
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.max_trials is not None and self.suggested >= self.max_trials:
            return Searcher.FINISHED
        config = self.strategy.ask()
        self.live[trial_id] = config
        self.suggested += 1
        return dict(config)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        config = self.live.pop(trial_id, None)
        if config is None:
            # A trial suggested after this searcher's last saved state (a driver killed between
            # Tune's experiment-state and searcher-state writes), restored by Tune from its
            # experiment state: Tune's result carries the config it was given.
            config = result_config(result)
            if config is None:
                return
            self.suggested += 1
        if error or result is None or infeasible(result) or result.get("failed"):
            # errored, over a budget (rejected before training), or out of memory at every
            # batch size tried (nas.packing): seen, never bred from
            self.strategy.tell(config, None)
            return
        self.strategy.tell(config, {name: result.get(name) for name, _ in self.objectives})

    def get_state(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict(), "live": self.live,
                "suggested": self.suggested}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.live = dict(state["live"])
        self.suggested = int(state["suggested"])

    def save(self, checkpoint_path: str) -> None:
        from searchspaces.files import atomic_write

        atomic_write(Path(checkpoint_path), json.dumps(self.get_state()).encode())

    def restore(self, checkpoint_path: str) -> None:
        try:
            with open(checkpoint_path) as handle:
                state = json.load(handle)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot restore searcher from {checkpoint_path}: {err}") from None
        self.set_state(state)


def result_config(result: dict | None) -> dict[str, Any] | None:
    """The config a Tune result carries: nested under ``config``, or as the ``config/<name>``
    keys of the flattened result Tune hands searchers."""
    if not result:
        return None
    if isinstance(result.get("config"), dict):
        return dict(result["config"])
    flat = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("config/")}
    return flat or None


def create_searcher(name: str, space: Any, objectives: list[tuple[str, str]], seed: int = 0,
                    constraints: Constraints | None = None, **params: Any) -> Searcher:
    """The Ray Tune ``Searcher`` of registered strategy ``name`` (:mod:`nas.strategies.registry`)
    with its ``params``, inside :class:`~nas.strategies.constraints.ConstraintFeedback`: every
    searcher learns that a candidate over a budget is infeasible. ``constraints`` maps a trial
    result to its constraint values (:class:`nas.trial.BudgetViolations`); ``None``: no budgets.

    ``space`` is a :class:`~searchspaces.spaces.SearchSpace` or a ``{name: choices}`` dict.
    """
    searcher = get_spec(name).build(name, space, objectives, seed, **params)
    return ConstraintFeedback(searcher, constraints)
