"""benchmarks/proxy_validation.py: the bootstrap interval of tau, the budget-keyed cache, and that
an interrupted validation resumes instead of re-measuring (the figures: docs/search.md)."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from benchmarks.proxy_validation import (
    CACHE_FIELDS,
    SCORED,
    Budget,
    measure_missing,
    read_cache,
    sample_archs,
    tau_interval,
)


def test_tau_interval_of_a_perfect_ranking_is_one() -> None:
    x = np.arange(20.0)
    out = tau_interval(x, 3 * x + 1)
    assert out == pytest.approx({"tau": 1.0, "se": 0.0, "low": 1.0, "high": 1.0}, abs=1e-12)


def test_tau_interval_of_independent_scores_covers_zero_at_the_analytic_error() -> None:
    rng = np.random.default_rng(3)
    n = 100
    out = tau_interval(rng.normal(size=n), rng.normal(size=n), resamples=500)
    null_se = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))  # tau's error under independence
    assert out["low"] < 0 < out["high"]
    assert out["low"] < out["tau"] < out["high"]
    assert 0.7 * null_se < out["se"] < 1.3 * null_se


def test_tau_interval_is_seeded_and_rejects_short_input() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    assert tau_interval(x, y, seed=5) == tau_interval(x, y, seed=5)
    with pytest.raises(ValueError, match=">= 3 paired"):
        tau_interval(x[:2], y[:2])


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CACHE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def row(arch: str, budget: Budget, accuracy: float) -> dict[str, object]:
    filler = {f: 1.0 for f in CACHE_FIELDS[1 + len(asdict(budget)):]}
    return {**filler, "arch": arch, **asdict(budget), "accuracy": accuracy}


def test_cache_rows_are_keyed_by_the_whole_budget(tmp_path: Path) -> None:
    path = tmp_path / "cache.csv"
    short, smaller_batch = Budget(), Budget(batch_size=16)
    write_rows(path, [row("a", short, 0.5), row("a", smaller_batch, 0.9), row("b", short, 0.2)])
    assert {a: r["accuracy"] for a, r in read_cache(short, path).items()} == {"a": 0.5, "b": 0.2}
    assert {a: r["accuracy"] for a, r in read_cache(smaller_batch, path).items()} == {"a": 0.9}
    assert set(read_cache(short, path)["a"]) == {"accuracy", "train_seconds", *SCORED,
                                                 *(f for f in CACHE_FIELDS if "_seconds" in f)}
    assert read_cache(short, tmp_path / "absent.csv") == {}


def test_a_cache_in_an_older_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.csv"
    path.write_text("arch,epochs,max_train,accuracy,train_seconds\nx,1,960,0.5,10\n")
    with pytest.raises(ValueError, match="move it away"):
        read_cache(Budget(), path)


@pytest.mark.slow
def test_measuring_appends_each_architecture_and_a_rerun_measures_nothing(tmp_path: Path) -> None:
    path, budget = tmp_path / "cache.csv", Budget(epochs=1, max_train=32, batch_size=16,
                                                  max_val=20)
    arch = sample_archs(1, 0)[0]
    first = measure_missing([arch], budget, 1, path)
    assert list(first) == [arch]
    measured = first[arch]
    assert 0.0 <= measured["accuracy"] <= 1.0 and measured["train_seconds"] > 0
    assert all(math.isfinite(measured[p]) for p in SCORED) and measured["params"] > 1000
    written = path.read_text()
    assert read_cache(budget, path)[arch]["accuracy"] == pytest.approx(measured["accuracy"])
    # everything cached: no worker is started and the file is left as it was
    assert measure_missing([arch, arch], budget, 1, path)[arch] == read_cache(budget, path)[arch]
    assert path.read_text() == written
