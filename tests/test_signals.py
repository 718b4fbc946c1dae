"""SIGTERM handling: raised at once outside a database write, held back inside one."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from nas.signals import held, sigterm_raises

TERM = 128 + signal.SIGTERM


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):  # the handler runs between bytecodes of the main thread
        pass


def test_sigterm_outside_held_raises_at_once() -> None:
    reached = False
    with sigterm_raises() as signals, pytest.raises(SystemExit) as exc:
        _kill_self()
        reached = True
    assert not reached and exc.value.code == TERM and signals.received == signal.SIGTERM


def test_sigterm_inside_held_waits_for_the_outermost_block() -> None:
    steps = []
    with sigterm_raises() as signals, pytest.raises(SystemExit) as exc:
        with held():
            with held():
                _kill_self()
                steps.append("inner")
            steps.append("outer")  # the inner block's end does not raise
        steps.append("after")  # never reached: the outer block's end raises
    assert steps == ["inner", "outer"]
    assert exc.value.code == TERM and signals.received == signal.SIGTERM


def test_an_error_inside_held_goes_on_unchanged_with_the_signal_recorded() -> None:
    with sigterm_raises() as signals, pytest.raises(ValueError, match="bad"):
        with held():
            _kill_self()
            raise ValueError("bad")
    assert signals.received == signal.SIGTERM


def test_held_without_a_handler_does_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with held():
        pass
    with sigterm_raises():
        pass
    with held():  # the search's signal does not outlive its sigterm_raises()
        pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_a_trial_start_still_ends_every_run(tmp_path: Path) -> None:
    """The CI failure this guards: a SIGTERM raised inside MLflow's ``create_run`` left the
    child run in the database but not in the tracker (so it stayed RUNNING) and, some of the
    time, the SQLite write lock held until the close failed with "database is locked"."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker
    from nas.tracking.callback import TrackingCallback

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = SearchTracker(uri, "exp", "sigterm", reference_ms=1.0)
    callback = TrackingCallback(tracker, lambda config: f"x{config['x']}", 1)
    create_run = tracker.client.create_run

    def create_then_killed(*args, **kwargs):  # the real write, then the scheduler's kill
        run = create_run(*args, **kwargs)
        _kill_self()
        return run

    tracker.client.create_run = create_then_killed
    trial = SimpleNamespace(trial_id="t0", config={"x": 1}, last_result={})
    with sigterm_raises() as signals, pytest.raises(SystemExit) as exc:
        try:
            callback.on_trial_start(0, [trial], trial)
        finally:
            tracker.close("KILLED")
    assert exc.value.code == TERM and signals.received == signal.SIGTERM
    runs = MlflowClient(uri).search_runs([tracker.experiment_id])
    statuses = {r.data.tags.get("hwnas.role"): r.info.status for r in runs}
    assert statuses == {"search": "KILLED", "trial": "KILLED"}
    [child] = [r for r in runs if r.data.tags.get("hwnas.role") == "trial"]
    assert child.data.params["arch"] == "x1"  # the hook finished its writes before exiting


def test_nested_handlers_unwind_in_order() -> None:
    """``hwnas compare`` holds one around its searches, each search its own."""
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_raises() as outer:
        with sigterm_raises() as inner:
            pass
        with pytest.raises(SystemExit), held():
            _kill_self()
    assert outer.received == signal.SIGTERM and inner.received is None
    assert signal.getsignal(signal.SIGTERM) is before
