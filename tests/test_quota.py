"""``count_rejected: false``: a search trains ``trials`` candidates within the budgets, however
many it rejects on the way (``nas/strategies/quota.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.tune.search import Searcher
from ray.tune.utils import flatten_dict

from conftest import ROOT, kill_search_after, run_cli
from nas.strategies import create_strategy
from nas.strategies.quota import WithinBudgetQuota
from nas.strategies.tune_adapter import StrategySearcher

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]


class Counting(Searcher):
    """Suggests {"x": 0}, {"x": 1}, ... and records what it is told."""

    def __init__(self) -> None:
        super().__init__(metric="accuracy", mode="max")
        self.next, self.told = 0, []

    def suggest(self, trial_id: str) -> dict:
        self.next += 1
        return {"x": self.next - 1}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self.told.append(trial_id)


def even(config: dict) -> bool:
    return config["x"] % 2 == 0


def test_finishes_once_the_quota_fits() -> None:
    quota = WithinBudgetQuota(Counting(), quota=3, fits=even, max_rejected=10)
    configs = []
    while (config := quota.suggest(f"t{len(configs)}")) != Searcher.FINISHED:
        configs.append(config)
    assert [c["x"] for c in configs] == [0, 1, 2, 3, 4]  # 3 even, 2 odd on the way
    assert (quota.within, quota.rejected) == (3, 2)
    quota.on_trial_complete("t1", {"rejected": 1})
    assert quota.searcher.told == ["t1"] and "t1" not in quota.live  # passed through


def test_finishes_at_max_rejected() -> None:
    quota = WithinBudgetQuota(Counting(), quota=10, fits=lambda c: False, max_rejected=4)
    suggested = [quota.suggest(f"t{i}") for i in range(6)]
    assert suggested[4:] == [Searcher.FINISHED] * 2 and quota.rejected == 4
    with pytest.raises(ValueError, match="quota and max_rejected must be >= 1"):
        WithinBudgetQuota(Counting(), quota=0, fits=even, max_rejected=1)


def test_save_restore_and_a_trial_suggested_after_the_save(tmp_path: Path) -> None:
    """Tune's trial generator saves the counts and the wrapped searcher; a trial suggested after
    the last save (a driver killed between Tune's state writes) is counted from its result."""
    from ray.tune.search import SearchGenerator

    def fresh() -> WithinBudgetQuota:
        strategy = create_strategy("random", {"x": list(range(8))}, objectives=OBJECTIVES,
                                   seed=3)
        return WithinBudgetQuota(StrategySearcher(strategy, OBJECTIVES), quota=5, fits=even,
                                 max_rejected=20)

    quota = fresh()
    first = [quota.suggest(f"t{i}") for i in range(3)]
    SearchGenerator(quota).save_to_dir(str(tmp_path), session_str="s")
    late = quota.suggest("t3")
    restored = fresh()
    SearchGenerator(restored).restore_from_dir(str(tmp_path))
    counts = (sum(map(even, first)), sum(not even(c) for c in first))
    assert (restored.within, restored.rejected) == counts
    assert set(restored.live) == {"t0", "t1", "t2"} and restored.searcher.suggested == 3
    restored.on_trial_complete("t3", flatten_dict({"accuracy": 0.5, "latency_ms": 1.0,
                                                   "config": late}))
    assert restored.within + restored.rejected == 4 and restored.within == counts[0] + even(late)
    assert restored.searcher.strategy.state_dict()["told"] == 1  # the strategy heard of it too


def test_counted_curve_skips_rejections_only_when_they_do_not_count(tmp_path: Path) -> None:
    from nas.tracking import SearchTracker

    tracker = SearchTracker(f"sqlite:///{tmp_path / 'm.db'}", "exp", "curve", reference_ms=1.0)
    rows = [(0.5, 0.5, 0), (0.0, 2.0, 1), (0.9, 0.8, 0), (0.0, 3.0, 1)]
    for i, (acc, lat, rejected) in enumerate(rows):
        tracker.start_trial(f"t{i}", f"a{i}", {})
        tracker.finish_trial(f"t{i}", {"arch": f"a{i}", "accuracy": acc, "latency_ms": lat,
                                       "params": 1, "peak_activation_bytes": 1, "macs": 1,
                                       "epochs": 0 if rejected else 3, "train_seconds": 1.0,
                                       "rejected": rejected}, "FINISHED", max_epochs=3)
    tracker.close("FINISHED")
    assert len(tracker.counted_curve(True)) == 4
    kept = tracker.counted_curve(False)
    assert kept == [tracker.curve[0], tracker.curve[2]] and kept[-1] == tracker.hypervolume


def quota_config(tmp_path: Path, trials: int) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(name="quota", trials=trials, count_rejected=False,
                  storage_path=str(tmp_path / "ray"))
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(epochs=1)
    config["budgets"] = {"latency_ms": 0.2}  # rejects most of the space
    # start 0: random first trials; the size-and-latency start draws only within the budgets
    config["strategy"]["params"] = {"population_size": 3, "sample_size": 2, "start": 0}
    path = tmp_path / "quota.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_search_trains_trials_within_budget(tmp_path: Path) -> None:
    """Through the CLI on a real local Ray: 3 trained candidates, the rejected ones extra."""
    from mlflow.tracking import MlflowClient

    proc = run_cli("search", "--config", str(quota_config(tmp_path, 3)), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout)
    trained = summary["completed"] + summary["stopped"] + summary["failed"]
    assert trained == 3 and summary["rejected"] >= 1
    assert summary["trials"] == trained + summary["rejected"]
    assert all(p["latency_ms"] <= 0.2 for p in summary["pareto"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([summary["experiment_id"]], "tags.`hwnas.role` = 'trial'",
                              max_results=200)
    outcomes = [r.data.tags["hwnas.outcome"] for r in runs]
    assert len(runs) == summary["trials"] and outcomes.count("rejected") == summary["rejected"]


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_killed_and_resumed_search_still_trains_its_quota(tmp_path: Path) -> None:
    """SIGKILL the driver after 2 trained candidates, --resume: 5 trained in all, none twice.

    The kill is made to land while Tune copies its state into the experiment folder (the copy
    is not atomic; once in some thirty CI runs the resume failed on a truncated file): the
    files there are cut short, and the resume starts from hwnas's snapshot of the last save."""
    from collections import Counter

    from mlflow.tracking import MlflowClient

    from nas.tune_state import SNAPSHOT_DIR

    path = quota_config(tmp_path, 5)
    experiment_id = kill_search_after(path, tmp_path, "killme", completed=2)
    folder = next((tmp_path / "ray").glob("killme-*"))
    assert (folder / SNAPSHOT_DIR / "current").is_file()
    for pattern in ("experiment_state-*.json", "searcher-state-*.pkl"):
        for state in folder.glob(pattern):
            state.write_bytes(state.read_bytes()[:100])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    resumed = run_cli("search", "--resume", "killme", "--config", str(path), "--json",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["completed"] + summary["stopped"] + summary["failed"] == 5
    runs = client.search_runs([experiment_id], "tags.`hwnas.role` = 'trial'",
                              max_results=500)
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert set(Counter(r.data.tags["hwnas.trial_id"] for r in done).values()) == {1}
    trained = [r for r in done if r.data.tags["hwnas.outcome"] != "rejected"]
    assert len(trained) == 5 and len(done) == summary["trials"]
