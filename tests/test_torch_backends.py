"""PyTorch back ends: real measurements on this CPU (and on a GPU where there is one)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from estimators.backends import create_backend, torch_backends
from estimators.backends.base import Measurement
from estimators.backends.timing import (
    LoopSettings,
    pinned_to_core,
    resolve_pin_core,
    summarize,
    time_host,
)
from estimators.backends.torch_backends import (
    TorchCPUBackend,
    TorchCUDABackend,
    prepare_for_inference,
    time_cuda_graph,
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
SAMPLE = [BY_NAME[n] for n in ("stem", "blocks.1", "blocks.3", "head", "pool", "classifier")]
TINY = BlockSpec("tiny", "conv", 8, 8, 8, 3, 1, 16)
WIDE = BlockSpec("wide", "conv", 128, 128, 128, 3, 1, 16)  # 256x the MACs of TINY

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="this OS cannot pin a process to a core")


def _profile(backend: str, **settings: object) -> HardwareProfile:
    return HardwareProfile("test", backend, 8, settings=dict(settings))


def _check(m: Measurement) -> None:
    assert isinstance(m, Measurement)
    assert m.latency_ms > 0 and math.isfinite(m.latency_ms)
    assert m.spread_ms >= 0 and math.isfinite(m.spread_ms)


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


@pytest.fixture(scope="module")
def cpu() -> TorchCPUBackend:
    backend = create_backend("torch-cpu")
    assert isinstance(backend, TorchCPUBackend)
    return backend


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
    assert settings.timing == "eager"  # the eager baseline keeps its meaning


@pytest.mark.parametrize(("name", "batch"), [("h200-fp16", 1), ("h200-fp16-b32", 32)])
def test_h200_profiles_load_without_a_gpu(name: str, batch: int) -> None:
    backend = TorchCUDABackend(load_profile(name))
    assert backend.settings.timing == "graph" and backend.settings.repeats >= 50
    assert backend.settings.batch == batch and backend.profile.parallelism_factor == 8
    env = backend.environment()
    assert env["timing"] == "graph" and env["batch"] == str(batch)


def test_graph_timing_is_the_default() -> None:
    assert TorchCUDABackend(_profile("torch-cuda")).settings.timing == "graph"


@pytest.mark.parametrize(("cls", "other"), [(TorchCPUBackend, "onnxruntime-cpu"),
                                            (TorchCPUBackend, "torch-cuda-fp16"),
                                            (TorchCUDABackend, "torch-cpu")])
def test_profile_for_another_backend_raises(cls: type, other: str) -> None:
    with pytest.raises(ValueError, match="not"):
        cls(load_profile(other))


@pytest.mark.parametrize(("settings", "key"), [
    ({"thread": 2}, "thread"),
    ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
    ({"repeats": "many"}, "repeats"),
    ({"repeats": 1}, "repeats"),
    ({"min_time_ms": -1}, "min_time_ms"),
    ({"batch": 0}, "batch"),
    ({"pin_core": "first"}, "pin_core"),
    ({"pin_core": -1}, "pin_core"),
    ({"pin_core": 1.0}, "pin_core"),
    ({"pin_core": True}, "pin_core"),
    ({"pin_core": 0, "threads": 2}, "pin_core"),
])
def test_bad_cpu_settings_raise(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key) as info:
        TorchCPUBackend(_profile("torch-cpu", **settings))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("settings", "key"), [({"dtype": "fp8"}, "dtype"),
                                               ({"channels_last": "yes"}, "channels_last"),
                                               ({"threads": 1}, "threads"),
                                               ({"timing": "replay"}, "timing"),
                                               ({"timing": 1}, "timing")])
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


def test_time_cuda_graph_needs_a_cuda_input() -> None:
    calls = []
    with pytest.raises(ValueError, match="CUDA device"):
        time_cuda_graph(calls.append, torch.zeros(1, 3), LoopSettings())
    assert calls == []  # nothing ran


# -- core pinning -----------------------------------------------------------------------------
@needs_affinity
def test_pin_core_auto_is_the_last_allowed_core_and_is_restored() -> None:
    allowed = os.sched_getaffinity(0)
    core = resolve_pin_core("auto")
    assert core == max(allowed) and resolve_pin_core("none") is None
    assert resolve_pin_core(min(allowed)) == min(allowed)
    with pinned_to_core(core):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == allowed
    with pytest.raises(RuntimeError), pinned_to_core(core):
        raise RuntimeError("restored on errors too")
    assert os.sched_getaffinity(0) == allowed


@needs_affinity
def test_pin_core_outside_the_allowed_cores_raises() -> None:
    outside = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(ValueError, match="may run only on cores"):
        TorchCPUBackend(_profile("torch-cpu", pin_core=outside))


@needs_affinity
def test_cpu_measures_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both timing loops run pinned to the configured core; the affinity comes back after."""
    allowed = os.sched_getaffinity(0)
    seen = []

    def fake_time_host(fn: object, loop: LoopSettings) -> list[float]:
        seen.append(os.sched_getaffinity(0))
        return [1.0, 1.0, 1.0]

    def fake_interleaved(fns: list, loop: LoopSettings) -> list[list[float]]:
        seen.append(os.sched_getaffinity(0))
        return [[1.0, 1.0, 1.0] for _ in fns]

    monkeypatch.setattr(torch_backends, "time_host", fake_time_host)
    monkeypatch.setattr(torch_backends, "time_host_interleaved", fake_interleaved)
    backend = TorchCPUBackend(_profile("torch-cpu", pin_core="auto"))
    backend.measure_block(TINY)
    backend.measure_blocks([TINY, WIDE])
    assert seen == [{max(allowed)}] * 2 and os.sched_getaffinity(0) == allowed
    assert backend.environment()["pin_core"] == str(max(allowed))
    seen.clear()
    unpinned = TorchCPUBackend(_profile("torch-cpu", pin_core="none"))
    unpinned.measure_block(TINY)
    assert seen == [allowed] and unpinned.environment()["pin_core"] == "none"


