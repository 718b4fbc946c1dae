"""The many small LightGBM fits of one estimator, on several cores.

An estimator is ~19 fits per block kind (5-fold cross-validation with and without the work
prior, the chosen model, 8 ensemble members), each single-threaded (see
:data:`~estimators.latency.LGBM_PARAMS`) and each independent of the others once the prior is
chosen. :class:`FitPool` runs them in spawned processes; the models are the same as fitted in
order (each fit is deterministic; a booster crosses processes as its exact text form).

This module imports no torch, so a worker starts in about a second."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PARALLEL_FIT_ROWS = 200
"""Block rows from which :func:`fit_jobs` uses more than one process by default: below it the
fits are quick enough that starting the workers would cost more than it saves."""


@dataclass(frozen=True, eq=False)
class FitTask:
    """One fit: ``cv`` (a :func:`~estimators.latency.cv_error` figure, the prior forced to
    ``prior``), ``fit`` (the kind's model) or ``member`` (ensemble member ``index``)."""

    what: str
    kind: str
    config: np.ndarray
    latency_ms: np.ndarray
    parallelism_factor: int
    prior: bool
    params: dict[str, Any] | None = None
    folds: int = 5
    index: int = 0

    @property
    def cost(self) -> int:
        """Rows times fits: a rough measure of how long the task takes."""
        return len(self.latency_ms) * (self.folds if self.what == "cv" else 1)

    def run(self) -> Any:
        from .latency import cv_error, fit_kind
        from .uncertainty import fit_member

        args = (self.kind, self.config, self.latency_ms, self.parallelism_factor)
        if self.what == "cv":
            return cv_error(*args, self.folds, self.prior, self.params)
        if self.what == "fit":
            return fit_kind(*args, prior=self.prior, params=self.params)
        if self.what == "member":
            return fit_member(*args, self.prior, self.index)
        raise ValueError(f"unknown fit task {self.what!r}; known: cv, fit, member")


def _run(task: FitTask) -> Any:
    return task.run()


def fit_jobs(jobs: int | None, rows: int) -> int:
    """``jobs``, or by default every core (at most 8) for a table of at least
    :data:`PARALLEL_FIT_ROWS` block rows, else 1."""
    if jobs is None:
        return min(os.cpu_count() or 1, 8) if rows >= PARALLEL_FIT_ROWS else 1
    if jobs < 1:
        raise ValueError(f"the number of fitting processes must be >= 1, got {jobs}")
    return jobs


class FitPool:
    """Runs :class:`FitTask` lists in ``jobs`` spawned processes (in this one for 1), calling
    ``progress(done, total)`` on entry and after each task; ``total`` is how many tasks the
    caller will run in all."""

    def __init__(self, jobs: int, total: int,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.jobs, self.total, self.done, self.progress = jobs, total, 0, progress
        self._pool: Executor | None = None

    def __enter__(self) -> FitPool:
        if self.progress is not None:
            self.progress(0, self.total)
        if self.jobs > 1:
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def run(self, tasks: Sequence[FitTask]) -> list[Any]:
        """Each task's result, in the order of ``tasks``: in the worker processes, and in this
        one whatever they did not run (all of it for ``jobs=1``)."""
        results: list[Any] = [None] * len(tasks)
        left = set(range(len(tasks)))
        if self._pool is not None:
            # the longest first, so no long fit is left for the end
            order = sorted(left, key=lambda i: -tasks[i].cost)
            try:
                futures = {self._pool.submit(_run, tasks[i]): i for i in order}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    left.discard(futures[future])
                    self._tick()
            except BrokenProcessPool as err:
                logger.warning("fitting in this process: the fitting processes stopped (%s; a "
                               "script that fits should start under `if __name__ == "
                               "\"__main__\":`)", err)
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        for i in sorted(left):
            results[i] = tasks[i].run()
            self._tick()
        return results
