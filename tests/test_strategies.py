"""A shared suite every strategy passes (as Optuna's samplers share theirs), plus evolution's
own behaviour on the NAS-Bench-201 table (its benchmark figures: benchmarks/nb201_strategies.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from benchmarks.nb201_data import format_arch, load_nb201, nb201_dimensions
from nas.pareto import hypervolume_2d, normalize
from nas.strategies import Evolution, create_strategy, strategy_names
from searchspaces.spaces import get_space

OBJECTIVES = (("accuracy", "max"), ("latency_ms", "min"))
DICT_SPACE = {"a": (1, 2, 3, 4), "b": ("x", "y", "z"), "c": (0.5, 1.0), "d": (7,)}


def fake_result(config: dict[str, Any]) -> dict[str, float]:
    """A deterministic two-objective function of any config."""
    h = sum(ord(ch) for ch in json.dumps(config, sort_keys=True))
    return {"accuracy": (h * 7919) % 1000 / 1000, "latency_ms": (h * 104729) % 997 / 10 + 1}


def fake_score(config: dict[str, Any], proxy: str) -> float:
    """A deterministic proxy (what nas.proxies.scorer.ProxyScorer is in a search)."""
    return fake_result(config)["accuracy"] + (0.5 if proxy == "synflow" else 0.0)


def fake_cost(config: dict[str, Any]) -> float | None:
    """Predicted latency, None (over a budget) for about a third of the configs."""
    latency = fake_result(config)["latency_ms"]
    return None if latency > 70 else latency


SCREENED = {"score": fake_score, "cost": fake_cost}
SMALL = {"evolution": {"population_size": 6, "sample_size": 3, "gp_after": 20}, "random": {},
         "zeroshot": {"candidates": 12, **SCREENED},
         "hybrid": {"population_size": 6, "sample_size": 3, "children": 4, **SCREENED}}


@pytest.fixture(params=strategy_names(ask_tell=True))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["dict", "mbv2-small"])
def space(request: pytest.FixtureRequest) -> Any:
    return DICT_SPACE if request.param == "dict" else get_space("mbv2-small", 16)


def drive(strategy: Any, n: int,
          result: Callable[[dict[str, Any]], dict[str, float]] = fake_result
          ) -> list[dict[str, Any]]:
    """Ask ``n`` configs one at a time, telling each its ``result``."""
    asked = []
    for _ in range(n):
        config = strategy.ask()
        asked.append(config)
        strategy.tell(config, result(config))
    return asked


def test_configs_are_valid(name: str, space: Any) -> None:
    strategy = create_strategy(name, space, seed=1, **SMALL[name])
    dims = space if isinstance(space, dict) else space.dimensions()
    for config in drive(strategy, 40):
        assert set(config) == set(dims)
        assert all(config[k] in dims[k] for k in dims)
        if not isinstance(space, dict):
            space.validate(space.from_choices(config))


def test_seeded_runs_repeat(name: str, space: Any) -> None:
    def run(seed: int) -> list:
        return drive(create_strategy(name, space, seed=seed, **SMALL[name]), 30)

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_state_round_trip_continues_identically(name: str, space: Any) -> None:
    reference = create_strategy(name, space, seed=3, **SMALL[name])
    expected = drive(reference, 40)
    first = create_strategy(name, space, seed=3, **SMALL[name])
    head = drive(first, 17)
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    resumed = create_strategy(name, space, seed=999, **SMALL[name])
    resumed.load_state_dict(state)
    assert head + drive(resumed, 23) == expected
    with pytest.raises(ValueError, match="state"):
        resumed.load_state_dict({"rng": 1})


def test_failed_trials_and_no_repeats(name: str) -> None:
    strategy = create_strategy(name, DICT_SPACE, seed=0,
                               **({"population_size": 4, "sample_size": 2}
                                  if name == "evolution" else SMALL[name]))
    seen = set()
    for i in range(24):  # the space has exactly 24 configurations
        config = strategy.ask()
        seen.add(json.dumps(config, sort_keys=True))
        strategy.tell(config, None if i % 3 == 0 else fake_result(config))
    assert len(seen) >= 16  # duplicates only once the space runs out of fresh points


def test_factory_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'annealing'; known: evolution"):
        create_strategy("annealing", DICT_SPACE)
    with pytest.raises(ValueError, match="'random' takes no parameter population_size"):
        create_strategy("random", DICT_SPACE, population_size=3)
    with pytest.raises(ValueError, match="sample_size"):
        Evolution(DICT_SPACE, sample_size=50, population_size=10)
    with pytest.raises(ValueError, match="mode"):
        Evolution(DICT_SPACE, objectives=(("accuracy", "up"),))


def test_plain_evolution_children_are_one_mutation_from_the_population() -> None:
    space = get_space("mbv2", 32)
    evo = Evolution(space, OBJECTIVES, population_size=5, sample_size=2, seed=4,
                    surrogate="none")
    drive(evo, 5)
    for _ in range(10):
        members = [c for c, _ in (*evo.population, *evo.archive)]
        child = evo.ask()
        diffs = [sum(child[k] != m[k] for k in child) for m in members]
        assert 1 <= min(diffs) <= 2  # a block change to/from conv also resets the expansion
        evo.tell(child, fake_result(child))


def test_evolution_improves_on_its_start_on_nas_bench_201() -> None:
    """Real accuracy x real Pixel 3 latency, 200 evaluations: the children bred from the
    population reach a front beyond that of the random population they started from, and a
    seed repeats the search. How far (the hypervolume ratio against random search) is a figure:
    ``python benchmarks/nb201_strategies.py --direct --budget 200 --seeds 5
    --strategies evolution,random`` prints it."""
    table = load_nb201()
    acc, lat = table.column("cifar10_val_12ep"), table.column("lat_ms_pixel3")
    norm = normalize(np.column_stack([acc, lat]), [acc.min(), lat.min()], [acc.max(), lat.max()])

    def search(seed: int) -> list[int]:
        strategy = Evolution(nb201_dimensions(), (("acc", "max"), ("lat", "min")),
                             population_size=20, seed=seed)
        rows = []
        for _ in range(200):
            config = strategy.ask()
            r = table.row(format_arch(config))
            strategy.tell(config, {"acc": acc[r], "lat": lat[r]})
            rows.append(r)
        return rows

    rows = search(0)
    start, children = (hypervolume_2d(norm[part], (0.0, 1.0), (True, False))
                       for part in (rows[:20], rows[20:]))
    assert children > start
    assert search(0) == rows
