"""Strict JSON: what ``--json`` prints and what a manifest holds must parse with any JSON parser.

Python's ``json`` writes ``NaN`` and ``Infinity`` for non-finite floats, which strict parsers
(``jq``, JavaScript, Go) reject. A report can hold such a number legitimately (an error that
could not be computed), so it is written as ``null``, and ``allow_nan=False`` makes anything
missed an error here instead of a broken document elsewhere.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (also inside dicts, lists and tuples) as ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` with non-finite floats written as ``null``."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