def test_pin_core_where_the_os_cannot_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    with pytest.warns(RuntimeWarning, match="measuring unpinned"):
        backend = TorchCPUBackend(_profile("torch-cpu", pin_core=0, repeats=3, min_time_ms=0))
    assert backend.core is None and backend.environment()["pin_core"] == "none"
    _check(backend.measure_block(TINY))


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


# -- CPU measurements -------------------------------------------------------------------------
def test_cpu_blocks_positive_and_finite(cpu: TorchCPUBackend) -> None:
    for m in cpu.measure_blocks(SAMPLE):
        _check(m)


def test_cpu_more_work_is_slower(cpu: TorchCPUBackend) -> None:
    tiny, wide = cpu.measure_block(TINY), cpu.measure_block(WIDE)
    assert wide.latency_ms > 2 * tiny.latency_ms


def test_cpu_interleaved_group_keeps_order_and_scale(cpu: TorchCPUBackend) -> None:
    """measure_blocks times blocks round-robin; results stay in input order and a block with
    10x+ the work still measures slower inside the group."""
    group = cpu.measure_blocks([TINY, WIDE, TINY])
    assert len(group) == 3
    for m in group:
        _check(m)
    assert group[1].latency_ms > 2 * max(group[0].latency_ms, group[2].latency_ms)


def test_cpu_network_slower_than_its_largest_block(cpu: TorchCPUBackend) -> None:
    largest = max(m.latency_ms for m in cpu.measure_blocks(BLOCKS))
    network = cpu.measure_network(ARCH, num_classes=10)
    _check(network)
    assert network.latency_ms > largest


def test_cpu_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    torch.set_num_threads(other)
    try:
        backend = TorchCPUBackend(_profile("torch-cpu", threads=1, repeats=3, min_time_ms=0))
        _check(backend.measure_block(BY_NAME["blocks.1"]))
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_cpu_measurement_leaves_global_rng_alone(cpu: TorchCPUBackend) -> None:
    state = torch.random.get_rng_state()
    cpu.measure_block(BY_NAME["pool"])
    assert torch.equal(state, torch.random.get_rng_state())


def test_cpu_batch_setting_is_used() -> None:
    one = TorchCPUBackend(_profile("torch-cpu", batch=1))
    many = TorchCPUBackend(_profile("torch-cpu", batch=16))
    assert many.measure_block(WIDE).latency_ms > one.measure_block(WIDE).latency_ms


