"""The strategy adapter inside a real local Ray Tune run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from benchmarks.nb201_data import format_arch, load_nb201, nb201_dimensions  # noqa: E402
from nas.strategies import create_strategy  # noqa: E402
from nas.strategies.tune_adapter import StrategySearcher  # noqa: E402

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]


def lookup(config: dict[str, Any]) -> None:
    """A trial that looks the architecture up (errors on cells whose first edge is 'none')."""
    if config["e10"] == "none":
        raise RuntimeError("simulated training failure")
    table = load_nb201()
    r = table.row(format_arch(config))
    tune.report({"accuracy": float(table.column("cifar10_val_12ep")[r]),
                 "latency_ms": float(table.column("lat_ms_pixel3")[r])})


@pytest.fixture(scope="module")
def local_ray() -> Any:
    here = Path(__file__).resolve().parent
    # workers import this module's trainable by name: give them the repo and tests folders
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20,
             runtime_env={"env_vars": {"PYTHONPATH": f"{here.parent}:{here}"}})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_evolution_runs_under_tune(local_ray: Any, tmp_path: Path) -> None:
    strategy = create_strategy("evolution", nb201_dimensions(), objectives=OBJECTIVES, seed=0,
                               population_size=6, sample_size=3)
    searcher = StrategySearcher(strategy, OBJECTIVES, max_trials=24)
    tuner = tune.Tuner(
        lookup,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, metric="accuracy",
                                    mode="max", reuse_actors=True, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="evo", verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 24
    assert strategy.told == 24 and not searcher.live
    asked = [json.loads(key) for key in strategy.seen]
    assert len(asked) == 24
    assert results.num_errors == sum(c["e10"] == "none" for c in asked)
    assert len(strategy.population) == 6
    assert all(c["e10"] != "none" for c, _ in strategy.population)


def test_save_and_restore(tmp_path: Path) -> None:
    strategy = create_strategy("evolution", nb201_dimensions(), objectives=OBJECTIVES, seed=1,
                               population_size=4, sample_size=2)
    searcher = StrategySearcher(strategy, OBJECTIVES)
    for i in range(6):
        searcher.suggest(f"t{i}")
        if i < 5:
            searcher.on_trial_complete(f"t{i}", {"accuracy": i, "latency_ms": 10 - i})
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    clone = StrategySearcher(create_strategy("evolution", nb201_dimensions(),
                                             objectives=OBJECTIVES, seed=99,
                                             population_size=4, sample_size=2), OBJECTIVES)
    clone.restore(str(path))
    assert clone.live == searcher.live and clone.suggested == 6
    assert [clone.suggest(f"n{i}") for i in range(5)] == [
        searcher.suggest(f"n{i}") for i in range(5)]
    assert json.loads(path.read_text())["suggested"] == 6
    path.write_text("{torn")
    with pytest.raises(ValueError, match="cannot restore searcher"):
        clone.restore(str(path))
    assert StrategySearcher(strategy, OBJECTIVES, max_trials=0).suggest("x") == "FINISHED"


def test_a_trial_suggested_after_the_saved_state_is_still_told(tmp_path: Path) -> None:
    """A driver killed between Tune's state writes restores a trial this searcher's saved
    state never suggested; when it completes, Tune's result carries its config (flattened to
    ``config/<name>`` keys, as Tune hands results to searchers)."""
    from ray.tune.utils import flatten_dict

    def fresh() -> StrategySearcher:
        return StrategySearcher(create_strategy("evolution", nb201_dimensions(),
                                                objectives=OBJECTIVES, seed=1,
                                                population_size=4, sample_size=2), OBJECTIVES)

    before = fresh()
    config = before.suggest("t0")
    path = tmp_path / "searcher.json"
    fresh().save(str(path))  # the state saved before t0 was suggested
    after = fresh()
    after.restore(str(path))
    after.on_trial_complete("t0", flatten_dict({"accuracy": 0.5, "latency_ms": 2.0,
                                                "config": config}))
    assert after.suggested == 1
    assert after.strategy.state_dict()["told"] == 1
    after.on_trial_complete("gone", {"accuracy": 0.5})  # no config: nothing to tell
    assert after.strategy.state_dict()["told"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["optuna-nsga2", "random"])
def test_create_searcher_runs_under_tune(name: str, local_ray: Any, tmp_path: Path) -> None:
    from nas.strategies.tune_adapter import create_searcher

    searcher = create_searcher(name, nb201_dimensions(), OBJECTIVES, seed=0)
    tuner = tune.Tuner(
        lookup,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=10, reuse_actors=True,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 10
    ok = [r for r in results if r.error is None]
    assert ok and all(0 < r.metrics["accuracy"] <= 100 for r in ok)


def test_create_searcher_rejects_unknown_names() -> None:
    from nas.strategies.tune_adapter import create_searcher

    with pytest.raises(ValueError, match="unknown strategy 'bayes'"):
        create_searcher("bayes", nb201_dimensions(), OBJECTIVES)


@pytest.mark.slow
def test_nas_bench_201_benchmark_gives_tune_the_direct_drives_inputs(local_ray: Any,
                                                                     tmp_path: Path) -> None:
    """``nb201_strategies.py --ray``: evolution through Tune gets the prior the direct drive
    gives it (its first ask, the latency descent's end, is the fastest cell), and variants and
    the proxy strategies run there too."""
    from benchmarks.nb201_strategies import objectives_of, run_ray

    pair = ("cifar10_val_12ep", "lat_ms_titanx_256")
    latency = objectives_of(*pair)[1]
    rows = run_ray("evolution", 0, 6, pair, str(tmp_path))
    assert len(set(rows)) == 6
    assert latency[rows[0]] == latency.min()  # the first ask, whichever trial finished first
    for strategy in ("evolution-no-proxy", "hybrid"):
        assert len(set(run_ray(strategy, 0, 4, pair, str(tmp_path)))) == 4
