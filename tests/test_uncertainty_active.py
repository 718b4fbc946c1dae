"""Prediction intervals (bootstrap ensemble) and active profiling, on the instant roofline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import estimators.build as build_module
from conftest import run_cli, strict_loads
from estimators.active import pick, round_targets
from estimators.build import BLOCK_TABLE, build_estimator
from estimators.latency import MANIFEST, LatencyEstimator
from estimators.uncertainty import calibrate, half_width
from searchspaces.baselines import mobilenetv2
from searchspaces.layers import BlockSpec
from searchspaces.spaces import get_space


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unc") / "roofline"
    build_estimator("roofline-npu32", "mbv2", 160, out, networks=8, seed=0)
    return out


def _archs(n: int) -> list:
    spaces = [get_space("mbv2", 32, curated=c) for c in (True, False)]
    return [spaces[i % 2].sample(np.random.default_rng(i)) for i in range(n)]


def test_interval_round_trips_and_brackets_the_point(ensemble_dir: Path) -> None:
    manifest = json.loads((ensemble_dir / MANIFEST).read_text())
    members = manifest["interval"]["members"]
    assert set(members) == set(manifest["models"])
    assert {len(m) for m in members.values()} == {8}
    assert all(e["file"].endswith(".txt.gz") and len(e["sha256"]) == 64
               for m in members.values() for e in m)
    assert manifest["build"]["interval"]["calibrated"] is True
    est = LatencyEstimator.load(ensemble_dir)
    archs = _archs(30)
    p10, p50, p90 = est.predict_interval(archs)
    # the point prediction is unchanged by the ensemble, and the interval is centred on it
    np.testing.assert_array_equal(p50, est.predict_many(archs))
    assert np.all(p10 < p50) and np.all(p50 < p90)
    again = LatencyEstimator.load(ensemble_dir).predict_interval(archs)
    for a, b in zip((p10, p50, p90), again):
        np.testing.assert_array_equal(a, b)
    # batched and cached: one architecture at a time gives the same numbers
    single = np.array([est.predict_interval([a])[2][0] for a in archs[:5]])
    np.testing.assert_allclose(single, p90[:5], rtol=1e-12)


def test_damaged_member_file_is_refused(ensemble_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "copy"
    shutil.copytree(ensemble_dir, broken)
    member = broken / "member_ibn_3.txt.gz"
    member.write_bytes(member.read_bytes()[:-5])
    with pytest.raises(ValueError, match="damaged"):
        LatencyEstimator.load(broken)


@pytest.mark.slow
def test_estimator_without_members_has_no_interval(ensemble_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(ensemble_dir, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["interval"]  # what an estimator saved before intervals existed holds
    (old / MANIFEST).write_text(json.dumps(manifest))
    for f in old.glob("member_*"):
        f.unlink()
    est = LatencyEstimator.load(old)
    assert not est.has_interval
    assert est.predict(mobilenetv2()) == LatencyEstimator.load(ensemble_dir).predict(
        mobilenetv2())
    with pytest.raises(ValueError, match="no ensemble members"):
        est.predict_interval([mobilenetv2()])
    proc = run_cli("latency", "mobilenetv2", "-e", str(old), "--json")
    assert proc.returncode == 0, proc.stderr
    info = strict_loads(proc.stdout)
    assert info["latency_ms_p10"] is None and info["latency_ms_p90"] is None


@pytest.mark.slow
def test_latency_cli_reports_the_interval(ensemble_dir: Path) -> None:
    proc = run_cli("latency", "mobilenetv2", "-e", str(ensemble_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    info = strict_loads(proc.stdout)
    assert info["latency_ms_p10"] < info["latency_ms"] < info["latency_ms_p90"]
    p10, _, p90 = LatencyEstimator.load(ensemble_dir).predict_interval([mobilenetv2()])
    assert info["latency_ms_p10"] == pytest.approx(p10[0], rel=1e-12)
    assert info["latency_ms_p90"] == pytest.approx(p90[0], rel=1e-12)
    proc = run_cli("latency", "mobilenetv2", "-e", str(ensemble_dir))
    assert proc.returncode == 0 and "80% interval" in proc.stdout


def test_calibrate_finds_the_floor_by_hand() -> None:
    # no ensemble spread: the floor alone covers 80% of the 10 networks (the 80th percentile
    # of the squared |log error|, interpolated, over 1.28^2: between the 8th and 9th error)
    err = np.linspace(0.01, 0.10, 10)
    point = np.ones(10)
    floor, report = calibrate(np.zeros(10), point, np.exp(err))
    assert floor * 1.2815515655446004 == pytest.approx(np.sqrt(np.quantile(err**2, 0.8)))
    assert 0.08 < floor * 1.2815515655446004 < 0.09
    assert report["coverage"] == pytest.approx(0.8) and report["coverage_ensemble_only"] == 0
    # a spread that already covers everything needs no floor
    floor, report = calibrate(np.full(10, 1.0), point, np.exp(err))
    assert floor == 0 and report["coverage"] == 1
    assert calibrate(np.zeros(3), np.ones(3), np.ones(3))[1]["calibrated"] is False
    np.testing.assert_allclose(half_width(np.array([0.3]), 0.4), 1.2815515655446004 * 0.5)


def test_local_penalization_spreads_a_round() -> None:
    near = [BlockSpec(f"b{i}", "ibn", 32, 32, 192 + i, 3, 1, 28, 6) for i in range(5)]
    far = BlockSpec("far", "ibn", 160, 320, 960, 5, 2, 7, 6)
    blocks = [*near, far]
    scores = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.5])
    assert pick(blocks, scores, 2) == [0, 5], "the second pick must leave the crowded region"
    assert pick(blocks, scores, 2, length_scale=1e-6) == [0, 1]


def _rows(folder: Path) -> list[tuple[str, ...]]:
    with (folder / BLOCK_TABLE).open() as handle:
        return [tuple(r[:8]) for r in list(csv.reader(handle))[1:]]


@pytest.mark.slow
def test_active_build_is_exact_deterministic_and_resumable(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert round_targets(60, 3) == [20, 40, 60]
    first = tmp_path / "a"
    _, report = build_estimator("roofline-npu32", "mbv2", 60, first, networks=4, seed=5,
                                active=3)
    rows = _rows(first)
    assert len(rows) == len(set(rows)) == 60 and report["block_rows"] == 60
    assert LatencyEstimator.load(first).meta["active_rounds"] == 3
    build_estimator("roofline-npu32", "mbv2", 60, tmp_path / "b", networks=4, seed=5, active=3)
    assert _rows(tmp_path / "b") == rows
    build_estimator("roofline-npu32", "mbv2", 60, tmp_path / "c", networks=4, seed=6, active=3)
    assert set(_rows(tmp_path / "c")) != set(rows)

    # interrupt a build in its second round, then run it again
    measured: list[int] = []
    real = build_module.measure_block_group

    def flaky(blocks: list) -> list:
        if len(measured) >= 4:  # round 1 (groups of 8, 8, 4) and a group of round 2
            raise KeyboardInterrupt
        measured.append(len(blocks))
        return real(blocks)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(build_module, "measure_block_group", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_estimator("roofline-npu32", "mbv2", 60, resumed, networks=4, seed=5, active=3)
    before = _rows(resumed)
    assert len(before) == sum(measured) and 20 < len(before) < 60
    assert not (resumed / MANIFEST).exists()
    measured.clear()
    monkeypatch.setattr(build_module, "measure_block_group",
                        lambda blocks: measured.append(len(blocks)) or real(blocks))
    build_estimator("roofline-npu32", "mbv2", 60, resumed, networks=4, seed=5, active=3)
    after = _rows(resumed)
    assert after[: len(before)] == before, "measured rows are kept"
    assert sum(measured) == 60 - len(before), "and not measured again"
    assert after == rows, "a resumed active build chooses what an uninterrupted one does"


@pytest.mark.slow
def test_active_needs_enough_blocks_per_round(tmp_path: Path) -> None:
    proc = run_cli("estimator", "build", "--profile", "roofline-npu32", "--space", "mbv2",
                   "--samples", "30", "--active", "4", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "under 10 blocks a round" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x" / BLOCK_TABLE).exists()
