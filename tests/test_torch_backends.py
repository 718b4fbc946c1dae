"""PyTorch back ends: real measurements on this CPU (and on a GPU where there is one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend_contract import TINY, WIDE, BackendContract, check_measurement
from estimators.backends import create_backend
from estimators.backends.timing import LoopSettings, summarize, time_host
from estimators.backends.torch_backends import (
    TorchCPUBackend,
    TorchCUDABackend,
    prepare_for_inference,
    torch_threads,
)
from estimators.profiles import HardwareProfile, load_profile
from searchspaces.baselines import mobilenetv2
from searchspaces.blocks import block_input_shape, make_module
from searchspaces.layers import BlockSpec, decompose
from searchspaces.model import build_model

ARCH = mobilenetv2(0.35, resolution=32, small_input=True)
BLOCKS = decompose(ARCH, num_classes=10)
BY_NAME = {b.name: b for b in BLOCKS}

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _profile(backend: str, **settings: object) -> HardwareProfile:
    return HardwareProfile("test", backend, 8, settings=dict(settings))


def _randomize_bn(module: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding is tested."""
    gen = torch.Generator().manual_seed(7)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    return module.eval()


# -- profiles and settings --------------------------------------------------------------------
def test_cpu_profile_loads() -> None:
    profile = load_profile("torch-cpu")
    assert profile.backend == "torch-cpu" and profile.parallelism_factor == 16
    assert TorchCPUBackend(profile).settings.threads == 1


def test_cuda_profile_loads_without_a_gpu() -> None:
    profile = load_profile("torch-cuda-fp16")
    assert profile.backend == "torch-cuda" and profile.parallelism_factor == 8
    settings = TorchCUDABackend(profile).settings
    assert settings.dtype == "fp16" and settings.channels_last is True


def test_cuda_backend_rejects_another_profile_without_a_gpu() -> None:
    """The contract checks this on a GPU; it needs none."""
    with pytest.raises(ValueError, match="not 'torch-cuda'"):
        TorchCUDABackend(load_profile("torch-cpu"))


@pytest.mark.parametrize(("settings", "key"), [
    ({"thread": 2}, "thread"),
    ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
    ({"repeats": "many"}, "repeats"),
    ({"repeats": 1}, "repeats"),
    ({"min_time_ms": -1}, "min_time_ms"),
    ({"batch": 0}, "batch"),
])
def test_bad_cpu_settings_raise(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key) as info:
        TorchCPUBackend(_profile("torch-cpu", **settings))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("settings", "key"), [({"dtype": "fp8"}, "dtype"),
                                               ({"channels_last": "yes"}, "channels_last"),
                                               ({"threads": 1}, "threads")])
def test_bad_cuda_settings_raise(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        TorchCUDABackend(_profile("torch-cuda", **settings))


def test_float_setting_accepts_int() -> None:
    assert TorchCPUBackend(_profile("torch-cpu", min_time_ms=5)).settings.min_time_ms == 5.0


# -- timing helpers ---------------------------------------------------------------------------
def test_summarize_is_median_and_iqr() -> None:
    m = summarize([5.0, 1.0, 3.0, 2.0, 4.0, 100.0, 3.0])
    assert m.latency_ms == 3.0
    assert m.spread_ms == pytest.approx(4.5 - 2.5)


def test_time_host_runs_warmup_repeats_and_min_time() -> None:
    calls = []
    samples = time_host(lambda: calls.append(1), LoopSettings(warmup=2, repeats=4,
                                                              min_time_ms=0.0))
    assert len(samples) == 4 and len(calls) == 6
    samples = time_host(lambda: None, LoopSettings(warmup=0, repeats=3, min_time_ms=2.0))
    assert len(samples) > 3 and all(s >= 0 for s in samples)


# -- BatchNorm folding ------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    BY_NAME["stem"], BY_NAME["blocks.0"], BY_NAME["blocks.1"], BY_NAME["head"],
    BlockSpec("f", "fibn", 16, 16, 64, 3, 1, 8, 4), BlockSpec("c", "conv", 16, 24, 16, 5, 2, 8),
], ids=lambda s: s.kind + "-" + s.name)
def test_bn_folding_matches_eval_block(spec: BlockSpec) -> None:
    torch.manual_seed(0)
    module = _randomize_bn(make_module(spec))
    x = torch.randn(block_input_shape(spec, 2))
    folded = prepare_for_inference(module)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in module.modules())  # original untouched
    with torch_threads(1), torch.inference_mode():  # 2 OpenMP threads crawl on a busy 2-core box
        torch.testing.assert_close(folded(x), module(x), rtol=1e-4, atol=1e-5)


