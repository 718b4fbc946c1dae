"""hwnas compare (real Ray, real SQLite MLflow) and the NASWOT surrogate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, run_cli
from nas.analysis.compare import first_reach
from nas.surrogate import naswot_score, surrogate_accuracy


def test_naswot_bounds_and_separation() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU())
    images = torch.randn(16, 1, 8, 8)
    score, units = naswot_score(net, images)
    assert units == 256 and np.isfinite(score)
    assert 0.0 < surrogate_accuracy(net, images) <= 1.0
    # identical inputs give identical patterns: a singular kernel, the lowest proxy
    same = images[:1].repeat(16, 1, 1, 1)
    assert surrogate_accuracy(net, same) == 0.0
    with pytest.raises(ValueError, match="no ReLU"):
        naswot_score(torch.nn.Linear(2, 2), torch.randn(4, 1, 1, 2))
    with pytest.raises(ValueError, match="at least 2 images"):
        naswot_score(net, images[:1])


def test_first_reach() -> None:
    curve = np.array([0.1, 0.5, 0.5, 0.9])
    assert first_reach(curve, 0.5) == 2 and first_reach(curve, 0.9) == 4
    assert first_reach(curve, 0.95) is None


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_compare_cli_with_surrogate(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(storage_path=str(tmp_path / "ray"))
    config["strategy"]["params"] = {"population_size": 2, "sample_size": 1}
    config["budgets"] = {}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("compare", "--config", str(path), "--strategies", "evolution,random",
                   "--seeds", "1", "--trials", "3", "--surrogate", "--out",
                   str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["surrogate"] and result["trials"] == 3
    assert [r["strategy"] for r in result["results"]] == ["evolution", "random"]
    for r in result["results"]:
        assert 0 < r["final_hv"][1] <= result["best_hv"] <= 1 and r["front"]
    folder = tmp_path / "out" / result["comparison_id"]
    for name in ("report.html", "hypervolume.png", "fronts.png", "comparison.md",
                 "comparison.json"):
        assert (folder / name).stat().st_size > 100, name

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert all(r.info.status == "FINISHED" for r in runs)
    searches = [r for r in runs if r.data.tags.get("hwnas.role") == "search"]
    assert len(searches) == 2
    for run in searches:
        assert run.data.tags["mlflow.parentRunId"] == result["run_id"]
        assert run.data.tags["hwnas.comparison_id"] == result["comparison_id"]
    trials = [r for r in runs if r.data.tags.get("hwnas.role") == "trial"]
    assert len(trials) == 6 and all(r.data.metrics["surrogate"] == 1 for r in trials)
    files = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {"report.html", "hypervolume.png", "fronts.png", "comparison.json"} <= files


def test_against_uncurated_counts_trials_to_the_twins_final() -> None:
    from nas.analysis.compare import StrategyResult, _against_uncurated

    curated = StrategyResult("evolution (curated)", 2, (0.5, 0.6, 0.7), None, 0, 1.0,
                             curves=[[0.1, 0.3, 0.6], [0.2, 0.2, 0.2]])
    uncurated = StrategyResult("evolution (uncurated)", 2, (0.2, 0.3, 0.4), None, 0, 1.0,
                               curves=[[0.1, 0.2, 0.3], [0.3, 0.3, 0.3]])
    out = _against_uncurated([curated, uncurated],
                             {"evolution (curated)": "evolution (uncurated)"})
    # target = the uncurated median final 0.3: seed 0 gets there at trial 2, seed 1 never
    assert out[0].trials_to_uncurated_final == 2 and out[0].reached_uncurated_final == 1
    assert out[1].trials_to_uncurated_final is None and out[1].reached_uncurated_final is None


def test_comparison_json_reports_any_smaller_budget(capsys: pytest.CaptureFixture[str]) -> None:
    """comparison.json keeps each seed's curve (one point per counted trial), so the
    hypervolume after 2 trials is read off the same 4-trial runs; a search that ended early
    holds its last value."""
    from benchmarks.quickstart_strategies import hv_after, print_table, rows_from_comparison
    from nas.analysis.compare import Comparison, summarize
    from nas.search import SearchSummary

    def search(curve: list[float]) -> SearchSummary:
        return SearchSummary("run", "exp", "0", "sqlite://", len(curve), len(curve), 0, 0, 0,
                             curve[-1], 1.0, 10.0, curve=curve,
                             compute=[5.0 * (i + 1) for i in range(len(curve))])

    runs = [search([0.1, 0.4, 0.5, 0.6]), search([0.2, 0.3, 0.3]), search([0.0, 0.2, 0.7, 0.8])]
    result = summarize("evolution", runs, 4, 0.8)
    doc = json.loads(json.dumps(Comparison("c", "r", 4, False, 0.8, [result], "").to_json(),
                                allow_nan=False))
    assert doc["results"][0]["curves"] == [[0.1, 0.4, 0.5, 0.6], [0.2, 0.3, 0.3, 0.3],
                                           [0.0, 0.2, 0.7, 0.8]]
    rows = rows_from_comparison(doc)
    assert [hv_after(r["curve"], 2) for r in rows] == [0.4, 0.3, 0.2]
    assert [r["compute"][-1] for r in rows] == [20.0, 15.0, 20.0]
    print_table(rows, [2, 4])
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| evolution")][0]
    # medians: after 2 trials 0.3 (quartiles 0.25-0.35); after 4: 0.6 (0.45-0.7)
    assert "| 3 | 0.300 [0.250-0.350] | 0.600 [0.450-0.700] | 20 | 10 | - |" in line


def test_benchmark_variant_names_a_strategy_with_extra_params() -> None:
    """``--variant LABEL=STRATEGY:JSON`` of the trained-comparison benchmark: its parts, and one
    line naming what is wrong with a bad one."""
    from benchmarks.quickstart_strategies import parse_variant

    assert parse_variant('evolution-climb=evolution:{"climb": 0.4}') == (
        "evolution-climb", "evolution", {"climb": 0.4})
    assert parse_variant("tpe=optuna-tpe") == ("tpe", "optuna-tpe", {})
    with pytest.raises(ValueError, match="not JSON"):
        parse_variant("x=evolution:{climb}")
    for bad in ("evolution", "=evolution", "x=", 'x=evolution:[1]'):
        with pytest.raises(ValueError, match="expected LABEL=STRATEGY"):
            parse_variant(bad)


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_sigterm_between_searches_ends_the_comparison_killed(tmp_path: Path) -> None:
    """A SIGTERM that lands between two searches (no search's handler installed) still ends
    the comparison's run KILLED with exit status 143, never leaving it RUNNING."""
    import os
    import signal

    from mlflow.tracking import MlflowClient

    from nas.analysis.compare import plan_comparison, run_comparison
    from nas.config import SearchConfig

    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(storage_path=str(tmp_path / "ray"))
    config["tracking"]["uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config["strategy"]["params"] = {"population_size": 2, "sample_size": 1}
    config["budgets"] = {}
    plan = plan_comparison(SearchConfig.model_validate(config), ["random", "evolution"], 1,
                           trials=2, surrogate=True)

    def on_search(label: str, seed: int, summary: object) -> None:
        if summary is not None:  # the first search is done: kill before the second
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as exc:
        run_comparison(plan, out_dir=tmp_path / "out", on_search=on_search)
    assert exc.value.code == 128 + signal.SIGTERM
    client = MlflowClient(config["tracking"]["uri"])
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    roles = [(r.data.tags.get("hwnas.role"), r.info.status) for r in runs]
    assert ("comparison", "KILLED") in roles and ("search", "FINISHED") in roles
    assert not [r for r in roles if r[1] == "RUNNING"] and len(
        [r for r in roles if r[0] == "search"]) == 1
