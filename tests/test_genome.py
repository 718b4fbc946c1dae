from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchspaces.baselines import BASELINES, mobilenetv2
from searchspaces.genome import Architecture, Stage, make_divisible
from searchspaces.spaces import get_space

MBV2 = (
    "r224_w1.0_d8:stem_c32_s2-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s2-ibn_k3_e6_c32_r3_s2-"
    "ibn_k3_e6_c64_r4_s2-ibn_k3_e6_c96_r3_s1-ibn_k3_e6_c160_r3_s2-ibn_k3_e6_c320_r1_s1-head_c1280"
)


def test_mobilenetv2_string_is_the_documented_one() -> None:
    assert mobilenetv2().to_string() == MBV2
    assert Architecture.from_string(MBV2) == mobilenetv2()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_round_trip(name: str) -> None:
    arch = BASELINES[name]()
    text = arch.to_string()
    assert Architecture.from_string(text) == arch
    assert Architecture.from_string(text).to_string() == text


def test_token_order_is_free_but_output_is_canonical() -> None:
    shuffled = MBV2.replace("ibn_k3_e1_c16_r1_s1", "ibn_s1_r1_c16_e1_k3").replace(
        "r224_w1.0_d8", "d8_r224_w1.0")
    assert Architecture.from_string(shuffled).to_string() == MBV2


def test_conv_stage_has_no_expansion_token() -> None:
    stage = Stage("conv", 5, 1, 48, 2, 1)
    assert stage.to_string() == "conv_k5_c48_r2_s1"
    assert Stage.from_string("conv_k5_c48_r2_s1") == stage


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (MBV2.replace("ibn_k3_e1", "ibx_k3_e1"), "'ibx'"),
        (MBV2.replace("e6_c24", "q6_c24"), "'q6'"),
        (MBV2.replace("k3_e6_c32", "k3_e6_c3x2"), "'c3x2'"),
        (MBV2.replace("r224", "r224.5"), "'r224.5'"),
        (MBV2.replace("c24_r2_s2", "c24_r2_s3"), "stride"),
        (MBV2.replace("c24_r2_s2", "c24_s2"), "lacks r"),
        (MBV2.replace("ibn_k3_e6_c24", "ibn_k4_e6_c24"), "kernel"),
        (MBV2.replace("stem_c32_s2", "stm_c32_s2"), "stem"),
        (MBV2.replace("head_c1280", "head_x1280"), "'x1280'"),
        (MBV2.replace("-head_c1280", ""), "head"),
        (MBV2.replace(":", "|"), "architecture string"),
        (MBV2.replace("_w1.0", ""), "lacks w"),
        (MBV2.replace("_w1.0", "_w1.0_w2.0"), "repeats key"),
        ("conv_k3_e6_c8_r1_s1", "architecture string"),
        (MBV2.replace("ibn_k3_e1_c16_r1_s1", "conv_k3_e6_c16_r1_s1"), "'e6'"),
    ],
)
def test_parse_errors_name_the_offending_token(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")) as info:
        Architecture.from_string(text)
    assert "\n" not in str(info.value)


def test_make_divisible_matches_torchvision() -> None:
    from torchvision.models._utils import _make_divisible

    for value in np.linspace(1, 2000, 777):
        for divisor in (1, 8, 16, 32):
            assert make_divisible(value, divisor) == _make_divisible(value, divisor)


def test_architecture_is_frozen_and_hashable() -> None:
    arch = mobilenetv2()
    with pytest.raises(AttributeError):
        arch.resolution = 128  # type: ignore[misc]
    assert len({arch, mobilenetv2(), mobilenetv2(0.5)}) == 2


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(0, 6),
       space=st.sampled_from(["mbv2", "mbv2-small"]), p=st.sampled_from([8, 16, 32]),
       curated=st.booleans())
def test_round_trip_of_sampled_and_mutated(seed: int, steps: int, space: str, p: int,
                                           curated: bool) -> None:
    sp = get_space(space, p, curated)
    rng = np.random.default_rng(seed)
    arch = sp.sample(rng)
    for _ in range(steps + 1):
        text = arch.to_string()
        again = Architecture.from_string(text)
        assert again == arch
        assert again.to_string() == text
        arch = sp.mutate(arch, rng)
