from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchspaces.genome import Architecture
from searchspaces.spaces import SPACES, SearchSpace, StageSkeleton, get_space


def tiny_space(curated: bool = True) -> SearchSpace:
    return SearchSpace(
        name="tiny",
        skeleton=(StageSkeleton(8, 1, 1), StageSkeleton(16, 2, 2)),
        resolutions=(16, 24),
        width_mults=(0.5, 1.0),
        parallelism_factor=8,
        curated=curated,
        head_channels=32,
        stem_channels=8,
        kernels=(3, 5),
        expansions=(1, 4),
    )


@pytest.mark.parametrize("curated", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_size_equals_brute_force_enumeration(curated: bool) -> None:
    space = tiny_space(curated)
    dims = space.dimensions()
    distinct = set()
    for values in itertools.product(*dims.values()):
        distinct.add(space.from_choices(dict(zip(dims, values))))
    assert len(distinct) == space.size()


def test_uncurated_spans_the_curated_range_in_steps_of_one() -> None:
    for p in (8, 16, 32):
        cur, unc = get_space("mbv2", p, True), get_space("mbv2", p, False)
        for c_choices, u_choices in zip(cur.channel_choices, unc.channel_choices):
            assert set(c_choices) <= set(u_choices)
            assert list(u_choices) == list(range(u_choices[0], u_choices[-1] + 1))
            assert all(c % p == 0 for c in c_choices) and c_choices
        assert cur.size() < unc.size()
        assert unc.channel_divisor == 1 and cur.channel_divisor == p


def test_channel_range_is_near_the_baseline() -> None:
    space = get_space("mbv2", 8, True)
    assert space.channel_choices[6] == tuple(range(160, 481, 8))
    assert space.channel_choices[1] == (16, 24, 32)
    assert get_space("mbv2", 32, True).channel_choices[0] == (32,)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.sampled_from([4, 8, 16, 32, 64]),
       space=st.sampled_from(sorted(SPACES)))
def test_curated_channels_are_multiples_of_p(seed: int, p: int, space: str) -> None:
    sp = get_space(space, p, True)
    rng = np.random.default_rng(seed)
    arch = sp.sample(rng)
    for _ in range(5):
        assert arch.channel_divisor == p
        assert all(s.channels % p == 0 for s in arch.stages)
        assert arch.scaled_stem % p == 0 and arch.scaled_head % p == 0
        assert all(arch.scaled(s.channels) % p == 0 for s in arch.stages)
        arch = sp.mutate(arch, rng)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from(sorted(SPACES)),
       curated=st.booleans())
def test_mutation_is_one_small_valid_change(seed: int, space: str, curated: bool) -> None:
    sp = get_space(space, 16, curated)
    rng = np.random.default_rng(seed)
    arch = sp.sample(rng)
    sp.validate(arch)
    child = sp.mutate(arch, rng)
    sp.validate(child)
    a, b = sp.to_choices(arch), sp.to_choices(child)
    changed = {k for k in a if a[k] != b[k]}
    assert changed, "a mutation must change the architecture"
    stages = {k.split("_")[0] for k in changed}
    assert len(stages) == 1, changed
    if len(changed) == 2:  # switching to/from conv resets the expansion too
        assert {k.split("_", 1)[1] for k in changed} == {"block", "expansion"}
    else:
        assert len(changed) == 1
    (key,) = sorted(changed)[:1]
    dim = key.split("_", 1)[1] if key.startswith("s") and key[1].isdigit() else key
    if dim in ("channels", "repeats", "width_mult", "resolution"):
        choices = sorted(sp.dimensions()[key])
        assert abs(choices.index(a[key]) - choices.index(b[key])) == 1


def test_choices_round_trip_and_errors(rng: np.random.Generator) -> None:
    sp = get_space("mbv2", 8, False)
    for _ in range(50):
        arch = sp.sample(rng)
        assert sp.from_choices(sp.to_choices(arch)) == arch
    choices = sp.to_choices(arch)
    with pytest.raises(ValueError, match="lack s3_kernel"):
        sp.from_choices({k: v for k, v in choices.items() if k != "s3_kernel"})
    with pytest.raises(ValueError, match="unknown choices bogus"):
        sp.from_choices({**choices, "bogus": 1})
    with pytest.raises(ValueError, match="stage 2 channels 999"):
        sp.from_choices({**choices, "s2_channels": 999})


def test_sampling_is_reproducible_and_covers_choices() -> None:
    sp = get_space("mbv2", 32, True)
    a = [sp.sample(np.random.default_rng(7)).to_string() for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    seen = [sp.to_choices(sp.sample(rng)) for _ in range(400)]
    for key, choices in sp.dimensions().items():
        assert {s[key] for s in seen} == set(choices), key


def test_validate_names_the_problem() -> None:
    sp = get_space("mbv2", 32, True)
    base = sp.baseline()
    sp.validate(base)
    text = base.to_string()
    cases = {
        text.replace("r224", "r200"): "resolution 200",
        text.replace("_d32", "_d8"): "channel divisor 8",
        text.replace("ibn_k3_e6_c64_r4_s2", "ibn_k7_e6_c64_r4_s2"): "stage 3 kernel 7",
        text.replace("ibn_k3_e6_c64_r4_s2", "ibn_k3_e6_c65_r4_s2"): "stage 3 channels 65",
        text.replace("ibn_k3_e6_c64_r4_s2", "ibn_k3_e6_c64_r9_s2"): "stage 3 repeats 9",
        text.replace("ibn_k3_e6_c64_r4_s2", "ibn_k3_e2_c64_r4_s2"): "stage 3 expansion 2",
        text.replace("-ibn_k3_e6_c320_r1_s1", ""): "6 stages",
    }
    for bad, message in cases.items():
        with pytest.raises(ValueError, match=message):
            sp.validate(Architecture.from_string(bad))
        assert not sp.contains(Architecture.from_string(bad))


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match="unknown space 'nope'; known spaces: mbv2"):
        get_space("nope")
    with pytest.raises(ValueError, match="parallelism factor"):
        get_space("mbv2", 0)


def test_describe_is_json_ready() -> None:
    import json

    info = get_space("mbv2-small", 16, False).describe()
    assert json.loads(json.dumps(info)) == info
    assert info["size"] == get_space("mbv2-small", 16, False).size()
    assert info["strides"] == [1, 1, 2, 2, 1, 2, 1]
