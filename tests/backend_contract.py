"""The contract every latency back end keeps, written once (as Optuna's samplers share
``optuna/testing/pytest_samplers.py``).

A back end's test module subclasses :class:`BackendContract` as ``Test<Name>Contract`` and
overrides the ``backend`` fixture (class-scoped, so exports, sessions and memos are made once);
it may set ``light``/``heavy`` (a pair whose latencies differ by well over 2x on that target),
``deterministic`` (a simulator: repeatable to the bit, no spread) and ``environment_keys``.
A test that does not hold on one target is overridden in its subclass, with the reason.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from estimators.backends import BACKENDS, Backend, Measurement
from estimators.profiles import list_profiles, load_profile
from searchspaces.genome import Architecture
from searchspaces.layers import HEAD_BLOCK_KINDS, BlockSpec, decompose

# Every block kind once: stem, IBN with expansion 1 and 6, fused IBN, conv, head, pool and the
# classifier (which takes (N, cin)). Small, so that exports and simulations stay few.
ARCH = Architecture.from_string("r32_w1.0_d8:stem_c16_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s2-"
                                "fibn_k3_e4_c32_r1_s2-conv_k3_c32_r1_s1-head_c128")
BLOCKS = decompose(ARCH, num_classes=10)
KINDS = {"stem", "ibn", "fibn", "conv", "head", "pool", "classifier"}
# The same trunk with a two-scale detection head and an LR-ASPP head whose skip reads stride 4:
# every task-head block kind once (dethead x2, lraspp, segskip).
TRUNK = ARCH.to_string().rsplit("-", 1)[0]
HEAD_ARCHS = (Architecture.from_string(f"{TRUNK}-det_c32_n2"),
              Architecture.from_string(f"{TRUNK}-seg_c32_o4"))
HEAD_BLOCKS = [b for arch in HEAD_ARCHS for b in decompose(arch, num_classes=3)
               if b.kind in HEAD_BLOCK_KINDS]
TINY = BlockSpec("tiny", "conv", 8, 8, 8, 3, 1, 16)
WIDE = BlockSpec("wide", "conv", 128, 128, 128, 3, 1, 16)  # 256x the MACs of TINY


def check_measurement(m: Measurement) -> None:
    assert isinstance(m, Measurement)
    assert m.latency_ms > 0 and math.isfinite(m.latency_ms)
    assert m.spread_ms >= 0 and math.isfinite(m.spread_ms)


class BackendContract:
    light: ClassVar[BlockSpec] = TINY
    heavy: ClassVar[BlockSpec] = WIDE
    deterministic: ClassVar[bool] = False
    environment_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys beyond the base class's that this back end's ``environment()`` must record."""

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        raise NotImplementedError("a BackendContract subclass overrides the backend fixture")

    def test_is_the_registered_back_end_of_its_profile(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert backend.profile.backend == backend.name
        assert BACKENDS[backend.name]() is type(backend)
        assert type(backend).available() == (True, "")

    def test_profile_for_another_back_end_raises(self, backend: Backend) -> None:
        others = [p for p in map(load_profile, list_profiles()) if p.backend != backend.name]
        assert others
        for other in others:
            with pytest.raises(ValueError, match=f"not '{backend.name}'") as err:
                type(backend)(other)
            assert "\n" not in str(err.value)

    def test_every_block_kind_measures_positive_and_finite(self, backend: Backend) -> None:
        assert {b.kind for b in BLOCKS} == KINDS
        measured = backend.measure_blocks(BLOCKS)
        assert len(measured) == len(BLOCKS)
        for m in measured:
            check_measurement(m)

    def test_task_heads_measure_positive_and_finite(self, backend: Backend) -> None:
        """The blocks of a detection and a segmentation head, and the whole networks, measure
        like every other (a ``segskip`` block on its own adds a stand-in for the high branch)."""
        assert {b.kind for b in HEAD_BLOCKS} == set(HEAD_BLOCK_KINDS)
        for m in backend.measure_blocks(HEAD_BLOCKS):
            check_measurement(m)
        for arch in HEAD_ARCHS:
            check_measurement(backend.measure_network(arch, num_classes=3))

    def test_more_work_is_slower(self, backend: Backend) -> None:
        light, heavy = backend.measure_block(self.light), backend.measure_block(self.heavy)
        check_measurement(light)
        assert heavy.latency_ms > 2 * light.latency_ms

    def test_measure_blocks_keeps_order_and_scale(self, backend: Backend) -> None:
        """Results come back in input order (a back end may time a group round-robin), and the
        heavy block still measures slower inside the group."""
        group = backend.measure_blocks([self.light, self.heavy, self.light])
        assert len(group) == 3
        for m in group:
            check_measurement(m)
        assert group[1].latency_ms > 2 * max(group[0].latency_ms, group[2].latency_ms)

    def test_network_slower_than_its_largest_block(self, backend: Backend) -> None:
        largest = max(m.latency_ms for m in backend.measure_blocks(BLOCKS))
        network = backend.measure_network(ARCH, num_classes=10)
        check_measurement(network)
        assert network.latency_ms > largest

    def test_repeat_measurement(self, backend: Backend) -> None:
        """A simulator gives the same value every time, with no spread; a real device reports
        its noise (the interquartile range of its repeats) instead."""
        first, again = backend.measure_block(BLOCKS[1]), backend.measure_block(BLOCKS[1])
        check_measurement(first)
        check_measurement(again)
        if self.deterministic:
            assert first == again and first.spread_ms == 0.0

    def test_environment(self, backend: Backend) -> None:
        env = backend.environment()
        assert env["backend"] == backend.name and env["profile"] == backend.profile.name
        assert {"python", "machine"} | self.environment_keys <= set(env)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())

    def test_leaves_torch_state_alone(self, backend: Backend) -> None:
        """Measuring restores torch's thread count (a CPU back end pins its own) and does not
        draw from torch's global RNG (a search's seeded training would change)."""
        before = torch.get_num_threads()
        other = 3 if before != 3 else 2
        torch.set_num_threads(other)
        try:
            state = torch.random.get_rng_state()
            check_measurement(backend.measure_block(BLOCKS[2]))
            assert torch.get_num_threads() == other
            assert torch.equal(state, torch.random.get_rng_state())
        finally:
            torch.set_num_threads(before)
