"""Failures a long search must survive: a candidate that crashes, an unreachable MLflow server,
a killed driver (resume), a lost worker node. Real processes, all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.tune.search import Searcher

from conftest import ROOT, kill_search_after, run_cli, small_networks
from servers import free_port

pytestmark = pytest.mark.slow  # every test here starts Ray and other processes

QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def small_config(tmp_path: Path, **changes: Any) -> Path:
    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(storage_path=str(tmp_path / "ray"), trials=4)
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(epochs=1)
    config["budgets"] = {}
    small_networks(config)
    config["strategy"]["params"] = {"population_size": 3, "sample_size": 2}
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.usefixtures("mlflow_db")
def test_candidate_crash_is_a_failed_child_run_and_the_search_goes_on(tmp_path: Path) -> None:
    # a learning rate of 1e30 overflows the weights: the loss turns NaN and training raises
    path = small_config(tmp_path, trials=3, training__lr=1e30, resources__max_failures=0)
    every_trial_failed(tmp_path, path, 3, "training loss is not finite")


def every_trial_failed(tmp_path: Path, path: Path, trials: int, error: str) -> None:
    """Run the search: each of its ``trials`` is a FAILED child run whose ``hwnas.error`` holds
    ``error``, and the search itself finished."""
    from mlflow.tracking import MlflowClient

    proc = run_cli("search", "--config", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["trials"] == trials == summary["failed"] and summary["pareto"] == []
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    children = [r for r in runs if r.data.tags.get("hwnas.role") == "trial"]
    assert len(children) == trials
    for run in children:
        assert run.info.status == "FAILED" and run.data.tags["hwnas.outcome"] == "failed"
        assert error in run.data.tags["hwnas.error"]
    [parent] = [r for r in runs if r.data.tags.get("hwnas.role") == "search"]
    assert parent.info.status == "FINISHED"


def test_unreachable_mlflow_server_fails_before_any_trial(tmp_path: Path) -> None:
    path = small_config(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_cli("search", "--config", str(path), "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"MLflow server {uri} is unreachable" in proc.stderr
    assert not (tmp_path / "ray").exists()  # no trial, not even Ray's experiment folder


@pytest.mark.usefixtures("mlflow_db")
def test_killed_driver_resumes_without_losing_or_duplicating_trials(tmp_path: Path) -> None:
    """SIGKILL the whole driver (and its local Ray) after a few trials, then --resume."""
    from collections import Counter

    from mlflow.tracking import MlflowClient

    path = small_config(tmp_path, trials=8)
    experiment_id = kill_search_after(path, tmp_path, "killme", completed=3)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    folder = next((tmp_path / "ray").glob("killme-*"))
    first = json.loads(next(folder.glob("searcher-state-*")).read_text())["strategy"]
    assert first["told"] >= 1 and first["population"]  # saved with Tune's state, per event

    # As if the kill fell between Tune's experiment-state write and its trial-generator write
    # (Tune writes them in that order): the generator counts one trial fewer than the state
    # holds. The resumed search must still end with exactly the trials it was asked for.
    import pickle

    [gen] = folder.glob("search_gen_state-*.json")
    saved = pickle.loads(gen.read_bytes())
    saved["counter"] -= 1
    gen.write_bytes(pickle.dumps(saved))

    resumed = run_cli("search", "--resume", "killme", "--config", str(path), "--json",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["trials"] == 8 and summary["failed"] == 0

    runs = client.search_runs([experiment_id], max_results=200)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    trials = [r for r in runs if r.data.tags.get("hwnas.role") == "trial"]
    finished = Counter(r.data.tags["hwnas.trial_id"] for r in trials
                       if r.info.status == "FINISHED")
    assert len(finished) == 8 and set(finished.values()) == {1}  # none lost, none duplicated
    interrupted = [r for r in trials if r.info.status != "FINISHED"]
    assert all(r.data.tags["hwnas.outcome"] in ("killed", "lost") for r in interrupted)
    [parent] = [r for r in runs if r.data.tags.get("hwnas.role") == "search"]
    assert parent.info.status == "FINISHED" and parent.data.tags["hwnas.resumed"] == "1"
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, "hypervolume")]
    assert steps[-1] == 8

    # the strategy continued from its saved population rather than starting over
    states = sorted(folder.glob("searcher-state-*"))
    assert len(states) == 2
    last = json.loads(states[-1].read_text())
    assert last["strategy"]["told"] == 8 and last["suggested"] == 8
    assert {json.dumps(c, sort_keys=True) for c, _ in first["population"]} <= set(
        last["strategy"]["seen"])


def test_resume_unknown_search_is_one_line(tmp_path: Path) -> None:
    path = small_config(tmp_path)
    proc = run_cli("search", "--resume", "nothing-here", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "no search 'nothing-here' to resume" in proc.stderr
    proc = run_cli("search", "--resume", "x", "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "drop --trials" in proc.stderr


class _KillsTheFirstWorker(Searcher):
    """Three trials; after the first it SIGKILLs that trial's worker process and holds the
    next suggestion back for a second, so the next trial meets the dead worker."""

    def __init__(self) -> None:
        super().__init__(metric="accuracy", mode="max")
        self.suggested, self.open_at = 0, float("inf")

    def set_search_properties(self, metric: Any, mode: Any, config: Any, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.suggested >= 3:
            return Searcher.FINISHED
        if self.suggested == 1 and time.monotonic() < self.open_at:
            return None
        self.suggested += 1
        return {"x": self.suggested}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result and self.open_at == float("inf"):
            os.kill(result["pid"], signal.SIGKILL)
            self.open_at = time.monotonic() + 1.0


def _tracked_on_one_cpu(tmp_path: Path, name: str) -> tuple[str, Any, Any]:
    """A SQLite store's URI, a tracker and its Tune callback (trial ``x{x}``), and a local
    Ray of one CPU started (the caller shuts it down)."""
    import ray

    from nas.tracking import SearchTracker
    from nas.tracking.callback import TrackingCallback

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = SearchTracker(uri, "exp", name, reference_ms=1.0)
    callback = TrackingCallback(tracker, lambda config: f"x{config['x']}", 1)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20)
    return uri, tracker, callback


@pytest.mark.parametrize("reuse", [True, False], ids=["reused-worker", "fresh-workers"])
def test_a_worker_lost_between_trials(tmp_path: Path, reuse: bool) -> None:
    """Why a search on a cluster gives every trial its own worker (``resources.reuse_actors``):
    Tune resets a finished trial's cached worker for the next trial, and when that worker has
    died (its node was lost) the trial errors without the retries ``max_failures`` allows, and
    without ever being started. The tracker still records it as a failed run."""
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune


    def trainable(config: dict) -> None:
        tune.report({"arch": f"x{config['x']}", "accuracy": 0.5, "latency_ms": 0.1 * config["x"],
                     "params": 10, "peak_activation_bytes": 20, "macs": 30, "epochs": 1,
                     "train_seconds": 0.1, "pid": os.getpid()})

    uri, tracker, callback = _tracked_on_one_cpu(tmp_path, "lost-worker")
    try:
        grid = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=_KillsTheFirstWorker(), num_samples=3,
                                        reuse_actors=reuse),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0,
                                      callbacks=[callback],
                                      failure_config=tune.FailureConfig(max_failures=2)),
        ).fit()
    finally:
        ray.shutdown()
        tracker.close("FINISHED")
    assert len(grid) == 3 and len(tracker.finished) == 3  # every trial Tune ran is recorded
    assert tracker.count("failed") == len(grid.errors) == (1 if reuse else 0)
    runs = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`hwnas.role` = 'trial'")
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(runs) == 3 and len(failed) == (1 if reuse else 0)
    for run in failed:
        assert "died" in run.data.tags["hwnas.error"] and run.data.params["arch"] == "x2"


@pytest.mark.parametrize("allow", [False, True], ids=["tune-default-2s", "hwnas-trial"])
def test_a_reused_worker_waits_for_the_last_trials_thread(tmp_path: Path, allow: bool) -> None:
    """Tune stops a trial at its last report (here a stopper, in a search ASHA at ``max_t``),
    then resets its worker for the next trial. Where the finished trial's thread outlives Tune's
    2 s wait, the next trial errors with no callback. An hwnas trial makes its worker wait
    longer, so every trial completes; and a trial lost that way is still recorded as failed."""
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune

    from nas.trial import allow_slow_thread_exit

    def slow_to_exit(config: dict) -> None:
        """Its thread goes on 3 s after its last report, once the stopper has ended it (as
        ``run_trial``'s ``release_host_memory`` can on busy cores)."""
        if config["allow"]:
            allow_slow_thread_exit()
        try:
            tune.report({"arch": f"x{config['x']}", "accuracy": 0.5, "epochs": 1,
                         "latency_ms": 0.1 * config["x"], "params": 10,
                         "peak_activation_bytes": 20, "macs": 30, "train_seconds": 0.1})
        finally:
            time.sleep(3.0)

    uri, tracker, callback = _tracked_on_one_cpu(tmp_path, "slow-exit")
    try:
        grid = tune.Tuner(
            slow_to_exit,
            param_space={"x": tune.grid_search([1, 2, 3]), "allow": allow},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0,
                                      callbacks=[callback], stop={"epochs": 1}),
        ).fit()
    finally:
        ray.shutdown()
        tracker.close("FINISHED")
    assert len(grid) == 3 and len(tracker.finished) == 3  # every trial Tune ran is recorded
    assert tracker.count("failed") == len(grid.errors)
    # the 2nd trial meets the 1st one's worker not yet free (the 3rd gets a fresh worker)
    assert len(grid.errors) == (0 if allow else 1)
    runs = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`hwnas.role` = 'trial'")
    assert len(runs) == 3 and all(r.info.status != "RUNNING" for r in runs)
    for run in (r for r in runs if r.info.status == "FAILED"):
        assert "reset_config" in run.data.tags["hwnas.error"]


@pytest.mark.usefixtures("mlflow_db")
def test_a_trial_killed_for_memory_is_a_failed_run_and_the_search_goes_on(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Ray's memory monitor kills a trial's worker when the node runs low on memory; here its
    threshold is 0.1% of the machine's memory, so it kills every trial's worker. Each such trial is
    a failed child run that names the cause, and the search finishes (on older Ray a killed
    reused worker ended the whole search: docs/search.md, a trial worker's memory)."""
    monkeypatch.setenv("RAY_memory_usage_threshold", "0.001")  # the Ray the search starts
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "100")
    path = small_config(tmp_path, trials=2, resources__max_failures=0)
    every_trial_failed(tmp_path, path, 2, "low on memory")