def test_bn_folding_matches_eval_network() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(build_model(ARCH, num_classes=10))
    folded = prepare_for_inference(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in folded.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch_threads(1), torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


# -- the back-end contract (tests/backend_contract.py) and what is CPU- or CUDA-specific ------
class TestTorchCPUContract(BackendContract):
    environment_keys = frozenset({"torch", "threads", "cpu"})

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> TorchCPUBackend:
        # The shipped profile's loop (60 repeats, >= 20 ms) costs seconds a block; fewer repeats
        # keep the contract quick and still order blocks 256x apart.
        profile = HardwareProfile(name="torch-cpu-quick", backend="torch-cpu",
                                  parallelism_factor=16,
                                  settings={"threads": 1, "warmup": 2, "repeats": 15,
                                            "min_time_ms": 5})
        backend = create_backend(profile)
        assert isinstance(backend, TorchCPUBackend)
        return backend

    def test_environment_values(self, backend: TorchCPUBackend) -> None:
        env = backend.environment()
        assert env["torch"] == torch.__version__ and env["threads"] == "1" and env["cpu"]


def test_cpu_batch_setting_is_used() -> None:
    one = TorchCPUBackend(_profile("torch-cpu", batch=1))
    many = TorchCPUBackend(_profile("torch-cpu", batch=16))
    assert many.measure_block(WIDE).latency_ms > one.measure_block(WIDE).latency_ms


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_unavailable_without_gpu() -> None:
    assert TorchCUDABackend.available() == (False, "no CUDA device")
    with pytest.raises(ValueError, match="no CUDA device"):
        create_backend("torch-cuda-fp16")
    assert TorchCUDABackend(load_profile("torch-cuda-fp16")).environment()["gpu"] == "none"


@needs_cuda
class TestTorchCUDAContract(BackendContract):
    # At batch 1 small blocks are launch-bound on a GPU: the heavy block must be clearly
    # compute-bound (a 256-channel 3x3 conv at 448x448, ~118 GMAC).
    heavy = BlockSpec("heavy", "conv", 256, 256, 256, 3, 1, 448)
    environment_keys = frozenset({"torch", "dtype", "gpu"})

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> TorchCUDABackend:
        backend = create_backend("torch-cuda-fp16")
        assert isinstance(backend, TorchCUDABackend)
        return backend

    def test_environment_values(self, backend: TorchCUDABackend) -> None:
        env = backend.environment()
        assert env["dtype"] == "fp16" and env["gpu"] == torch.cuda.get_device_name(0)

    def test_restores_cudnn_benchmark(self, backend: TorchCUDABackend) -> None:
        before = torch.backends.cudnn.benchmark
        backend.measure_block(BY_NAME["stem"])
        assert torch.backends.cudnn.benchmark == before


@needs_cuda
def test_cuda_more_work_is_slower() -> None:
    # At batch 1 small blocks are launch-bound on a GPU; 64x the batch of a 256x wider conv at
    # 4x the resolution is clearly compute-bound.
    small = TorchCUDABackend(_profile("torch-cuda", batch=1))
    large = TorchCUDABackend(_profile("torch-cuda", batch=64))
    heavy = BlockSpec("heavy", "conv", 128, 128, 128, 3, 1, 64)
    assert large.measure_block(heavy).latency_ms > 2 * small.measure_block(TINY).latency_ms


@needs_cuda
def test_cuda_bf16_and_contiguous_layout() -> None:
    backend = TorchCUDABackend(_profile("torch-cuda", dtype="bf16", channels_last=False))
    check_measurement(backend.measure_block(BY_NAME["blocks.3"]))
    check_measurement(backend.measure_block(BY_NAME["classifier"]))
