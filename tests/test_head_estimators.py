"""The latency estimator prices detection and segmentation heads (issue 15): features of the head
blocks, their sampling, a build with ``--head``, prediction and evaluation of det/seg networks,
and tables written before the ``resize_to`` column."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, strict_loads
from estimators.build import (
    BLOCK_TABLE,
    build_estimator,
    head_kinds,
    load_rows,
    sample_blocks,
    sample_head_blocks,
    sample_networks,
)
from estimators.evaluate import METRIC_KEYS, evaluate_estimator
from estimators.features import (
    BASIS,
    FEATURES,
    block_features,
    config_array,
    config_block,
    work_basis,
)
from estimators.latency import LatencyEstimator
from searchspaces.genome import Architecture
from searchspaces.layers import HEAD_BLOCK_KINDS, decompose
from searchspaces.spaces import get_space

SPACE = "mbv2-small"


@pytest.fixture(scope="module")
def heads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A roofline estimator with every task head (~30 s)."""
    out = tmp_path_factory.mktemp("heads") / "roofline"
    build_estimator("roofline-npu32", SPACE, 300, out, networks=6, seed=0, head="all")
    return out


def head_archs(head: str, n: int, seed: int = 0) -> list[Architecture]:
    space = get_space(SPACE, 32, head=head)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_head_features_follow_the_layers() -> None:
    """A head block's MACs feature is its layers' MACs; its ``out_res`` the resolution it
    resizes to; the work terms are positive and grow with the resize target."""
    blocks = [b for head in ("det", "seg") for arch in head_archs(head, 4)
              for b in decompose(arch, 21) if b.kind in HEAD_BLOCK_KINDS]
    assert {b.kind for b in blocks} == set(HEAD_BLOCK_KINDS)
    for block in blocks:
        assert config_block(block.kind, config_array([block])[0]) == replace(
            block, name=block.kind, source=-1)
        feats = block_features(block.kind, config_array([block]), 32)
        assert feats.shape == (1, len(FEATURES) - 5)
        macs = math.expm1(feats[0, FEATURES.index("log_macs")])
        assert round(macs) == sum(layer.macs for layer in block.layers())
        assert feats[0, FEATURES.index("out_res")] == block.out_res
        basis = work_basis(block.kind, config_array([block]), 32)
        assert basis.shape == (1, len(BASIS)) and np.all(basis[:, 2:] > 0)
        assert basis[0, BASIS.index("layers")] == len(block.layers())
    seg = next(b for b in blocks if b.kind == "segskip")
    bigger = config_array([seg]) * np.array([1, 1, 1, 1, 1, 1, 1, 2])  # resize to twice the size
    assert work_basis("segskip", bigger, 32)[0, 1] > work_basis("segskip",
                                                               config_array([seg]), 32)[0, 1]


def test_head_sampling_is_separate_from_the_classifier_sample() -> None:
    blocks = sample_head_blocks(SPACE, 32, head_kinds("all"), 12, np.random.default_rng(0))
    counts = {k: sum(b.kind == k for b in blocks) for k in HEAD_BLOCK_KINDS}
    assert counts == dict.fromkeys(HEAD_BLOCK_KINDS, 12)
    assert len({(b.kind, *config_array([b])[0]) for b in blocks}) == len(blocks)
    assert {b.cout for b in blocks if b.kind == "dethead"} > {5}  # several class counts
    assert len({b.resize_to for b in blocks if b.kind == "segskip"}) > 1  # input resolutions
    # the classifier's blocks do not depend on whether heads are measured too
    first = sample_blocks(SPACE, 32, 100, np.random.default_rng([0, 0]))
    assert first == sample_blocks(SPACE, 32, 100, np.random.default_rng([0, 0]))
    assert not {b.kind for b in first} & set(HEAD_BLOCK_KINDS)
    with pytest.raises(ValueError, match="unknown head 'box'; expected one of det, seg, all"):
        head_kinds("box")


