"""ONNX Runtime CPU back end: real exports and measurements on this CPU."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from estimators.backends import create_backend
from estimators.backends.base import Measurement
from estimators.backends.onnxruntime_cpu import OnnxRuntimeCPUBackend, export_onnx
from estimators.backends.timing import block_workload
from estimators.profiles import HardwareProfile, load_profile
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec, decompose

pytest.importorskip("onnxruntime")

# Every block kind once: stem, IBN with expansion 1 and 6, fused IBN, conv, head, pool and the
# classifier (which takes (N, cin)). Small, so that its exports (~0.5 s a block) stay few.
ARCH = Architecture.from_string("r32_w1.0_d8:stem_c16_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s2-"
                                "fibn_k3_e4_c32_r1_s2-conv_k3_c32_r1_s1-head_c128")
BLOCKS = decompose(ARCH, num_classes=10)
BY_NAME = {b.name: b for b in BLOCKS}
TINY = BlockSpec("tiny", "conv", 8, 8, 8, 3, 1, 16)
WIDE = BlockSpec("wide", "conv", 128, 128, 128, 3, 1, 16)  # 256x the MACs of TINY


def _profile(**settings: object) -> HardwareProfile:
    return HardwareProfile("test", "onnxruntime-cpu", 8, settings=dict(settings))


def _check(m: Measurement) -> None:
    assert m.latency_ms > 0 and math.isfinite(m.latency_ms)
    assert m.spread_ms >= 0 and math.isfinite(m.spread_ms)


@pytest.fixture(scope="module")
def ort_backend() -> OnnxRuntimeCPUBackend:
    backend = create_backend("onnxruntime-cpu")
    assert isinstance(backend, OnnxRuntimeCPUBackend)
    return backend


def test_profile_loads() -> None:
    profile = load_profile("onnxruntime-cpu")
    assert profile.backend == "onnxruntime-cpu" and profile.parallelism_factor == 16
    settings = OnnxRuntimeCPUBackend(profile).settings
    assert settings.intra_op_num_threads == 1 and settings.inter_op_num_threads == 1


def test_profile_for_another_backend_raises() -> None:
    with pytest.raises(ValueError, match="not 'onnxruntime-cpu'"):
        OnnxRuntimeCPUBackend(load_profile("torch-cpu"))


@pytest.mark.parametrize(("settings", "key"), [
    ({"threads": 1}, "threads"),
    ({"intra_op_num_threads": 0}, "intra_op_num_threads"),
    ({"inter_op_num_threads": 1.5}, "inter_op_num_threads"),
    ({"optimization": "max"}, "optimization"),
    ({"warmup": -1}, "warmup"),
])
def test_bad_settings_raise(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        OnnxRuntimeCPUBackend(_profile(**settings))


@pytest.mark.parametrize("name", ["blocks.1", "blocks.3", "classifier"])
def test_exported_block_matches_torch(ort_backend: OnnxRuntimeCPUBackend, name: str) -> None:
    module, example = block_workload(BY_NAME[name], batch=1)
    session = ort_backend.session(ort_backend.export_block(BY_NAME[name]))
    (out,) = session.run(None, {"input": example.numpy()})
    with torch.inference_mode():
        expected = module(example).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_export_leaves_torch_exporter_as_it_was() -> None:
    from torch.onnx._internal.exporter import _registration

    before = _registration.ONNXRegistry.__dict__["from_torchlib"]
    export_onnx(*block_workload(BY_NAME["classifier"]))
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is before


def test_export_is_cached_by_shape(ort_backend: OnnxRuntimeCPUBackend) -> None:
    first = ort_backend.export_block(BY_NAME["pool"])
    renamed = dataclasses.replace(BY_NAME["pool"], name="another")
    assert ort_backend.export_block(renamed) is first


def test_blocks_positive_and_finite(ort_backend: OnnxRuntimeCPUBackend) -> None:
    for m in ort_backend.measure_blocks(BLOCKS):
        _check(m)


def test_more_work_is_slower(ort_backend: OnnxRuntimeCPUBackend) -> None:
    tiny, wide = ort_backend.measure_block(TINY), ort_backend.measure_block(WIDE)
    assert wide.latency_ms > 2 * tiny.latency_ms


def test_network_slower_than_its_largest_block(ort_backend: OnnxRuntimeCPUBackend) -> None:
    largest = max(m.latency_ms for m in ort_backend.measure_blocks(BLOCKS))  # exported already
    network = ort_backend.measure_network(ARCH, num_classes=10)
    _check(network)
    assert network.latency_ms > largest


def test_torch_threads_untouched(ort_backend: OnnxRuntimeCPUBackend) -> None:
    before = torch.get_num_threads()
    ort_backend.measure_block(BY_NAME["head"])
    assert torch.get_num_threads() == before


def test_environment(ort_backend: OnnxRuntimeCPUBackend) -> None:
    import onnxruntime

    env = ort_backend.environment()
    assert env["backend"] == "onnxruntime-cpu" and env["profile"] == "onnxruntime-cpu"
    assert env["onnxruntime"] == onnxruntime.__version__
    assert env["intra_op_num_threads"] == "1" and env["cpu"]
