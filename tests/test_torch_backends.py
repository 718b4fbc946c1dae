"""PyTorch back ends: real measurements on this CPU (and on a GPU where there is one)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from backend_contract import TINY, WIDE, BackendContract, check_measurement
from estimators.backends import create_backend, torch_backends
from estimators.backends.timing import (
    LoopSettings,
    pinned_to_core,
    resolve_pin_core,
    summarize,
    time_host,
    time_host_interleaved,
)
from estimators.backends.torch_backends import (
    TorchCPUBackend,
    TorchCUDABackend,
    prepare_for_inference,
    time_cuda_graph,
    torch_threads,
)
from estimators.build import block_groups, sample_blocks
from estimators.features import block_key, footprint
from estimators.profiles import HardwareProfile, load_profile
from searchspaces.baselines import mobilenetv2
from searchspaces.blocks import block_input_shape, make_module
from searchspaces.layers import BlockSpec, decompose
from searchspaces.model import build_model

ARCH = mobilenetv2(0.35, resolution=32, small_input=True)
BLOCKS = decompose(ARCH, num_classes=10)
BY_NAME = {b.name: b for b in BLOCKS}
SAMPLE = [BY_NAME[n] for n in ("stem", "blocks.1", "blocks.3", "head", "pool", "classifier")]

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="this OS cannot pin a process to a core")


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
    assert not TorchCPUBackend(profile).times_blocks_in_context


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
    ({"pin_core": "first"}, "pin_core"),
    ({"pin_core": -1}, "pin_core"),
    ({"pin_core": 1.0}, "pin_core"),
    ({"pin_core": True}, "pin_core"),
    ({"pin_core": 0, "threads": 2}, "pin_core"),
    ({"statistic": "mean"}, "statistic"),
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


def test_summarize_min_is_the_fastest_repeat_with_the_same_spread() -> None:
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0, 3.0]
    m = summarize(samples, "min")
    assert m.latency_ms == 1.0 and m.spread_ms == summarize(samples).spread_ms
    with pytest.raises(ValueError, match="statistic must be one of median, min, got 'mean'"):
        summarize(samples, "mean")


def test_time_host_runs_warmup_repeats_and_min_time() -> None:
    calls = []
    samples = time_host(lambda: calls.append(1), LoopSettings(warmup=2, repeats=4,
                                                              min_time_ms=0.0))
    assert len(samples) == 4 and len(calls) == 6
    samples = time_host(lambda: None, LoopSettings(warmup=0, repeats=3, min_time_ms=2.0))
    assert len(samples) > 3 and all(s >= 0 for s in samples)


def test_interleaved_rounds_run_each_workload_once_in_fixed_or_shuffled_order() -> None:
    """Every round runs every workload once; fixed, always in the given order; shuffled, in a
    new order each round, and each workload's times still come back in its own list."""
    loop = LoopSettings(warmup=0, repeats=40, min_time_ms=0.0)
    for shuffle in (None, np.random.default_rng(0)):
        calls: list[int] = []
        fns = [lambda i=i, calls=calls: calls.append(i) for i in range(4)]
        samples = time_host_interleaved(fns, loop, shuffle)
        assert [len(s) for s in samples] == [40] * 4
        rounds = [tuple(calls[i:i + 4]) for i in range(0, len(calls), 4)]
        assert all(sorted(r) == [0, 1, 2, 3] for r in rounds) and len(rounds) == 40
        if shuffle is None:
            assert set(rounds) == {(0, 1, 2, 3)}
        else:
            assert len(set(rounds)) > 10  # 24 orders possible
            first = {r[0] for r in rounds}
            assert first == {0, 1, 2, 3}  # no workload always follows the same one
    slow = [lambda: time.sleep(0.002), lambda: None]
    timed = time_host_interleaved(slow, LoopSettings(warmup=0, repeats=5, min_time_ms=0.0),
                                  np.random.default_rng(1))
    assert min(timed[0]) > max(timed[1])  # the sleeper's times stay the sleeper's


def test_cpu_block_order_setting() -> None:
    assert TorchCPUBackend(_profile("torch-cpu")).settings.block_order == "fixed"
    shuffled = TorchCPUBackend(_profile("torch-cpu", block_order="shuffled", repeats=3,
                                        warmup=0, min_time_ms=0))
    assert shuffled.environment()["block_order"] == "shuffled"
    assert [m.latency_ms > 0 for m in shuffled.measure_blocks([TINY, WIDE])] == [True, True]
    with pytest.raises(ValueError, match="block_order"):
        TorchCPUBackend(_profile("torch-cpu", block_order="random"))


def test_cpu_block_groups_of_similar_blocks() -> None:
    assert TorchCPUBackend(_profile("torch-cpu")).settings.block_groups == "sampled"
    similar = _profile("torch-cpu", block_groups="similar")
    assert TorchCPUBackend(similar).environment()["block_groups"] == "similar"
    with pytest.raises(ValueError, match="block_groups"):
        TorchCPUBackend(_profile("torch-cpu", block_groups="sorted"))
    blocks = sample_blocks("mbv2-small", 8, 80, np.random.default_rng(0))
    size = footprint(blocks, 8)
    assert np.all(size > 0) and len(set(size)) > 40
    # as drawn by default: consecutive groups of 8
    drawn = block_groups(blocks, _profile("torch-cpu"))
    assert [b for g in drawn for b in g] == blocks and all(len(g) == 8 for g in drawn[:-1])
    # similar: every block once, each group one size band, the bands in a shuffled order
    grouped = block_groups(blocks, similar)
    assert sorted(block_key(b) for g in grouped for b in g) == sorted(map(block_key, blocks))
    bands = [footprint(g, 8) for g in grouped]
    ranked = sorted(range(len(bands)), key=lambda i: bands[i].min())
    for lower, upper in zip(ranked, ranked[1:]):
        assert bands[lower].max() <= bands[upper].min()
    assert ranked != list(range(len(grouped)))  # not timed smallest first
    assert grouped == block_groups(blocks, similar)  # the same order on a resume
    assert block_groups([], similar) == []


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

    def fake_interleaved(fns: list, loop: LoopSettings, shuffle: object = None
                         ) -> list[list[float]]:
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
    check_measurement(backend.measure_block(TINY))


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


# -- the back-end contract (tests/backend_contract.py) and what is CPU-specific --------------
class TestTorchCPUContract(BackendContract):
    environment_keys = frozenset({"torch", "threads", "pin_core", "cpu"})

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


# -- CUDA -------------------------------------------------------------------------------------
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
    environment_keys = frozenset({"torch", "dtype", "timing", "gpu"})

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


# -- CUDA graph timing ------------------------------------------------------------------------
IBN = BlockSpec("ibn", "ibn", 32, 32, 192, 3, 1, 28, 6)  # several kernels: launch-bound eager


@needs_cuda
@pytest.mark.parametrize("timing", ["graph", "eager"])
def test_cuda_timings_measure_blocks_and_a_network(timing: str) -> None:
    backend = TorchCUDABackend(_profile("torch-cuda", timing=timing))
    assert backend.environment()["timing"] == timing
    for m in backend.measure_blocks(SAMPLE):
        check_measurement(m)
    check_measurement(backend.measure_network(ARCH, num_classes=10))


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
    check_measurement(backend.measure_block(BY_NAME["blocks.3"]))
    check_measurement(backend.measure_network(ARCH, num_classes=10))
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
