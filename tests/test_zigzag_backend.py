"""The ZigZag back end on the shipped accelerator profiles (real ZigZag, no mocks; ~20 s)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

pytest.importorskip("zigzag")
pytest.importorskip("six")  # zigzag.api imports it without declaring it

from backend_contract import BackendContract  # noqa: E402
from estimators.backends import create_backend  # noqa: E402
from estimators.backends.zigzag import ZigZagBackend  # noqa: E402
from estimators.profiles import load_profile  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402
from searchspaces.layers import LAYER_OPS, BlockSpec, LayerSpec, decompose, layers  # noqa: E402

TINY = "r16_w1.0_d8:stem_c16_s1-ibn_k3_e2_c16_r2_s1-fibn_k3_e2_c24_r1_s2-head_c64"


def conv3x3(cout: int, cin: int = 32, res: int = 28) -> LayerSpec:
    return LayerSpec("x", "conv", cin, cout, 3, 1, 1, res, res)


@pytest.fixture(scope="module")
def npu32() -> ZigZagBackend:
    backend = create_backend("npu32")
    assert isinstance(backend, ZigZagBackend)
    return backend


class TestZigZagContract(BackendContract):
    deterministic = True
    environment_keys = frozenset({"zigzag", "accelerator", "mapping", "clock_mhz", "lpf_limit"})

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, npu32: ZigZagBackend) -> ZigZagBackend:
        return npu32  # the module's instance: its memo of layer cycles is shared


@pytest.mark.parametrize("name, p", [("npu32", 32), ("npu16", 16), ("edgetpu", 8)])
def test_profiles_load(name: str, p: int) -> None:
    profile = load_profile(name)
    assert (profile.backend, profile.parallelism_factor) == ("zigzag", p)
    backend = create_backend(profile)
    env = backend.environment()
    assert env["zigzag"].startswith("3.") and env["accelerator"].endswith(".yaml")
    assert env["mapping"].endswith(".yaml") and float(env["clock_mhz"]) > 0


def test_unknown_profile_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="unknown hardware profile 'npu-nope'") as err:
        load_profile("npu-nope")
    assert "\n" not in str(err.value)


def test_latency_steps_at_multiples_of_the_array(npu32: ZigZagBackend) -> None:
    couts = [16, 32, 33, 48, 64, 65]
    c = dict(zip(couts, npu32.layer_cycles(conv3x3(k) for k in couts)))
    assert c[33] > 1.5 * c[32] and c[65] > 1.3 * c[64]  # the steps
    assert c[32] == pytest.approx(c[16], rel=0.05)  # flat within a step
    assert c[64] == pytest.approx(c[33], rel=0.05) and c[48] == pytest.approx(c[33], rel=0.05)


def test_depthwise_uses_the_array(npu32: ZigZagBackend) -> None:
    dense = conv3x3(32)
    dw = LayerSpec("d", "dwconv", 32, 32, 3, 1, 32, 28, 28)
    c_dw, c_dense = npu32.layer_cycles([dw, dense])
    assert c_dw < dw.macs / 32  # more than one array row busy on average (a 1-PE mapping: ~x32)
    ratio = (c_dw / dw.macs) / (c_dense / dense.macs)
    assert 1 <= ratio < 20, f"depthwise costs {ratio:.1f}x a dense conv per MAC"


def test_block_is_the_sum_of_its_layers(npu32: ZigZagBackend) -> None:
    block = BlockSpec("blocks.0", "ibn", 16, 16, 32, 3, 1, 8, 2)
    parts = npu32.layer_latencies_ms(block.layers())
    assert len(parts) == 4 and all(p > 0 for p in parts)  # pw, dw, pwl, add
    m = npu32.measure_block(block)
    assert m.latency_ms == pytest.approx(sum(parts), rel=1e-12) and m.spread_ms == 0.0
    assert m.latency_ms == pytest.approx(sum(npu32.layer_cycles(block.layers())) / 800e3)


def test_network_is_one_zigzag_run_and_the_sum_of_its_blocks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    arch = Architecture.from_string(TINY)
    backend = create_backend("npu32")
    handlers = list(logging.getLogger().handlers)

    def forbidden(*_: object) -> None:
        raise AssertionError("measure_network must not call measure_block")

    monkeypatch.setattr(backend, "measure_block", forbidden)
    net = backend.measure_network(arch, num_classes=10)
    monkeypatch.undo()
    assert net.latency_ms > 0 and net.spread_ms == 0.0
    assert backend.zigzag_calls == 1  # all the network's layer shapes in one workload
    assert logging.getLogger().handlers == handlers  # ZigZag's basicConfig undone
    blocks = sum(backend.measure_block(b).latency_ms for b in decompose(arch, num_classes=10))
    assert blocks == pytest.approx(net.latency_ms, rel=1e-9)
    assert backend.zigzag_calls == 1  # every block layer came from the memo
    start = time.perf_counter()
    again = backend.measure_network(arch, num_classes=10)
    assert time.perf_counter() - start < 0.05 and again == net


def test_disk_cache_survives_a_new_instance(tmp_path: Path, npu32: ZigZagBackend) -> None:
    block = BlockSpec("blocks.1", "fibn", 8, 16, 16, 3, 2, 8, 2)
    first = ZigZagBackend(npu32.profile, cache_dir=tmp_path)
    value = first.measure_block(block)
    (path,) = tmp_path.glob("zigzag-npu32-*.json")
    data = json.loads(path.read_text())
    assert data["unit"] == "cycles" and len(data["cycles"]) == len(block.layers())
    second = ZigZagBackend(npu32.profile, cache_dir=tmp_path)
    assert second.measure_block(block) == value and second.zigzag_calls == 0


def test_all_layer_ops_are_modelled(npu32: ZigZagBackend) -> None:
    arch = Architecture.from_string(TINY)
    ops = {layer.op for layer in layers(arch, num_classes=10)}
    trunk = TINY.rsplit("-", 1)[0]
    for head in (trunk + "-det_c32_n2", trunk.replace("_s1-", "_s2-", 1) + "-seg_c32_o4"):
        ops |= {layer.op for layer in layers(Architecture.from_string(head), num_classes=3)}
    assert ops == set(LAYER_OPS)
    assert all(c > 0 for c in npu32.layer_cycles(
        LayerSpec("x", op, 16, 16, 1, 1, 16 if op == "dwconv" else 1, 8,
                  16 if op == "resize" else 8) for op in ops))
    with pytest.raises(ValueError, match="unknown layer op"):
        npu32.layer_cycles([LayerSpec("x", "softmax", 8, 8, 1, 1, 1, 1, 1)])


def test_task_head_ops(npu32: ZigZagBackend) -> None:
    """A prediction conv costs what a conv does (its bias is free); LR-ASPP's gate product
    moves the map and the output, a third less than a residual add, which moves two maps; a
    bilinear resize costs in proportion to its output, not its input."""
    conv, pconv, add, mul = npu32.layer_cycles(
        LayerSpec("x", op, 64, 64, 1, 1, 1, 28, 28) for op in ("conv", "pconv", "add", "mul"))
    assert pconv == conv
    assert mul == pytest.approx(2 / 3 * add, rel=0.05)
    small, large, wide_in = npu32.layer_cycles(
        LayerSpec("x", "resize", 21, 21, 1, 1, 1, r, o) for r, o in ((7, 28), (28, 112), (14, 112)))
    assert large == pytest.approx(16 * small, rel=0.15)  # 16x the output elements
    assert wide_in == pytest.approx(large, rel=0.1)  # 4x the input, the same output