def test_cpu_environment(cpu: TorchCPUBackend) -> None:
    env = cpu.environment()
    assert env["backend"] == "torch-cpu" and env["profile"] == "torch-cpu"
    assert env["torch"] == torch.__version__ and env["threads"] == "1"
    assert env["cpu"]


# -- CUDA -------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_unavailable_without_gpu() -> None:
    assert TorchCUDABackend.available() == (False, "no CUDA device")
    with pytest.raises(ValueError, match="no CUDA device"):
        create_backend("torch-cuda-fp16")
    assert TorchCUDABackend(load_profile("torch-cuda-fp16")).environment()["gpu"] == "none"


@pytest.fixture(scope="module")
def cuda() -> TorchCUDABackend:
    backend = create_backend("torch-cuda-fp16")
    assert isinstance(backend, TorchCUDABackend)
    return backend


@needs_cuda
def test_cuda_blocks_positive_and_finite(cuda: TorchCUDABackend) -> None:
    assert TorchCUDABackend.available() == (True, "")
    for m in cuda.measure_blocks(SAMPLE):
        _check(m)


@needs_cuda
def test_cuda_more_work_is_slower(cuda: TorchCUDABackend) -> None:
    # At batch 1 small blocks are launch-bound on a GPU; 64x the batch of a 256x wider conv at
    # 4x the resolution is clearly compute-bound.
    small = TorchCUDABackend(_profile("torch-cuda", batch=1))
    large = TorchCUDABackend(_profile("torch-cuda", batch=64))
    heavy = BlockSpec("heavy", "conv", 128, 128, 128, 3, 1, 64)
    assert large.measure_block(heavy).latency_ms > 2 * small.measure_block(TINY).latency_ms


@needs_cuda
def test_cuda_network_slower_than_its_largest_block(cuda: TorchCUDABackend) -> None:
    largest = max(m.latency_ms for m in cuda.measure_blocks(BLOCKS))
    network = cuda.measure_network(ARCH, num_classes=10)
    _check(network)
    assert network.latency_ms > largest


@needs_cuda
def test_cuda_bf16_and_contiguous_layout() -> None:
    backend = TorchCUDABackend(_profile("torch-cuda", dtype="bf16", channels_last=False))
    _check(backend.measure_block(BY_NAME["blocks.3"]))
    _check(backend.measure_block(BY_NAME["classifier"]))


@needs_cuda
def test_cuda_restores_cudnn_benchmark(cuda: TorchCUDABackend) -> None:
    before = torch.backends.cudnn.benchmark
    cuda.measure_block(BY_NAME["stem"])
    assert torch.backends.cudnn.benchmark == before


@needs_cuda
def test_cuda_environment(cuda: TorchCUDABackend) -> None:
    env = cuda.environment()
    assert env["backend"] == "torch-cuda" and env["dtype"] == "fp16"
    assert env["gpu"] == torch.cuda.get_device_name(0)


# -- CUDA graph timing ------------------------------------------------------------------------
IBN = BlockSpec("ibn", "ibn", 32, 32, 192, 3, 1, 28, 6)  # several kernels: launch-bound eager


@needs_cuda
@pytest.mark.parametrize("timing", ["graph", "eager"])
def test_cuda_timings_measure_blocks_and_a_network(timing: str) -> None:
    backend = TorchCUDABackend(_profile("torch-cuda", timing=timing))
    assert backend.environment()["timing"] == timing
    for m in backend.measure_blocks(SAMPLE):
        _check(m)
    _check(backend.measure_network(ARCH, num_classes=10))


@needs_cuda
def test_cuda_graph_not_slower_than_eager_at_batch_1() -> None:
    """An eager call makes the CPU launch every kernel, one after the other; a graph replay
    launches them all at once, so at batch 1 the graph time is the smaller."""
    graph = TorchCUDABackend(_profile("torch-cuda", timing="graph")).measure_block(IBN)
    eager = TorchCUDABackend(_profile("torch-cuda", timing="eager")).measure_block(IBN)
    assert graph.latency_ms <= eager.latency_ms


@needs_cuda
def test_cuda_graph_timing_repeats() -> None:
    """Graph replays repeat to about 1% (blocks) and 0.3% (networks) on an H200; the bounds
    here leave room for a smaller GPU."""
    backend = create_backend("h200-fp16")
    block = backend.measure_block(IBN)
    first, second = (backend.measure_network(ARCH, num_classes=10) for _ in range(2))
    assert block.spread_ms / block.latency_ms < 0.10
    assert first.spread_ms / first.latency_ms < 0.05
    assert max(first.latency_ms, second.latency_ms) / min(first.latency_ms,
                                                           second.latency_ms) < 1.05


