"""``explain``: the cost per stage adds up to the estimator and the memory model, each edit's
effect is what the estimator predicts for the edited network, and the CLI follows the
conventions (one JSON document, one-line errors, a PNG)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import run_cli
from estimators.latency import LatencyEstimator, resolve_estimator
from estimators.memory import memory_report
from nas.expert.explain import EDIT_NAMES, Explanation, explain
from searchspaces.baselines import resolve_arch
from searchspaces.genome import Architecture, Stage

ESTIMATOR = "npu32-mbv2-small"
CLASSES, CHANNELS = 10, 1


@pytest.fixture(scope="module")
def est() -> LatencyEstimator:
    return LatencyEstimator.load(resolve_estimator(ESTIMATOR))


@pytest.fixture(scope="module")
def mixed() -> Architecture:
    """MobileNetV2 for 32 px with a fused stage 1 and a conv stage 3: every edit applies."""
    base = resolve_arch("mobilenetv2-cifar")
    base = base.replace_stage(1, Stage("fibn", 3, 4, 24, 2, 1))
    return base.replace_stage(3, Stage("conv", 5, 1, 64, 2, 2))


@pytest.fixture(scope="module")
def ex(est: LatencyEstimator, mixed: Architecture) -> Explanation:
    return explain(mixed, est, CLASSES, CHANNELS)


def test_stage_latency_sums_to_prediction(ex: Explanation, est: LatencyEstimator,
                                          mixed: Architecture) -> None:
    total = est.predict(mixed, CLASSES, CHANNELS)
    assert ex.latency_ms == pytest.approx(total, rel=1e-12)
    assert sum(s.latency_ms for s in ex.stages) == pytest.approx(total, rel=1e-9)
    assert sum(s.share for s in ex.stages) == pytest.approx(1.0, rel=1e-9)
    names = [s.name for s in ex.stages]
    assert names == ["stem", *[f"stage {i}" for i in range(len(mixed.stages))], "head"]
    assert ex.stages[2].kinds == ("fibn",) and ex.stages[4].kinds == ("conv",)
    assert ex.stages[-1].kinds == ("head", "pool", "classifier")
    # each stage row is the sum of its blocks' predictions
    blocks = est.breakdown(mixed, CLASSES, CHANNELS)
    stage3 = [ms for b, ms in blocks if b.name in ("blocks.6", "blocks.7")]
    assert ex.stages[4].latency_ms == pytest.approx(sum(stage3), rel=1e-12)
    assert [s.position for s in ex.stages[1:-1]] == ["early"] * 3 + ["middle"] * 2 + ["late"] * 2


def test_overhead_is_its_own_row(est: LatencyEstimator, mixed: Architecture) -> None:
    """With a per-network correction ``a * sum + b`` the rows still add up to ``predict``."""
    corrected = replace(est, overhead=(1.1, 0.02), _blocks={}, _stages={})
    ex = explain(mixed, corrected, CLASSES, CHANNELS)
    assert ex.stages[-1].name == "overhead" and ex.stages[-1].latency_ms == pytest.approx(0.02)
    assert sum(s.latency_ms for s in ex.stages) == pytest.approx(
        corrected.predict(mixed, CLASSES, CHANNELS), rel=1e-9)


def test_memory_matches_memory_report(ex: Explanation, mixed: Architecture) -> None:
    rep = memory_report(mixed, CLASSES, CHANNELS)
    assert (ex.params, ex.macs, ex.peak_activation_bytes, ex.peak_layer) == (
        rep.params, rep.macs, rep.peak_activation_bytes, rep.peak_layer)
    assert sum(s.params for s in ex.stages) == rep.params
    assert max(s.peak_activation_bytes for s in ex.stages) == rep.peak_activation_bytes
    # stage 1 is blocks 1 and 2 (stage 0 has one block)
    layers = [r for r in rep.layers if r.name.split(".")[:2] in (["blocks", "1"], ["blocks", "2"])]
    assert ex.stages[2].params == sum(r.params for r in layers)
    assert ex.stages[2].peak_activation_bytes == max(r.live_bytes for r in layers)
    head = [r for r in rep.layers if r.name in ("head.conv", "pool", "classifier")]
    assert ex.stages[-1].params == sum(r.params for r in head)


def test_each_edit_is_priced_on_the_edited_network(ex: Explanation, est: LatencyEstimator,
                                                   mixed: Architecture) -> None:
    base = est.predict(mixed, CLASSES, CHANNELS)
    base_mem = memory_report(mixed, CLASSES, CHANNELS)
    assert len(ex.edits) > 20
    for e in ex.edits:
        edited = Architecture.from_string(e.arch)
        assert Architecture.from_string(edited.to_string()) == edited
        assert e.delta_ms == pytest.approx(est.predict(edited, CLASSES, CHANNELS) - base,
                                           rel=1e-9, abs=1e-12)
        assert e.delta_pct == pytest.approx(100 * e.delta_ms / base)
        mem = memory_report(edited, CLASSES, CHANNELS)
        assert e.delta_params == mem.params - base_mem.params
        assert e.delta_peak_bytes == mem.peak_activation_bytes - base_mem.peak_activation_bytes
        assert e.name in EDIT_NAMES
        if e.stage is None:
            assert e.knob == "width_mult" and edited.stages == mixed.stages
        else:  # one stage changes, nothing else
            assert e.before == mixed.stages[e.stage].to_string() != e.after
            assert e.after == edited.stages[e.stage].to_string()
            assert [s for i, s in enumerate(edited.stages) if i != e.stage] == \
                [s for i, s in enumerate(mixed.stages) if i != e.stage]


def test_edits_apply_only_where_they_make_sense(ex: Explanation, mixed: Architecture) -> None:
    kinds = {i: s.block for i, s in enumerate(mixed.stages)}
    by_name: dict[str, set[int | None]] = {}
    for e in ex.edits:
        by_name.setdefault(e.name, set()).add(e.stage)
    ibn = {i for i, k in kinds.items() if k == "ibn"}
    assert by_name["fuse"] == ibn and by_name["dw->conv"] == ibn
    assert by_name["unfuse"] == {1}
    assert 3 not in by_name["expansion down"] | by_name["expansion up"]
    assert by_name["kernel down"] == {3}  # the only k5 stage
    # P = 32, divisor 8: c24 (stage 1) and c16 (stage 0) are not aligned; c24 aligns up to 32
    align = [e for e in ex.edits if e.knob == "channels_aligned"]
    assert {(e.stage, e.name) for e in align} == {(1, "align up")}
    assert align[0].after == "fibn_k3_e4_c32_r2_s1"
    e6 = [e for e in ex.edits if e.stage == 2 and e.knob == "expansion"]
    assert [(e.name, e.value) for e in e6] == [("expansion down", 4)]
    assert {e.name for e in ex.edits if e.stage is None} == {"width down", "width up"}


def test_best_edit_per_stage(ex: Explanation) -> None:
    stages = {e.stage for e in ex.edits}
    for stage in stages:
        mine = [e for e in ex.edits if e.stage == stage]
        best = [e for e in mine if e.best]
        lowest = min(mine, key=lambda e: e.delta_ms)
        if lowest.delta_ms < 0:
            assert best == [lowest]
        else:
            assert best == []
    assert ex.best_edits()


@pytest.mark.slow
def test_cli_json_and_png(tmp_path: Path) -> None:
    png = tmp_path / "plots" / "explain.png"
    proc = run_cli("expert", "explain", "mobilenetv2-cifar", "-e", ESTIMATOR, "--num-classes",
                   "10", "--in-channels", "1", "--png", str(png), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    doc = json.loads(proc.stdout)
    assert doc["arch"] == resolve_arch("mobilenetv2-cifar").to_string()
    assert doc["parallelism_factor"] == 32 and doc["profile"] == "npu32"
    assert doc["estimator"].endswith(ESTIMATOR) and doc["png"] == str(png)
    assert {"latency_ms", "params", "peak_activation_bytes", "stages", "edits"} <= doc.keys()
    assert sum(s["latency_ms"] for s in doc["stages"]) == pytest.approx(doc["latency_ms"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert str(png) in proc.stderr and "outside space mbv2-small" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["r32_w1.0_d8:stem_c32_s1-ibn_k3_e6_c24_r2_x1-head_c1280", "-e", ESTIMATOR],
     "bad token 'x1'"),
    (["mobilenetv2-cifar", "-e", "no-such-estimator"], "no estimator folder"),
])
def test_cli_errors_are_one_line(args: list[str], words: str, tmp_path: Path) -> None:
    proc = run_cli("expert", "explain", *args, "--png", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("hwnas: error:") and proc.stderr.count("\n") == 1
    assert words in proc.stderr
    assert not (tmp_path / "x.png").exists()
