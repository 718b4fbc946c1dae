"""Optuna samplers that Ray Tune can save.

Tune pickles its searcher (with the Optuna study and sampler inside) when it starts and at every
experiment checkpoint. Optuna 5.1's ``NSGAIISampler`` holds a ``threading.Lock``, which does not
pickle, so every NSGA-II search failed at ``Tuner(...)`` with "cannot pickle '_thread.lock'
object". The subclasses here leave locks out of their pickled state and make fresh ones when
loaded; on Optuna versions without a lock they change nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

_LOCK, _RLOCK = type(threading.Lock()), type(threading.RLock())


class LockFreePickle:
    """Pickle everything but the instance's locks; a loaded copy gets new, unlocked ones."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = {k: isinstance(v, _RLOCK) for k, v in state.items()
                 if isinstance(v, (_LOCK, _RLOCK))}
        for key in locks:
            del state[key]
        state["_hwnas_locks"] = locks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop("_hwnas_locks", {})
        self.__dict__.update(state)
        for key, reentrant in locks.items():
            setattr(self, key, threading.RLock() if reentrant else threading.Lock())


class NSGAIISampler(LockFreePickle, optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler`` that pickles (see the module docstring)."""


PICKLABLE: dict[str, type] = {"NSGAIISampler": NSGAIISampler}


def sampler_class(name: str) -> type:
    """The sampler class ``optuna.samplers.<name>``, or its picklable subclass here if any."""
    return PICKLABLE.get(name) or getattr(optuna.samplers, name)
