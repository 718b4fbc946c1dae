"""SIGTERM (a scheduler's kill, ``timeout``) as a ``SystemExit`` in the main thread, held back
while a database write is in flight.

A ``SystemExit`` raised in the middle of an MLflow call can leave the call half done: a run
created in the database but not yet recorded by the tracker, or a SQLite connection still in
its write transaction, kept alive by the exception's traceback while the ``finally`` that
closes the runs waits on its lock ("database is locked", the run left ``RUNNING``). Writes go
inside :func:`held`: a SIGTERM that arrives there is recorded, and raised when the outermost
:func:`held` block ends."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)  # compared by identity: nested ones are told apart in _installed
class Signals:
    """The termination signal a search received (``None``: none)."""

    received: int | None = None


_installed: list[Signals] = []  # the innermost sigterm_raises() last
_depth = 0  # how many held() blocks the main thread is in


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[Signals]:
    """Turn SIGTERM into ``SystemExit(128 + signum)`` in the main thread so the ``finally``
    that closes the MLflow runs still runs (immediately, or at the end of a :func:`held`
    block).

    The signal is also recorded: a ``SystemExit`` raised while the driver waits inside Ray can
    come back as another exception, or be absorbed by Tune, which then ends the experiment as
    if it had finished. The caller checks ``received`` so such a search still ends KILLED with
    a non-zero exit status. Off the main thread (where Python cannot install a handler) this
    does nothing."""
    signals = Signals()
    if not _main_thread():
        yield signals
        return

    def handler(signum: int, frame: Any) -> None:
        signals.received = signum
        if _depth == 0:
            raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    _installed.append(signals)
    try:
        yield signals
    finally:
        _installed.remove(signals)
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a SIGTERM back until this block ends (blocks nest; the outermost one raises).

    The block's own exception, if any, goes on unchanged (the signal stays recorded in
    :class:`Signals`); a block that ends normally after a SIGTERM raises ``SystemExit``."""
    global _depth
    if not _main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0 and _installed and _installed[-1].received is not None:
        raise SystemExit(128 + _installed[-1].received)
