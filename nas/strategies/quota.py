"""End a search once enough candidates within the budgets were proposed (``count_rejected:
false``), whatever the searcher behind it.

A candidate over a budget is rejected before training and costs milliseconds, but as a Tune
trial it still uses up one of ``num_samples``: the quickstart rejects 16 of its 24 trials and
trains 8. :class:`WithinBudgetQuota` wraps any Tune ``Searcher`` (like Ray's
``ConcurrencyLimiter``), prices each suggestion with the same check the trial runs
(``fits(config)``) and answers ``Searcher.FINISHED`` once ``quota`` suggestions fit, or once
``max_rejected`` did not; Tune's ``num_samples`` is set to the sum, an upper bound. Rejected
candidates still run as (instant) trials, so they are recorded in MLflow and told to the
strategy exactly as before.

Tune saves its counts (:meth:`get_state`) with its trial generator's state and the wrapped
searcher's state on its own, as for its ``ConcurrencyLimiter``. A trial it is told about without
having suggested it (one Tune saved after this wrapper's last save, before a driver died) is
counted from the config in its result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from .tune_adapter import result_config


class WithinBudgetQuota(Searcher):
    """``searcher``'s suggestions until ``quota`` of them satisfy ``fits`` (or ``max_rejected``
    do not)."""

    def __init__(self, searcher: Searcher, quota: int, fits: Callable[[dict], bool],
                 max_rejected: int) -> None:
        if quota < 1 or max_rejected < 1:
            raise ValueError(f"quota and max_rejected must be >= 1, got {quota} and "
                             f"{max_rejected}")
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.fits = searcher, fits
        self.quota, self.max_rejected = quota, max_rejected
        self.within = self.rejected = 0
        self.live: dict[str, bool] = {}  # suggested trial id -> fits

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.within >= self.quota or self.rejected >= self.max_rejected:
            return Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        self.live[trial_id] = self._count(config)
        return config

    def _count(self, config: dict) -> bool:
        fits = bool(self.fits(config))
        if fits:
            self.within += 1
        else:
            self.rejected += 1
        return fits

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if self.live.pop(trial_id, None) is None:
            config = result_config(result)
            if config is not None:  # suggested after this searcher's last saved state
                self._count(config)
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict[str, Any]:
        """Tune saves a wrapper's state beside (not inside) the wrapped searcher's."""
        return {"within": self.within, "rejected": self.rejected, "live": dict(self.live)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.within, self.rejected = int(state["within"]), int(state["rejected"])
        self.live = {str(k): bool(v) for k, v in state["live"].items()}
