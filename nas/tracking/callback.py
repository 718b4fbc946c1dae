"""The Ray Tune side of tracking: a driver-side callback that feeds a
:class:`~nas.tracking.tracker.SearchTracker` (which owns the MLflow runs) from Tune's trial
events. Ray kills a trial that ASHA stops, so runs are never opened inside a trial.

Every hook writes inside :func:`nas.signals.held`: a SIGTERM that arrives during a write
stops the search when the hook is done, never half way through a run's creation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from nas.signals import held
from nas.tracking.tracker import SearchTracker


def _trial_error(trial: Any) -> str | None:
    path = getattr(trial, "error_file", None)
    try:
        return Path(path).read_text() if path else None
    except OSError:
        return None


_LIVE: dict[str, tuple[SearchTracker, Callable[[dict], str],
                       Callable[[SearchTracker], None] | None]] = {}


class TrackingCallback(Callback):
    """Feeds a :class:`SearchTracker` from Ray Tune's driver-side callback hooks and calls
    ``on_update(tracker)`` after every change (the CLI's progress display hangs there).

    Tune pickles its callbacks into the experiment folder and ``Tuner.restore`` unpickles them;
    the live parts (database client, progress display) never travel: they are looked up by
    ``key`` in this process, so a resumed search registers its new tracker under the same key
    (:func:`register_live`) before restoring."""

    def __init__(self, tracker: SearchTracker, arch_of: Callable[[dict], str], max_epochs: int,
                 on_update: Callable[[SearchTracker], None] | None = None) -> None:
        self.key, self.max_epochs = tracker.run_name, max_epochs
        register_live(tracker, arch_of, on_update)
        self._attach()

    def _attach(self) -> None:
        self.tracker, self.arch_of, self.on_update = _LIVE.get(self.key, (None, None, None))

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "max_epochs": self.max_epochs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach()

    def _changed(self) -> None:
        if self.on_update is not None:
            self.on_update(self.tracker)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is None:
            return
        with held():
            if trial.trial_id not in self.tracker.children:
                self.tracker.start_trial(trial.trial_id, self.arch_of(trial.config), trial.config)
            self._changed()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if self.tracker is None:
            return
        with held():
            self.tracker.log_epoch(trial.trial_id, result)
            self._changed()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is None:
            return
        with held():
            self.tracker.finish_trial(trial.trial_id, trial.last_result, "FINISHED",
                                      self.max_epochs)
            self._changed()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial that failed and will be retried (``resources.max_failures``)."""
        if self.tracker is None:
            return
        with held():
            run_id = self.tracker.children.get(trial.trial_id)
            if run_id is not None:
                error = _trial_error(trial) or ""
                self.tracker.client.set_tag(run_id, "hwnas.retried_after", error[-4000:])
            self._changed()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial Tune gave up on. It may never have started: Tune errors a trial whose
        reused actor dies while being reset for it (a node lost between two trials) without
        a retry or an ``on_trial_start``, so it gets its failed run here."""
        if self.tracker is None:
            return
        with held():
            self._fail(trial)
            self._changed()

    def _fail(self, trial: Any) -> None:
        """End ``trial``'s run ``FAILED`` with Tune's error, opening it first if it never
        started."""
        if trial.trial_id not in self.tracker.children:
            self.tracker.start_trial(trial.trial_id, self.arch_of(trial.config), trial.config)
        self.tracker.finish_trial(trial.trial_id, trial.last_result, "FAILED", self.max_epochs,
                                  error=_trial_error(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Every trial Tune errored without telling a callback (a reused worker that could not
        be reset, ``Trainable runner reuse requires reset_config()``) gets its failed run, so
        each trial Tune ran is counted once."""
        if self.tracker is None:
            return
        with held():
            lost = [t for t in trials if t.status == "ERROR"
                    and t.trial_id not in self.tracker.done]
            for trial in lost:
                self._fail(trial)
            if lost:
                self._changed()


def register_live(tracker: SearchTracker, arch_of: Callable[[dict], str],
                  on_update: Callable[[SearchTracker], None] | None = None) -> None:
    """Make ``tracker`` the live target of every :class:`TrackingCallback` keyed by its run
    name in this process (including ones ``Tuner.restore`` unpickles)."""
    _LIVE[tracker.run_name] = (tracker, arch_of, on_update)
