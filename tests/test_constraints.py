"""What each searcher is told about a candidate over a budget (nas/strategies/constraints.py),
and the strategy registry as the only list of names (nas/strategies/registry.py).

The Optuna checks spy on the sampler itself (``after_trial``, which ``Study.tell`` calls with the
stored trial): whatever the path from a Tune result to Optuna, a rejected candidate must arrive
there as infeasible, never as a completed feasible trial."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import ROOT
from nas.config import BudgetConfig
from nas.strategies.constraints import CONSTRAINTS, ConstrainedOptunaSearch, ConstraintFeedback
from nas.strategies.registry import REGISTRY, OptunaSampler, strategy_names
from nas.strategies.tune_adapter import create_searcher
from nas.trial import MIB, BudgetViolations, Cost

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]
SPACE = {"a": list(range(6)), "b": ["x", "y", "z"], "c": [0.5, 1.0]}
BUDGETS = BudgetConfig(latency_ms=1.0, peak_activation_mib=1.0)
OPTUNA = [n for n, s in REGISTRY.items() if isinstance(s.build, OptunaSampler)]


def trial_result(config: dict[str, Any]) -> dict[str, Any]:
    """What nas/trial.py reports for ``config`` under ``BUDGETS``: a cost that depends on the
    config, and either a trained accuracy or (over a budget) ``rejected`` with accuracy 0."""
    latency = 0.4 + 0.2 * config["a"]  # over 1.0 ms from a = 4
    peak = int((0.5 + 0.4 * ["x", "y", "z"].index(config["b"])) * MIB)  # z: 1.3 MiB, over
    cost = Cost(latency_ms=latency, params=10_000, peak_activation_bytes=peak, macs=1)
    rejected = bool(cost.violations(BUDGETS))
    return {"accuracy": 0.0 if rejected else 0.5 + 0.1 * config["c"] - 0.01 * config["a"],
            "latency_ms": latency, "params": cost.params, "peak_activation_bytes": peak,
            "macs": 1, "rejected": int(rejected)}


def spy(searcher: Any) -> list[tuple[Any, list[float] | None, dict[str, float]]]:
    """``(state, values, constraints)`` of every trial the Optuna sampler behind ``searcher`` (a
    ConstraintFeedback around an OptunaSearch) is told about, as the sampler sees it."""
    sampler = searcher.searcher._ot_study.sampler
    seen: list[tuple[Any, list[float] | None, dict[str, float]]] = []
    original = sampler.after_trial

    def after_trial(study: Any, trial: Any, state: Any, values: Any) -> None:
        seen.append((state, None if values is None else list(values), dict(trial.constraints)))
        original(study, trial, state, values)

    sampler.after_trial = after_trial
    return seen


def drive(searcher: Any, n: int) -> list[dict[str, Any]]:
    """Suggest and complete ``n`` trials one at a time; the results, in order."""
    results = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        results.append(trial_result(config))
        searcher.on_trial_complete(f"t{i}", results[-1])
    return results


def feasible_rejections(searcher: Any, n: int) -> list[int]:
    """The trials that were rejected but reached the Optuna sampler as completed and feasible:
    the failure this module guards against."""
    from optuna.trial import TrialState

    seen = spy(searcher)
    results = drive(searcher, n)
    assert len(seen) == n
    return [i for i, (result, (state, _, constraints)) in enumerate(zip(results, seen))
            if result["rejected"] and state == TrialState.COMPLETE
            and all(v <= 0 for v in constraints.values())]


@pytest.mark.parametrize("name", OPTUNA)
def test_what_the_optuna_sampler_receives(name: str) -> None:
    from optuna.trial import TrialState

    searcher = create_searcher(name, SPACE, OBJECTIVES, seed=0,
                               constraints=BudgetViolations(BUDGETS))
    seen = spy(searcher)
    over, within = {"a": 5, "b": "z", "c": 1.0}, {"a": 1, "b": "x", "c": 0.5}
    for trial_id in ("over", "within"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("over", trial_result(over))
    searcher.on_trial_complete("within", trial_result(within))
    study = searcher.searcher._ot_study
    first, second = study.trials
    # over both budgets: 1.4 ms against 1.0 ms, 1.3 MiB against 1.0 MiB
    assert first.state == TrialState.COMPLETE and first.values == pytest.approx([0.0, 1.4])
    assert first.constraints == pytest.approx({"latency_ms": 0.4, "peak_activation_mib": 0.3},
                                              abs=1e-5)  # peak is whole bytes
    # within both: the slack, negative
    assert second.state == TrialState.COMPLETE and second.values == pytest.approx([0.54, 0.6])
    assert second.constraints == pytest.approx(
        {"latency_ms": -0.4, "peak_activation_mib": -0.5}, abs=1e-5)
    assert [s for s, _, _ in seen] == [TrialState.COMPLETE] * 2  # the sampler saw the same
    assert seen[0][2] == first.constraints and seen[1][2] == second.constraints


@pytest.mark.parametrize("name", OPTUNA)
def test_no_optuna_sampler_receives_a_rejected_candidate_as_feasible(name: str) -> None:
    """Past NSGA-II's first generation and TPE's startup trials, so the constrained parts of
    both samplers run; about half the candidates of SPACE are over a budget."""
    params = {"optuna-nsga2": {"population_size": 8}, "optuna-tpe": {"n_startup_trials": 8}}
    searcher = create_searcher(name, SPACE, OBJECTIVES, seed=1,
                               constraints=BudgetViolations(BUDGETS), **params.get(name, {}))
    assert feasible_rejections(searcher, 40) == []


def test_the_check_catches_rays_plain_optuna_search() -> None:
    """Ray's own OptunaSearch completes a rejected candidate as a feasible [0, latency]: the
    check above fails on it (what this module exists to prevent)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    plain = OptunaSearch(space={k: optuna.distributions.CategoricalDistribution(v)
                                for k, v in SPACE.items()},
                         metric=["accuracy", "latency_ms"], mode=["max", "min"],
                         sampler=optuna.samplers.RandomSampler(seed=0))
    assert feasible_rejections(ConstraintFeedback(plain, BudgetViolations(BUDGETS)), 12)


