"""Tell every searcher that a candidate over a budget is infeasible, not a completed trial.

A candidate over a budget is rejected before training (``nas/trial.py``) and reports
``rejected = 1`` with ``accuracy = 0``. Passed on as it is, Ray's ``OptunaSearch`` would tell
Optuna a completed, feasible trial ``[0.0, latency]``: a point on the front to breed from.
:class:`ConstraintFeedback` wraps any Tune ``Searcher`` (like Ray's ``ConcurrencyLimiter``) and
adds to every finished trial's result its constraint values (``CONSTRAINTS``: one per budget,
in the budget's unit, ms, MiB or M params; positive means over by that much), computed by the
``constraints`` function the search gives it. What the wrapped searcher does with them:

- :class:`~nas.strategies.tune_adapter.StrategySearcher` tells its hwnas strategy ``None`` for an
  infeasible candidate (seen, never bred from);
- :class:`ConstrainedOptunaSearch` (Ray's ``OptunaSearch``) sets them on the Optuna trial with
  ``Trial.set_constraint`` before completing it, so the sampler's own constraint handling
  applies: NSGA-II's constrained domination (every feasible trial dominates every infeasible
  one; infeasible ones rank by total violation) and TPE's (infeasible trials rank below the
  feasible ones by total violation). Optuna 5 reads these per-trial constraints; the samplers'
  ``constraints_func`` argument, which computed the same thing after the fact, is deprecated
  there in their favour. The objective values of an infeasible trial are the trial's own (the
  predicted latency, and accuracy 0 for a model never trained); both samplers rank infeasible
  trials by their violation alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

CONSTRAINTS = "constraints"
"""The result key :class:`ConstraintFeedback` adds: ``{budget name: violation}``."""

Constraints = Callable[[Mapping[str, Any]], Mapping[str, float]]


def infeasible(result: Mapping[str, Any]) -> bool:
    """Whether a finished trial's ``result`` is of a candidate outside the budgets: rejected by
    the trial's own check, or with a positive constraint value."""
    return bool(result.get("rejected")) or any(
        v > 0 for v in result.get(CONSTRAINTS, {}).values())


class ConstraintFeedback(Searcher):
    """``searcher``, told the constraint values of every trial it completes. ``constraints``
    maps a result to ``{name: violation}``; ``None`` means no budgets (nothing can be over)."""

    def __init__(self, searcher: Searcher, constraints: Constraints | None = None) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.constraints = searcher, constraints

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | str | None:
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result and not error:
            values = {k: float(v) for k, v in
                      (self.constraints(result) if self.constraints else {}).items()}
            result = {**result, CONSTRAINTS: values}
            if result.get("rejected") and not any(v > 0 for v in values.values()):
                raise ValueError(f"trial {trial_id} was rejected but is within every budget "
                                 f"({values or 'none set'}): the search and the trial disagree")
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict[str, Any]:
        """Nothing of its own to save: Tune saves the wrapped searcher beside it."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class ConstrainedOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch``, completing each Optuna trial with the constraint values that
    :class:`ConstraintFeedback` put in its result. A rejected result without them is an error:
    Optuna would take it for a feasible trial."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result and not error and trial_id not in self._completed_trials:
            if result.get("rejected") and CONSTRAINTS not in result:
                raise ValueError(f"trial {trial_id} was rejected, but its result has no "
                                 f"constraint values: wrap the searcher in ConstraintFeedback")
            trial = self._ot_trials[trial_id]
            for name, value in result.get(CONSTRAINTS, {}).items():
                trial.set_constraint(name, value)
        super().on_trial_complete(trial_id, result=result, error=error)