@needs_cuda
@pytest.mark.parametrize("name", ["h200-fp16", "h200-fp16-b32"])
def test_h200_profiles_measure(name: str) -> None:
    backend = create_backend(name)
    _check(backend.measure_block(BY_NAME["blocks.3"]))
    _check(backend.measure_network(ARCH, num_classes=10))
    assert backend.environment()["gpu"] == torch.cuda.get_device_name(0)


class _Counted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(64, 64, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x)


@needs_cuda
def test_time_cuda_graph_replays_without_python_and_frees_the_graph() -> None:
    model = _Counted().cuda().eval()
    x = torch.randn(1, 64, 128, 128, device="cuda")  # a 4 MiB output: a kept pool would show
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        samples = time_cuda_graph(model, x, LoopSettings(warmup=3, repeats=20, min_time_ms=0))
    assert len(samples) == 20 and all(s > 0 and math.isfinite(s) for s in samples)
    assert model.calls == 3 + 1  # the warm-up calls and the capture; replays run no Python
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < 2**20


# -- time_cuda_graph's steps, without a GPU ---------------------------------------------------
class _OnDevice(torch.Tensor):
    """A CPU tensor that says it is on a CUDA device (what the argument check looks at)."""

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True


class _FakeCuda:
    """Stands in for the parts of ``torch.cuda`` that :func:`time_cuda_graph` uses and logs
    what it is asked to do, so its order of steps can be checked on a machine with no GPU."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[str] = []
        self.where = "main"
        self.side: object = None
        fake = self

        class Stream:
            def __init__(self) -> None:
                fake.side = self

            def wait_stream(self, other: object) -> None:
                fake.log.append("side waits for main")

        class Main:
            def wait_stream(self, other: object) -> None:
                fake.log.append("main waits for side")

        class Graph:
            def replay(self) -> None:
                fake.log.append("replay")

            def reset(self) -> None:
                fake.log.append("reset")

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                assert enable_timing

            def record(self) -> None:
                pass

            def synchronize(self) -> None:
                pass

            def elapsed_time(self, other: object) -> float:
                return 0.5

        @contextlib.contextmanager
        def stream(s: object) -> Iterator[None]:
            assert s is fake.side
            fake.where = "side"
            yield
            fake.where = "main"

        @contextlib.contextmanager
        def graph(g: object, stream: object = None) -> Iterator[None]:
            assert stream is fake.side, "capture must use the warm-up stream"
            fake.where = "capture"
            yield
            fake.where = "main"

        for name, value in {"Stream": Stream, "current_stream": Main, "stream": stream,
                            "CUDAGraph": Graph, "graph": graph, "Event": Event,
                            "synchronize": lambda: None}.items():
            monkeypatch.setattr(torch.cuda, name, value)

    def model(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(f"call on {self.where}")
        return x


@pytest.mark.parametrize("warmup", [0, 3])
def test_time_cuda_graph_steps(monkeypatch: pytest.MonkeyPatch, warmup: int) -> None:
    cuda = _FakeCuda(monkeypatch)
    x = torch.zeros(2).as_subclass(_OnDevice)
    samples = time_cuda_graph(cuda.model, x, LoopSettings(warmup=warmup, repeats=4,
                                                          min_time_ms=0))
    assert samples == [0.5] * 4
    assert cuda.log == (["side waits for main"] + ["call on side"] * max(warmup, 1)
                        + ["main waits for side", "call on capture"]
                        + ["replay"] * (warmup + 4) + ["reset"])


def test_time_cuda_graph_frees_the_graph_when_capture_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = _FakeCuda(monkeypatch)

    def model(x: torch.Tensor) -> torch.Tensor:
        if cuda.where == "capture":
            raise RuntimeError("operation not permitted when stream is capturing")
        return x

    with pytest.raises(RuntimeError, match="capturing"):
        time_cuda_graph(model, torch.zeros(2).as_subclass(_OnDevice), LoopSettings())
    assert cuda.log[-1] == "reset" and "replay" not in cuda.log