def test_an_optuna_searcher_refuses_a_rejection_without_constraint_values() -> None:
    searcher = create_searcher("optuna-tpe", SPACE, OBJECTIVES, seed=0).searcher
    assert isinstance(searcher, ConstrainedOptunaSearch)
    config = searcher.suggest("t0")
    result = {**trial_result(config), "rejected": 1}
    with pytest.raises(ValueError, match="wrap the searcher in ConstraintFeedback"):
        searcher.on_trial_complete("t0", result)


def test_a_rejection_within_every_budget_is_an_error() -> None:
    searcher = create_searcher("random", SPACE, OBJECTIVES, seed=0)  # no budgets
    searcher.suggest("t0")
    with pytest.raises(ValueError, match="rejected but is within every budget"):
        searcher.on_trial_complete("t0", {"accuracy": 0.0, "latency_ms": 1.0, "rejected": 1})


def screened_inputs(name: str) -> dict[str, Any]:
    """The proxy ``score`` and predicted-latency ``cost`` a zero-shot strategy is given by
    ``hwnas search`` (nas.search.strategy_inputs), or evolution's size-and-latency ``prior``;
    here a cost that knows no budgets, so the trial's own check still rejects candidates."""
    factory = REGISTRY[name].ask_tell
    takes = () if factory is None else inspect.signature(factory).parameters
    if "prior" in takes:  # evolution: size and latency, untrained
        return {"prior": lambda config: (float(config["a"]),
                                         trial_result(config)["latency_ms"])}
    if "score" not in takes:
        return {}
    return {"score": lambda config, proxy: float(config["c"] - config["a"]),
            "cost": lambda config: trial_result(config)["latency_ms"]}


@pytest.mark.parametrize("name", strategy_names(ask_tell=True))
def test_an_ask_tell_strategy_is_told_none_for_a_rejected_candidate(name: str) -> None:
    searcher = create_searcher(name, SPACE, OBJECTIVES, seed=0,
                               constraints=BudgetViolations(BUDGETS), **screened_inputs(name))
    told: list[Any] = []
    strategy = searcher.searcher.strategy
    original = strategy.tell
    strategy.tell = lambda config, result: (told.append(result), original(config, result))
    results = drive(searcher, 16)
    assert any(r["rejected"] for r in results) and not all(r["rejected"] for r in results)
    for outcome, result in zip(told, results, strict=True):
        if result["rejected"]:
            assert outcome is None
        else:
            assert outcome == {"accuracy": result["accuracy"],
                               "latency_ms": result["latency_ms"]}


def test_constraint_values_match_the_rejection_reasons() -> None:
    rng = np.random.default_rng(0)
    budgets = BudgetConfig(latency_ms=0.3, peak_activation_mib=1.5, params_m=0.2)
    for _ in range(200):
        cost = Cost(latency_ms=float(rng.uniform(0.1, 0.5)), params=int(rng.integers(1e5, 3e5)),
                    peak_activation_bytes=int(rng.uniform(0.5, 2.5) * MIB), macs=1)
        values = cost.constraint_values(budgets)
        assert set(values) == {"latency_ms", "peak_activation_mib", "params_m"}
        assert sum(v > 0 for v in values.values()) == len(cost.violations(budgets))
    assert Cost(0.4, 10, MIB, 1).constraint_values(BudgetConfig(latency_ms=0.3)) == \
        pytest.approx({"latency_ms": 0.1})
    assert Cost(0.4, 10, MIB, 1).constraint_values(BudgetConfig()) == {}


def test_constraint_feedback_saves_nothing_of_its_own(tmp_path: Path) -> None:
    """Tune saves each wrapper's state beside the innermost searcher's (SearchGenerator)."""
    from ray.tune.search import SearchGenerator

    searcher = create_searcher("evolution", SPACE, OBJECTIVES, seed=0,
                               constraints=BudgetViolations(BUDGETS))
    drive(searcher, 3)
    SearchGenerator(searcher).save_to_dir(str(tmp_path), session_str="s")
    restored = create_searcher("evolution", SPACE, OBJECTIVES, seed=5,
                               constraints=BudgetViolations(BUDGETS))
    SearchGenerator(restored).restore_from_dir(str(tmp_path))
    assert restored.searcher.strategy.state_dict() == searcher.searcher.strategy.state_dict()
    assert CONSTRAINTS not in searcher.searcher.strategy.state_dict()


