"""Blocks timed in isolation in several passes, each keeping its fastest (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import estimators.build as build
from estimators.backends import Measurement
from estimators.build import (
    BLOCK_COLUMNS,
    BLOCK_GROUP,
    BLOCK_TABLE,
    _measure_blocks,
    _read_rows,
    _row_key,
    build_estimator,
    fit_estimator,
    sample_blocks,
)
from estimators.features import block_key
from estimators.latency import MANIFEST
from estimators.profiles import HardwareProfile

PROFILE = HardwareProfile(name="torch-cpu-quick", backend="torch-cpu", parallelism_factor=16,
                          settings={"threads": 1, "warmup": 1, "repeats": 5, "min_time_ms": 0})
ENV = ["torch-cpu", PROFILE.name, "m", "v"]


def _blocks(n: int) -> list:
    return sample_blocks("mbv2-small", 16, n, np.random.default_rng([0, 0]))


def _fake(calls: list, slow: set) -> object:
    """A block's latency is its index in ``order`` + 1 ms, twice that on the first call of
    every block in ``slow`` (a pass hit by load)."""
    seen: set = set()

    def fake(group: list) -> list[Measurement]:
        calls.append([block_key(b) for b in group])
        out = []
        for b in group:
            key = block_key(b)
            scale = 2.0 if key in slow and key not in seen else 1.0
            seen.add(key)
            out.append(Measurement(scale * (len(key[1:]) + sum(map(hash, key)) % 7 + 1), 0.1))
        return out
    return fake


def _latency(rows: list[dict[str, str]]) -> dict[tuple, float]:
    return {_row_key(r): float(r["latency_ms"]) for r in rows}


def test_blocks_get_one_row_after_all_passes_with_the_fastest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(30)
    calls: list = []
    slow = {block_key(b) for b in blocks[::3]}
    monkeypatch.setattr(build, "measure_block_group", _fake(calls, slow))
    progress: list = []
    table = tmp_path / BLOCK_TABLE
    got = _measure_blocks(blocks, table, PROFILE, 1, tmp_path, ENV,
                          lambda *a: progress.append(a), passes=2)
    groups = [[block_key(b) for b in blocks[i:i + BLOCK_GROUP]]
              for i in range(0, len(blocks), BLOCK_GROUP)]
    assert calls == groups * 2, "every group once a pass, pass after pass: a sweep apart"
    rows = _read_rows(table, BLOCK_COLUMNS)
    assert [_row_key(r) for r in rows] == [block_key(b) for b in blocks], "one row a block"
    calls.clear()
    fast = _fake(calls, set())(blocks)  # every block's undisturbed latency
    assert got == [m.latency_ms for m in fast], "each block keeps its fastest pass"
    assert progress[-1] == ("blocks", 2 * len(blocks), 2 * len(blocks))
    assert [d for _, d, _ in progress] == sorted(d for _, d, _ in progress)


def test_an_interrupted_pass_leaves_no_rows_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(40)
    calls: list = []
    fake = _fake(calls, set())
    table = tmp_path / BLOCK_TABLE
    monkeypatch.setattr(build, "measure_block_group", fake)
    _measure_blocks(blocks[:10], table, PROFILE, 1, tmp_path, ENV, None, passes=2)
    before = table.read_text()

    def interrupted(group: list) -> list[Measurement]:
        if len(calls) >= 6:  # 4 groups for the 30 blocks left: cut in the second pass's third
            raise KeyboardInterrupt
        return fake(group)

    calls.clear()
    monkeypatch.setattr(build, "measure_block_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _measure_blocks(blocks, table, PROFILE, 1, tmp_path, ENV, None, passes=2)
    keys = [_row_key(r) for r in _read_rows(table, BLOCK_COLUMNS)]
    assert table.read_text().startswith(before)
    assert keys == [block_key(b) for b in blocks[:26]], \
        "rows for the two groups with both passes timed, none for the rest"
    calls.clear()
    monkeypatch.setattr(build, "measure_block_group", fake)
    _measure_blocks(blocks, table, PROFILE, 1, tmp_path, ENV, None, passes=2)
    assert sum(map(len, calls)) == 2 * 14, "only the missing blocks, in two passes"
    keys = [_row_key(r) for r in _read_rows(table, BLOCK_COLUMNS)]
    assert keys == [block_key(b) for b in blocks]


def test_a_deterministic_back_end_times_blocks_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = build.measure_block_group
    timed: list[int] = []
    monkeypatch.setattr(build, "measure_block_group",
                        lambda group: timed.append(len(group)) or real(group))
    _, report = build_estimator("roofline-npu32", "mbv2", 60, tmp_path / "est", networks=4,
                                block_passes=3)
    assert sum(timed) == report["block_rows"] == 60
    assert json.loads((tmp_path / "est" / MANIFEST).read_text())["block_passes"] == 1
    fit_estimator(tmp_path / "est", "roofline-npu32", "mbv2", tmp_path / "refit")
    assert json.loads((tmp_path / "refit" / MANIFEST).read_text())["block_passes"] == 1, \
        "a refit keeps how its tables were timed"
    with pytest.raises(ValueError, match=">= 1"):
        build_estimator("roofline-npu32", "mbv2", 60, tmp_path / "x", block_passes=0)
