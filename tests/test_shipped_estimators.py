"""The estimators shipped in the repository load, predict, and are what their tables give."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import strict_loads
from estimators.build import BLOCK_TABLE, NETWORK_TABLE, fit_estimator, load_rows
from estimators.latency import (
    FORMAT_VERSION,
    MANIFEST,
    SHIPPED_DIR,
    LatencyEstimator,
    list_shipped,
)
from estimators.profiles import load_profile
from searchspaces.baselines import mobilenetv2
from searchspaces.layers import HEAD_BLOCK_KINDS, decompose
from searchspaces.spaces import get_space

SHIPPED = list_shipped()


def test_the_demo_estimator_is_shipped() -> None:
    assert "npu32-mbv2" in SHIPPED
    assert {"h200-fp16-mbv2", "h200-fp16-b32-mbv2"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_estimator_predicts(name: str) -> None:
    folder = SHIPPED_DIR / name
    est = LatencyEstimator.load(folder)
    profile = load_profile(est.profile)
    assert profile.parallelism_factor == est.parallelism_factor
    assert (folder / BLOCK_TABLE).is_file() and (folder / NETWORK_TABLE).is_file()
    space = get_space(est.space, est.parallelism_factor, curated=True)
    archs = [space.sample(np.random.default_rng(s)) for s in range(50)]
    pred = est.predict_many(archs)
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    assert est.predict(mobilenetv2()) > 0
    # a wider network is slower: the estimator must at least order gross differences
    narrow = replace(space.baseline(), width_mult=min(space.width_mults))
    wide = replace(narrow, width_mult=max(space.width_mults))
    assert est.predict(wide) > est.predict(narrow)
    # what a search loads in every trial worker: the point models only, the same predictions
    points = LatencyEstimator.load(folder, intervals=False)
    assert not points.members and points.has_interval is False
    np.testing.assert_array_equal(points.predict_many(archs), pred)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_estimator_is_reproducible_from_its_tables(name: str, tmp_path: Path) -> None:
    """``hwnas estimator fit`` on the shipped folder's own tables gives the shipped models
    (LightGBM is deterministic here), so the shipped files are what its tables make."""
    folder = SHIPPED_DIR / name
    shipped = LatencyEstimator.load(folder)
    refit, report = fit_estimator(folder, shipped.profile, shipped.space, tmp_path / name)
    assert report["block_rows"] == len(load_rows(folder)["blocks"])
    archs = [get_space(shipped.space, shipped.parallelism_factor, curated=s % 2 == 0).sample(
        np.random.default_rng(100 + s)) for s in range(300)]
    np.testing.assert_allclose(refit.predict_many(archs), shipped.predict_many(archs),
                               rtol=1e-9)


def test_shipped_manifests_are_strict_json() -> None:
    """Every shipped manifest parses with a parser that rejects NaN and Infinity."""
    for name in SHIPPED:
        manifest = strict_loads((SHIPPED_DIR / name / MANIFEST).read_text())
        assert manifest["format_version"] == FORMAT_VERSION


HEAD_ESTIMATORS = [n for n in SHIPPED
                   if set(HEAD_BLOCK_KINDS) <= set(strict_loads(
                       (SHIPPED_DIR / n / MANIFEST).read_text())["models"])]


def test_the_quickstart_estimator_prices_task_heads() -> None:
    """The estimator the quickstart configs use prices detection and segmentation candidates:
    every head block kind has a model, and a head adds to the trunk's latency."""
    assert "npu32-mbv2-small" in HEAD_ESTIMATORS


@pytest.mark.parametrize("name", HEAD_ESTIMATORS)
def test_shipped_estimator_predicts_det_and_seg(name: str) -> None:
    """Detection and segmentation candidates are priced as the sum of their blocks (the fast
    path's per-architecture cache agrees), each head block positive."""
    est = LatencyEstimator.load(SHIPPED_DIR / name, intervals=False)
    scale, offset = est.overhead
    for head in ("det", "seg"):
        space = get_space(est.space, est.parallelism_factor, curated=True, head=head)
        archs = [space.sample(np.random.default_rng(s)) for s in range(30)]
        pred = est.predict_many(archs, 21)
        assert np.all(np.isfinite(pred)) and np.all(pred > 0)
        for arch, value in zip(archs, pred):
            blocks = decompose(arch, 21)
            per_block = est.predict_blocks(blocks)
            assert value == pytest.approx(scale * per_block.sum() + offset, rel=1e-9)
            assert np.all(per_block[[b.kind in HEAD_BLOCK_KINDS for b in blocks]] > 0)


@pytest.mark.slow
@pytest.mark.parametrize(("head", "seed"), [("det", 0), ("seg", 0)])
def test_npu32_small_predicts_det_and_seg_networks_on_zigzag(head: str, seed: int) -> None:
    """A detection and a segmentation network the build never saw, measured end to end on the
    ZigZag back end, are predicted within 5% (the classifier networks' held-out error is
    0.74% MAPE; ``hwnas estimator eval --head det|seg`` gives the figures over many)."""
    pytest.importorskip("zigzag")
    pytest.importorskip("six")
    from estimators.backends import create_backend

    est = LatencyEstimator.load(SHIPPED_DIR / "npu32-mbv2-small", intervals=False)
    space = get_space("mbv2-small", 32, curated=seed % 2 == 0, head=head)
    arch = space.sample(np.random.default_rng([seed, 15]))
    measured = create_backend("npu32").measure_network(arch, num_classes=21).latency_ms
    assert est.predict(arch, 21) == pytest.approx(measured, rel=0.05), arch.to_string()