def test_the_registry_is_the_only_list_of_names() -> None:
    from nas.config import validate_config

    with pytest.raises(ValueError) as caught:
        validate_config({"strategy": {"name": "grid"}})
    assert f"known: {', '.join(strategy_names())}" in str(caught.value)
    assert set(strategy_names()) >= {"evolution", "random", "optuna-nsga2", "optuna-tpe"}
    assert all(s.name == n and s.family and s.description for n, s in REGISTRY.items())
    for name in strategy_names():  # every one builds, behind the constraint wrapper
        assert isinstance(create_searcher(name, SPACE, OBJECTIVES, seed=0,
                                          **screened_inputs(name)), ConstraintFeedback)
    # no module outside the registry spells the names out (docs and recorded commands may)
    for path in [*ROOT.joinpath("nas").rglob("*.py")]:
        if path.name == "registry.py":
            continue
        text = path.read_text()
        assert '"optuna-tpe"' not in text and '"optuna-nsga2"' not in text, path


def test_a_strategy_parameter_it_does_not_take_is_one_line() -> None:
    with pytest.raises(ValueError, match="'optuna-tpe' takes no parameter population_size"):
        create_searcher("optuna-tpe", SPACE, OBJECTIVES, population_size=3)
    with pytest.raises(ValueError, match="'evolution' takes no parameter n_startup_trials"):
        create_searcher("evolution", SPACE, OBJECTIVES, n_startup_trials=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", OPTUNA)
def test_a_real_search_tells_optuna_its_rejections_as_infeasible(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: hwnas's trial rejects candidates on a local Ray, Tune hands the results
    to the searcher, and the sampler sees each rejected one as infeasible (NASWOT scores instead
    of training, so it takes seconds per trial)."""
    import optuna
    import ray
    from optuna.trial import TrialState

    from nas.config import validate_config
    from nas.search import run_search

    sampler_class = getattr(optuna.samplers, REGISTRY[name].build.sampler)
    seen: list[tuple[Any, dict[str, float]]] = []
    original = sampler_class.after_trial

    def after_trial(self: Any, study: Any, trial: Any, state: Any, values: Any) -> None:
        seen.append((state, dict(trial.constraints)))
        original(self, study, trial, state, values)

    monkeypatch.setattr(sampler_class, "after_trial", after_trial)
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(name=name, trials=8, storage_path=str(tmp_path / "ray"), count_rejected=True)
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(surrogate=True)
    config["budgets"] = {"latency_ms": 0.25}  # rejects about half the space
    config["strategy"] = {"name": name, "params": {}}
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'm.db'}", "experiment": "c"}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_search(validate_config(config))
    finally:
        ray.shutdown()
    assert summary.rejected >= 1 and summary.trials == len(seen) == 8
    assert all(state == TrialState.COMPLETE and set(c) == {"latency_ms"} for state, c in seen)
    assert sum(c["latency_ms"] > 0 for _, c in seen) == summary.rejected


@pytest.mark.parametrize("name", OPTUNA)
def test_a_failed_or_errored_trial_is_a_failed_optuna_trial(name: str) -> None:
    """Out of memory at every batch size (``failed``, accuracy 0), or an error after an epoch
    was reported: Optuna's trial fails, it is not completed with those values."""
    from optuna.trial import TrialState

    searcher = create_searcher(name, SPACE, OBJECTIVES, seed=0,
                               constraints=BudgetViolations(BUDGETS))
    seen = spy(searcher)
    within = trial_result({"a": 1, "b": "x", "c": 0.5})
    searcher.suggest("oom")
    searcher.suggest("crash")
    searcher.on_trial_complete("oom", {**within, "accuracy": 0.0, "failed": 1})
    searcher.on_trial_complete("crash", within, error=True)
    assert [state for state, _, _ in seen] == [TrialState.FAIL, TrialState.FAIL]
    assert [t.state for t in searcher.searcher._ot_study.trials] == [TrialState.FAIL] * 2


@pytest.mark.parametrize("name", OPTUNA)
def test_optuna_searchers_pickle_and_go_on_sampling(name: str) -> None:
    """Tune pickles the searcher when it starts and at each checkpoint; Optuna 5.1's
    NSGA-II sampler holds a thread lock, which must not make that fail, and the loaded copy
    samples on (found by CI on a fresh install: every NSGA-II search failed at ``Tuner``)."""
    import pickle
    import threading

    searcher = create_searcher(name, SPACE, OBJECTIVES, seed=0,
                               constraints=BudgetViolations(BUDGETS))
    first = searcher.suggest("t0")
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy.suggest("t1") is not None and first is not None
    sampler = copy.searcher._ot_study.sampler
    for value in vars(sampler).values():  # any lock came back as a fresh, free one
        if isinstance(value, type(threading.Lock())):
            assert value.acquire(blocking=False)
            value.release()
