"""ONNX Runtime CPU back end: real exports and measurements on this CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend_contract import BLOCKS, BackendContract
from estimators.backends import create_backend
from estimators.backends.onnxruntime_cpu import OnnxRuntimeCPUBackend, export_onnx
from estimators.backends.timing import block_workload
from estimators.profiles import HardwareProfile, load_profile

pytest.importorskip("onnxruntime")

# The contract's network has every block kind once and is small: exports take ~0.5 s a block.
BY_NAME = {b.name: b for b in BLOCKS}


def _profile(**settings: object) -> HardwareProfile:
    return HardwareProfile("test", "onnxruntime-cpu", 8, settings=dict(settings))


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


class TestOnnxRuntimeContract(BackendContract):
    environment_keys = frozenset({"onnxruntime", "intra_op_num_threads", "cpu"})

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, ort_backend: OnnxRuntimeCPUBackend) -> OnnxRuntimeCPUBackend:
        return ort_backend  # the module's instance: its exports are cached by shape

    def test_environment_values(self, backend: OnnxRuntimeCPUBackend) -> None:
        import onnxruntime

        env = backend.environment()
        assert env["onnxruntime"] == onnxruntime.__version__
        assert env["intra_op_num_threads"] == "1" and env["cpu"]
