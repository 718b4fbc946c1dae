"""The zero-shot strategy family: proxy-ranked ``zeroshot`` and proxy-screened ``hybrid``
evolution (ask/tell, no Ray), their compute accounting, and both through ``hwnas search`` and
``hwnas compare`` (real Ray, real SQLite MLflow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_strategies import DICT_SPACE, fake_cost, fake_result, fake_score

from conftest import ROOT, run_cli, strict_loads
from nas.pareto import nondominated_ranks
from nas.strategies import Hybrid, ZeroShot, create_strategy
from nas.strategies.screening import pareto_order


def test_pareto_order_puts_the_front_first_best_score_first() -> None:
    scores = [0.9, 0.5, 0.1, 0.8, 0.4]
    latencies = [9.0, 5.0, 1.0, 9.5, 6.0]  # 3 and 4 are dominated (by 0 and by 1)
    assert pareto_order(scores, latencies) == [0, 1, 2, 3, 4]
    assert pareto_order([0.2, 0.7], [1.0, 1.0]) == [1, 0]
    assert pareto_order([], []) == []


def test_zeroshot_trains_the_screened_top_k_in_order() -> None:
    strategy = ZeroShot(DICT_SPACE, candidates=10, score=fake_score, cost=fake_cost, seed=0)
    asked = [strategy.ask() for _ in range(6)]
    pool = strategy.ranked
    assert pool is not None and 1 <= len(pool) <= 10
    assert all(fake_cost(c) is not None for c in pool)  # only candidates within the budgets
    head = asked[:len(pool)]
    assert head == pool[:len(head)]
    scores = [fake_score(c, "synflow") for c in pool]
    latencies = [fake_cost(c) for c in pool]
    assert pareto_order(scores, latencies) == list(range(len(pool)))
    # the results told back do not change the ranking
    strategy.tell(asked[0], fake_result(asked[0]))
    again = ZeroShot(DICT_SPACE, candidates=10, score=fake_score, cost=fake_cost, seed=0)
    assert [again.ask() for _ in range(len(head))] == head


def test_screened_strategies_need_their_inputs() -> None:
    for name in ("zeroshot", "hybrid"):
        with pytest.raises(ValueError, match="needs score and cost"):
            create_strategy(name, DICT_SPACE)
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        ZeroShot(DICT_SPACE, candidates=0, score=fake_score, cost=fake_cost)
    with pytest.raises(ValueError, match="children"):
        Hybrid(DICT_SPACE, children=0, score=fake_score, cost=fake_cost)


def test_hybrid_seeds_from_the_screen_and_screens_children() -> None:
    space = {f"x{i}": tuple(range(6)) for i in range(4)}
    calls: list[dict] = []

    def score(config: dict[str, Any], proxy: str) -> float:
        calls.append(config)
        return float(sum(config.values()))  # bigger is "more trainable"

    def cost(config: dict[str, Any]) -> float | None:
        total = sum(config.values())
        return None if total > 16 else 1.0 + config["x0"]  # latency: x0 alone

    strategy = Hybrid(space, population_size=4, sample_size=2, candidates=20, children=6,
                      score=score, cost=cost, seed=0)
    first = [strategy.ask() for _ in range(4)]
    assert first == strategy.seeds and all(cost(c) is not None for c in first)
    for config in first:
        strategy.tell(config, {"accuracy": sum(config.values()) / 20,
                               "latency_ms": cost(config)})
    for _ in range(10):
        before = len(calls)
        child = strategy.ask()
        rated = calls[before:]
        assert child in rated and cost(child) is not None  # priced, scored, within budgets
        points = np.array([[score(c, "p"), cost(c)] for c in rated if cost(c) is not None])
        ranks = nondominated_ranks(points, (True, False))
        on_front = [c for c, r in zip([c for c in rated if cost(c) is not None], ranks)
                    if r == ranks.min()]
        assert child in on_front
        strategy.tell(child, {"accuracy": sum(child.values()) / 20, "latency_ms": cost(child)})


QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def tiny_config(tmp_path: Path, strategy: str, params: dict[str, Any]) -> Path:
    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(name="zs", trials=3)  # (hybrid: 2 screened seeds, then 1 screened child)
    config["strategy"] = {"name": strategy, "params": params}
    config["task"].update(max_train=64, max_val=64)
    config["training"].update(epochs=1, batch_size=32)
    config["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "zs"}
    config["storage_path"] = str(tmp_path / "ray")
    config["count_rejected"] = False
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "params"), [
    ("zeroshot", {"candidates": 6, "proxy": "naswot"}),
    ("hybrid", {"population_size": 2, "sample_size": 1, "candidates": 4, "children": 2}),
])
@pytest.mark.usefixtures("mlflow_db")
def test_search_cli_runs_screened_strategies_and_charges_proxy_time(
        tmp_path: Path, strategy: str, params: dict[str, Any]) -> None:
    path = tiny_config(tmp_path, strategy, params)
    proc = run_cli("search", "--config", str(path), "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = strict_loads(proc.stdout)
    assert result["completed"] + result["stopped"] == 3
    # compute = train seconds + the proxy's seconds on the driver: more than training alone
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    children = client.search_runs([result["experiment_id"]],
                                  f"tags.mlflow.parentRunId = '{result['parent_run_id']}'")
    trained = sum(r.data.metrics.get("train_seconds", 0.0) for r in children)
    assert result["compute_seconds"] > trained > 0


def test_bad_proxy_fails_before_ray(tmp_path: Path) -> None:
    path = tiny_config(tmp_path, "zeroshot", {"proxy": "jacov"})
    proc = run_cli("search", "--config", str(path), "--json")
    assert proc.returncode != 0 and "unknown proxy 'jacov'" in proc.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_compare_plots_hypervolume_against_compute(tmp_path: Path) -> None:
    path = tiny_config(tmp_path, "hybrid", {"population_size": 2, "sample_size": 1,
                                            "candidates": 4, "children": 2})
    out = tmp_path / "cmp"
    proc = run_cli("compare", "--config", str(path), "--strategies", "hybrid,random",
                   "--seeds", "1", "--trials", "2", "--out", str(out), "--json",
                   timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    folder = out / result["comparison_id"]
    assert (folder / "hypervolume_compute.png").stat().st_size > 0
    rows = {r["strategy"]: r for r in result["results"]}
    assert set(rows) == {"hybrid", "random"}
    assert all(r["compute_seconds"] > 0 for r in rows.values())
    assert "CPU-s" in (folder / "comparison.md").read_text()


def test_hypervolume_at_equal_compute(tmp_path: Path) -> None:
    from nas.analysis.compare import _plots, at_equal_compute, hv_at, summarize
    from nas.search import SearchSummary

    assert hv_at([0.1, 0.4, 0.5], [10.0, 20.0, 30.0], 25.0) == 0.4
    assert hv_at([0.1], [10.0], 5.0) == 0.0

    def run(curve: list[float], compute: list[float]) -> SearchSummary:
        return SearchSummary("r", "e", "1", "sqlite://", len(curve), len(curve), 0, 0, 0,
                             curve[-1], 1.0, 1.0, curve=curve, compute=compute)

    runs = {"cheap": [run([0.2, 0.3], [10.0, 20.0]), run([0.1, 0.3], [10.0, 22.0])],
            "dear": [run([0.4, 0.6], [15.0, 60.0]), run([0.5, 0.7], [25.0, 70.0])]}
    results = [summarize(k, v, 2, 0.7) for k, v in runs.items()]
    assert [r.compute_seconds for r in results] == [21.0, 65.0]
    budget, results = at_equal_compute(results, runs)
    assert budget == 21.0  # the cheapest strategy's median compute per search
    # at 21 s: cheap has 0.3 and (second seed, still at 0.1 until 22 s) 0.1; dear 0.4 and 0.0
    assert [r.hv_at_equal_compute for r in results] == [pytest.approx(0.2), pytest.approx(0.2)]
    pngs = _plots(results, tmp_path, "t")
    assert (tmp_path / "hypervolume_compute.png") in pngs