def test_build_with_heads_prices_det_and_seg_networks(heads_dir: Path) -> None:
    est = LatencyEstimator.load(heads_dir)
    assert set(HEAD_BLOCK_KINDS) <= set(est.models) and set(est.members) == set(est.models)
    assert est.meta["heads"] == ["det", "seg"]
    assert est.meta["build"]["rows_per_kind"]["dethead"] == 18
    for head in ("det", "seg"):
        archs = head_archs(head, 12, seed=5)
        pred = est.predict_many(archs, 21)
        # the cache keys a task head on the whole architecture: the sum of its blocks
        for arch, value in zip(archs, pred):
            blocks = est.predict_blocks(decompose(arch, 21))
            assert value == pytest.approx(blocks.sum(), rel=1e-12)
        np.testing.assert_array_equal(pred, est.predict_many(archs, 21))
        classifier = [a.__class__.from_string(a.to_string().rsplit("-", 1)[0] + "-head_c1280")
                      for a in archs]
        assert not np.allclose(pred, est.predict_many(classifier, 21))
        lo, mid, hi = est.predict_interval(archs, 21)
        assert np.all(lo <= mid) and np.all(mid <= hi) and np.allclose(mid, pred)
    # two detection scales cost more than one on the same trunk
    one = next(a for a in head_archs("det", 30) if a.head_scales == 1)
    two = one.__class__.from_string(one.to_string().replace("_n1", "_n2"))
    assert est.predict(two, 21) > est.predict(one, 21)


def test_eval_scores_det_and_seg_networks(heads_dir: Path) -> None:
    """Held-out detection and segmentation networks get the classifier's metrics; on the
    roofline model (a sum of layers) the head models make them as accurate as classifiers."""
    nets = sample_networks(SPACE, 32, 4, np.random.default_rng(0), "seg")
    assert all(n.arch.head_kind == "seg" and n.num_classes in (1, 3, 21, 80) for n in nets)
    for head in ("det", "seg"):
        metrics, rows = evaluate_estimator(heads_dir, 12, seed=4, head=head)
        assert tuple(metrics) == METRIC_KEYS
        assert all(Architecture.from_string(r["arch"]).head_kind == head for r in rows)
        assert metrics["within_10pct"] >= 0.9 and metrics["kendall_tau"] > 0.8, metrics


def test_an_estimator_without_heads_says_how_to_get_them(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    build_estimator("roofline-npu32", SPACE, 120, out, networks=0, seed=0)
    est = LatencyEstimator.load(out)
    assert not set(HEAD_BLOCK_KINDS) & set(est.models)
    with pytest.raises(ValueError, match="no model for block kind 'dethead'.*--head"):
        est.predict(head_archs("det", 1)[0], 3)
    with pytest.raises(ValueError, match="has no model for lraspp, segskip blocks; build it "
                                         "with --head seg"):
        evaluate_estimator(out, 3, head="seg")
    proc = run_cli("estimator", "eval", "-e", str(out), "--archs", "3", "--head", "seg")
    assert proc.returncode == 2 and "--head seg" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # adding heads to a finished build measures only the head blocks
    rows = load_rows(out)["blocks"]
    build_estimator("roofline-npu32", SPACE, 120, out, networks=0, seed=0, head="det")
    after = load_rows(out)["blocks"]
    assert after[: len(rows)] == rows
    assert {r["kind"] for r in after[len(rows):]} == {"dethead"}
    proc = run_cli("estimator", "eval", "-e", str(out), "--archs", "3", "--head", "det",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    assert tuple(strict_loads(proc.stdout)) == METRIC_KEYS


def test_a_table_from_before_resize_to_reads_and_is_upgraded(heads_dir: Path,
                                                             tmp_path: Path) -> None:
    """A table without the ``resize_to`` column (every table written before the task heads)
    reads with 0 there, and a build appending to it rewrites it with the column first."""
    out = tmp_path / "old"
    out.mkdir()
    with (heads_dir / BLOCK_TABLE).open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f for f in reader.fieldnames or [] if f != "resize_to"]
        old = [r for r in reader if r["kind"] not in HEAD_BLOCK_KINDS]
    with (out / BLOCK_TABLE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old)
    assert load_rows(out)["blocks"] == old
    build_estimator("roofline-npu32", SPACE, 300, out, networks=0, seed=0, head="seg")
    with (out / BLOCK_TABLE).open(newline="") as handle:
        header = next(csv.reader(handle))
    assert header.index("resize_to") == header.index("expansion") + 1
    rows = load_rows(out)["blocks"]
    assert rows[: len(old)] == old
    assert {r["kind"] for r in rows[len(old):]} == {"lraspp", "segskip"}
