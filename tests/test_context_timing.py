"""torch-cpu blocks timed in context: inside a whole network's forward pass (issue 12)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from estimators.backends import Measurement, create_backend
from estimators.backends.torch_backends import TorchCPUBackend
from estimators.build import (
    BLOCK_COLUMNS,
    BLOCK_TABLE,
    _measure_in_context,
    _read_rows,
    _row_key,
    blocks_in_context,
    build_estimator,
    sample_context_networks,
    sample_networks,
)
from estimators.features import block_key
from estimators.latency import MANIFEST
from estimators.profiles import HardwareProfile
from searchspaces.baselines import mobilenetv2
from searchspaces.blocks import make_module
from searchspaces.layers import decompose
from searchspaces.model import build_model

ARCH = mobilenetv2(0.35, resolution=32, small_input=True)
QUICK = {"threads": 1, "warmup": 2, "repeats": 15, "min_time_ms": 5}


def _profile(**settings: object) -> HardwareProfile:
    return HardwareProfile(name="torch-cpu-quick", backend="torch-cpu", parallelism_factor=16,
                           settings={**QUICK, **settings})


def test_block_modules_are_decompose_blocks_and_compute_the_network() -> None:
    model = build_model(ARCH, num_classes=10).eval()
    specs = decompose(ARCH, num_classes=10)
    modules = model.block_modules()
    assert len(modules) == len(specs)
    for spec, module in zip(specs, modules, strict=True):
        alone = make_module(spec)
        assert [p.shape for p in module.parameters()] == [p.shape for p in alone.parameters()], \
            spec.name
    x = torch.randn(2, 3, 32, 32)
    y = x
    with torch.inference_mode():
        for module in modules:
            y = module(y)
        assert torch.allclose(y, model(x), atol=1e-5)


def test_block_modules_refuse_a_detection_network() -> None:
    det = dataclasses.replace(ARCH, head_kind="det")
    with pytest.raises(ValueError, match="classifier") as info:
        build_model(det, num_classes=3).block_modules()
    assert "\n" not in str(info.value)


def test_block_timing_setting() -> None:
    assert not TorchCPUBackend(_profile()).times_blocks_in_context
    backend = TorchCPUBackend(_profile(block_timing="context"))
    assert backend.times_blocks_in_context
    assert backend.environment()["block_timing"] == "context"
    for bad in ("inline", 1):
        with pytest.raises(ValueError, match="block_timing") as info:
            TorchCPUBackend(_profile(block_timing=bad))
        assert "\n" not in str(info.value)


def test_active_profiling_refuses_context_timing() -> None:
    backend = create_backend(_profile(block_timing="context"))
    assert blocks_in_context(backend) and blocks_in_context(backend, active=0)
    with pytest.raises(ValueError, match="block_timing: isolated") as info:
        blocks_in_context(backend, active=3)
    assert "\n" not in str(info.value)
    assert not blocks_in_context(create_backend(_profile()), active=3)


def test_blocks_in_context_sum_to_the_network() -> None:
    """A real property of the measurement, not a speed assertion: one forward pass is the
    blocks one after another, so their in-context times add up to the network's time (measured
    0.93-0.97x, docs/estimators.md; a figure, not asserted here). The test
    asserts only what survives the shared VM's speed swings of up to 2x from one second to the
    next (2026-12-01: the fastest of up to 8 alternating timings of each side, as medians,
    fell out of 0.75-1.25 in CI): each side timed by its fastest repeats (``statistic: min``,
    what torch-cpu reports now) over at least 3 rounds, the sum of each block's fastest against
    the network's fastest, within 0.5-2x. A block timed on the wrong input, or the network's
    blocks timed as something else, land far outside; measured under a concurrent test suite:
    0.86-0.96."""
    backend = TorchCPUBackend(_profile(block_timing="context", statistic="min"))
    blocks, networks = [], []
    for _ in range(8):
        timed = backend.measure_network_blocks(ARCH, 10)
        assert len(timed) == len(decompose(ARCH, num_classes=10))
        assert all(m.latency_ms > 0 and m.spread_ms >= 0 for m in timed)
        blocks.append([m.latency_ms for m in timed])
        networks.append(backend.measure_network(ARCH, 10).latency_ms)
        ratio = float(np.min(blocks, axis=0).sum()) / min(networks)
        if len(networks) >= 3 and 0.5 <= ratio <= 2.0:
            break
    assert 0.5 <= ratio <= 2.0, (blocks, networks)


def test_context_networks_reach_the_block_budget() -> None:
    nets = sample_context_networks("mbv2-small", 16, 40, np.random.default_rng([0, 0]))
    keys = {block_key(b) for s in nets for b in decompose(s.arch, s.num_classes, s.in_channels)}
    assert len(keys) >= 40
    before = {block_key(b) for s in nets[:-1]
              for b in decompose(s.arch, s.num_classes, s.in_channels)}
    assert len(before) < 40, "no more networks than the budget needs"
    assert all(s.arch.head_kind == "head" for s in nets)
    # the networks are those sample_networks draws, minus any that brings no new block
    drawn = sample_networks("mbv2-small", 16, 60, np.random.default_rng([0, 0]))
    assert [d for d in drawn if d in nets] == nets
    with pytest.raises(ValueError, match="samples"):
        sample_context_networks("mbv2-small", 16, 0, np.random.default_rng(0))


def _fake_times(calls: list) -> object:
    def fake(sample: object) -> list[Measurement]:
        calls.append(sample)
        blocks = decompose(sample.arch, sample.num_classes, sample.in_channels)
        return [Measurement(0.01 * (i + 1), 0.001) for i in range(len(blocks))]
    return fake


def test_context_rows_are_written_once_and_resume(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import estimators.build as build

    calls: list = []
    monkeypatch.setattr(build, "measure_network_blocks_sample", _fake_times(calls))
    prof = _profile(block_timing="context")
    nets = sample_context_networks("mbv2-small", 16, 50, np.random.default_rng([0, 0]))
    table = tmp_path / BLOCK_TABLE
    env = ["torch-cpu", prof.name, "m", "v"]
    _measure_in_context(nets[:2], table, prof, 1, tmp_path, env, None)
    first = table.read_text().splitlines()
    assert calls == nets[:2]
    # an interrupted build: the last row lost, a torn line in its place
    table.write_text("\n".join(first[:-1]) + "\nibn,1,2,3")
    calls.clear()
    _measure_in_context(nets, table, prof, 1, tmp_path, env, None)
    assert calls == nets[1:], "a network whose blocks all have rows is not timed again"
    rows = _read_rows(table, BLOCK_COLUMNS)
    keys = [_row_key(r) for r in rows]
    wanted = {block_key(b) for s in nets for b in decompose(s.arch, s.num_classes,
                                                            s.in_channels)}
    assert len(keys) == len(set(keys)) and set(keys) == wanted
    assert table.read_text().splitlines()[: len(first) - 1] == first[:-1]
    # the first network holding a block gives its row: the stem is the first block
    stem = decompose(nets[0].arch, nets[0].num_classes, nets[0].in_channels)[0]
    assert float(rows[keys.index(block_key(stem))]["latency_ms"]) == 0.01


@pytest.mark.slow
def test_build_in_context(tmp_path: Path) -> None:
    """A real, small torch-cpu build with blocks timed in context."""
    out = tmp_path / "ctx"
    est, report = build_estimator(_profile(block_timing="context"), "mbv2-small", 60, out,
                                  networks=3, network_passes=1)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["block_timing"] == "context" and manifest["context_networks"] >= 2
    rows = _read_rows(out / BLOCK_TABLE, BLOCK_COLUMNS)
    assert len(rows) == report["block_rows"] >= 60
    nets = sample_context_networks("mbv2-small", 16, 60, np.random.default_rng([0, 0]))
    assert len(nets) == manifest["context_networks"]
    wanted = {block_key(b) for s in nets for b in decompose(s.arch, s.num_classes,
                                                            s.in_channels)}
    assert {_row_key(r) for r in rows} == wanted
    assert est.predict(ARCH, 10) > 0


def test_context_blocks_keep_their_fastest_pass(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import estimators.build as build

    calls: list = []
    fake = _fake_times(calls)

    def slower_first_pass(sample: object) -> list[Measurement]:
        scale = 2.0 if sample not in calls else 1.0  # the first pass over a network is slow
        return [Measurement(m.latency_ms * scale, m.spread_ms * scale) for m in fake(sample)]

    monkeypatch.setattr(build, "measure_network_blocks_sample", slower_first_pass)
    nets = sample_context_networks("mbv2-small", 16, 30, np.random.default_rng([0, 1]))
    table = tmp_path / BLOCK_TABLE
    _measure_in_context(nets, table, _profile(block_timing="context"), 1, tmp_path,
                        ["torch-cpu", "q", "m", "v"], None, passes=2)
    assert len(calls) == 2 * len(nets)
    stem = decompose(nets[0].arch, nets[0].num_classes, nets[0].in_channels)[0]
    rows = _read_rows(table, BLOCK_COLUMNS)
    by_key = {_row_key(r): r for r in rows}
    assert float(by_key[block_key(stem)]["latency_ms"]) == 0.01


def test_cli_refuses_active_profiling_in_context(tmp_path: Path) -> None:
    profile = tmp_path / "ctx.yaml"
    profile.write_text("name: torch-cpu-ctx\nbackend: torch-cpu\nparallelism_factor: 16\n"
                       "settings:\n  block_timing: context\n")
    proc = run_cli("estimator", "build", "--profile", str(profile), "--space", "mbv2-small",
                   "--samples", "40", "--active", "2", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "block_timing: isolated" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x" / BLOCK_TABLE).exists()
