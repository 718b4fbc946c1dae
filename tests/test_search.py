"""The search config, the budget check, the MLflow tracker and a whole search (real local Ray,
real SQLite MLflow store, driven through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import ROOT, run_cli
from nas.config import BudgetConfig, load_config, validate_config
from nas.trial import Cost, candidate_cost

QUICKSTART = ROOT / "configs" / "quickstart.yaml"


# -- config -----------------------------------------------------------------------------------
def test_quickstart_config_is_valid_and_matches_its_estimator() -> None:
    from nas.search import prepare

    cfg = load_config(QUICKSTART)
    assert cfg.task.dataset == "digits" and cfg.strategy.name == "evolution"
    # trials counts trained candidates only: about the 8 that 24 proposals used to train
    assert 6 <= cfg.trials <= 12 and not cfg.count_rejected
    prep = prepare(cfg)
    assert prep.parallelism_factor == 32 and prep.num_classes == 10 and prep.in_channels == 1
    assert prep.reference_ms == cfg.budgets.latency_ms
    # curated: every channel choice is a multiple of the profile's parallelism factor
    dims = prep.space.dimensions()
    assert all(c % 32 == 0 for k, v in dims.items() if k.endswith("_channels") for c in v)


def test_defaults_and_overrides() -> None:
    cfg = load_config(None)
    assert cfg.tracking.uri == "sqlite:///mlflow.db"
    new = cfg.with_overrides(**{"training.epochs": 7, "strategy.name": "random", "seed": None})
    assert new.training.epochs == 7 and new.strategy.name == "random" and new.seed == cfg.seed
    assert cfg.training.epochs != 7  # the original is unchanged (frozen)


@pytest.mark.parametrize(("data", "fragment"), [
    ({"trials": 0}, "trials"),
    ({"task": {"dataset": "mnist"}}, "unknown dataset 'mnist'"),
    ({"strategy": {"name": "grid"}}, "unknown strategy 'grid'"),
    ({"budgets": {"latency_ms": -1}}, "budgets.latency_ms"),
    ({"trainig": {"epochs": 2}}, "trainig"),
    ({"training": {"epochs": "many"}}, "training.epochs"),
    ([1, 2], "mapping"),
    ({"storage_path": "s3://bucket/runs"}, "shared mount"),
    ({"tracking": {"uri": "http://alice:s3cret@mlflow:5000"}}, "MLFLOW_TRACKING_PASSWORD"),
])
def test_bad_config_is_one_line_naming_the_field(data: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_config(data, "x.yaml")
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("bad config x.yaml")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(("change", "fragment"), [
    ({"hardware": {"profile": "tpu9"}}, "unknown hardware profile 'tpu9'"),
    ({"hardware": {"estimator": "npu32-mbv2"}}, "built for space 'mbv2'"),
    ({"hardware": {"profile": "npu16"}}, "parallelism factor"),
    ({"space": {"name": "resnet"}}, "resnet"),
    ({"strategy": {"name": "evolution", "params": {"populaton_size": 4}}}, "populaton_size"),
    ({"task": {"dataset": "cifar10", "data_dir": "/nonexistent/cifar"}}, "/nonexistent/cifar"),
])
def test_prepare_rejects_mismatches_before_starting_anything(change: dict, fragment: str
                                                             ) -> None:
    from nas.search import prepare

    cfg = validate_config(change)
    with pytest.raises(ValueError) as info:
        prepare(cfg)
    assert fragment in str(info.value) and "\n" not in str(info.value)


# -- budget check -----------------------------------------------------------------------------
def test_cost_matches_estimator_and_memory_model() -> None:
    from estimators.latency import LatencyEstimator, resolve_estimator
    from estimators.memory import memory_report
    from searchspaces.spaces import get_space

    space = get_space("mbv2-small", 32, True)
    est = LatencyEstimator.load(resolve_estimator("npu32-mbv2-small"))
    arch = space.sample(np.random.default_rng(3))
    cost = candidate_cost(arch, est, 10, 1)
    mem = memory_report(arch, 10, 1)
    assert cost.latency_ms == pytest.approx(est.predict(arch, 10, 1))
    assert (cost.params, cost.peak_activation_bytes, cost.macs) == (
        mem.params, mem.peak_activation_bytes, mem.macs)


def test_evolution_is_given_each_candidates_size_and_latency() -> None:
    """``hwnas search`` gives evolution a prior: the trial's own parameter count and predicted
    latency, ``None`` where the trial would reject the candidate; picklable, as Tune pickles the
    searcher."""
    import pickle

    from nas.search import prepare, strategy_inputs
    from nas.trial import TrialContext, price

    cfg = load_config(QUICKSTART)
    prep = prepare(cfg)
    context = TrialContext(cfg.model_dump(), prep.estimator_dir, prep.parallelism_factor,
                           prep.num_classes, prep.in_channels, prep.fixed)
    prior = pickle.loads(pickle.dumps(strategy_inputs(cfg, context)["prior"]))
    rng = np.random.default_rng(0)
    outcomes = []
    for _ in range(40):
        config = prep.space.to_choices(prep.space.sample(rng))
        _arch, cost, reasons = price(context, config)
        expected = None if reasons else (float(cost.params), float(cost.latency_ms))
        assert prior(config) == expected
        outcomes.append(expected is None)
    assert any(outcomes) and not all(outcomes)  # both within and over the budgets
    assert strategy_inputs(cfg.with_overrides(**{"strategy.name": "random"}), context) == {}


def test_evolution_is_given_a_proxy_for_its_late_climb() -> None:
    """``hwnas search`` gives evolution ``proxy``: the untrained candidate's synflow on the
    search's own minibatch (another proxy by the ``proxy`` parameter, none with ``null``),
    picklable, its seconds charged to the search's compute."""
    import pickle

    import torch

    from nas.proxies import score_model
    from nas.proxies.scorer import BATCH, minibatch
    from nas.search import _searcher_and_scheduler, prepare, strategy_inputs
    from nas.trial import architecture, task_of

    cfg = load_config(QUICKSTART)
    prep = prepare(cfg)
    context = prep.trial_context()
    proxy = pickle.loads(pickle.dumps(strategy_inputs(cfg, context)["proxy"]))
    config = prep.space.to_choices(prep.space.sample(np.random.default_rng(1)))
    arch = architecture(context, config)
    task = task_of(context)
    data = task.data(arch.resolution)
    images, labels = minibatch(data.train, BATCH, cfg.seed)
    torch.manual_seed(cfg.seed)
    expected = score_model("synflow", task.model(arch, data), images, labels, cfg.seed)
    assert proxy.proxy == "synflow" and proxy(config) == pytest.approx(expected)
    assert proxy.scorer.calls == 1 and proxy.scorer.seconds > 0
    zen = cfg.with_overrides(**{"strategy.params": {"proxy": "zen"}})
    assert strategy_inputs(zen, context)["proxy"].proxy == "zen"
    off = cfg.with_overrides(**{"strategy.params": {"proxy": None}})
    assert strategy_inputs(off, context)["proxy"] is None
    with pytest.raises(ValueError, match="unknown proxy 'flops'"):
        strategy_inputs(cfg.with_overrides(**{"strategy.params": {"proxy": "flops"}}), context)
    _, _, _, scorer = _searcher_and_scheduler(cfg, prep, context)
    assert scorer is not None and scorer.calls == 0  # whose seconds the tracker charges


def test_violations_name_each_broken_budget() -> None:
    cost = Cost(latency_ms=0.5, params=2_000_000, peak_activation_bytes=3 * 2**20, macs=1)
    assert cost.violations(BudgetConfig()) == []
    assert cost.violations(BudgetConfig(latency_ms=0.5, peak_activation_mib=3, params_m=2)) == []
    reasons = cost.violations(BudgetConfig(latency_ms=0.4, peak_activation_mib=2, params_m=1))
    assert len(reasons) == 3
    assert "latency 0.500 ms > 0.4 ms" in reasons[0] and "MiB" in reasons[1] and "M" in reasons[2]


# -- tracker (real SQLite MLflow store, no Ray) ------------------------------------------------
def _result(acc: float, lat: float, epochs: int = 3, rejected: int = 0) -> dict[str, Any]:
    return {"arch": f"a{acc}-{lat}", "accuracy": acc, "latency_ms": lat, "params": 10,
            "peak_activation_bytes": 20, "macs": 30, "epochs": epochs, "train_seconds": 1.0,
            "rejected": rejected, "reject_reason": "latency" if rejected else ""}


@pytest.mark.usefixtures("mlflow_db")
def test_tracker_runs_front_and_hypervolume(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri, "exp", "unit", reference_ms=1.0, params={"seed": 0})
    results = {"t1": _result(0.5, 0.5), "t2": _result(0.9, 0.8, epochs=1),
               "t3": _result(0.4, 0.6), "t4": _result(0.0, 2.0, epochs=0, rejected=1)}
    for trial_id, result in results.items():
        tracker.start_trial(trial_id, result["arch"], {"x": 1})
        tracker.log_epoch(trial_id, result)
        tracker.finish_trial(trial_id, result, "FINISHED", max_epochs=3)
    tracker.start_trial("t5", "never-finishes", {})
    tracker.close("FINISHED")

    # front: (0.5, 0.5) and (0.9, 0.8); (0.4, 0.6) is dominated; the rejected one is left out
    assert [p["arch"] for p in tracker.front()] == ["a0.5-0.5", "a0.9-0.8"]
    # union of the boxes [0, acc] x [lat, ref=1]: 0.5 x 0.5 plus the strip 0.4 x 0.2 above it
    expected = 0.5 * 0.5 + (0.9 - 0.5) * (1.0 - 0.8)
    assert tracker.hypervolume == pytest.approx(expected)
    counts = [tracker.count(o) for o in ("completed", "stopped", "rejected", "killed")]
    assert counts == [2, 1, 1, 0]  # "killed" runs are closed, never "finished" trials

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    assert exp.artifact_location.startswith("file://") and "mlartifacts" in exp.artifact_location
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 6 and all(r.info.status != "RUNNING" for r in runs)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tracker.parent_id]
    assert len(children) == 5
    outcome = {r.data.params["arch"]: r.data.tags["hwnas.outcome"] for r in children}
    assert outcome == {"a0.5-0.5": "completed", "a0.9-0.8": "stopped", "a0.4-0.6": "completed",
                       "a0.0-2.0": "rejected", "never-finishes": "killed"}
    killed = [r for r in children if r.data.params["arch"] == "never-finishes"]
    assert killed[0].info.status == "KILLED"
    history = client.get_metric_history(tracker.parent_id, "hypervolume")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert history[0].value == pytest.approx(0.25) and history[-1].value == pytest.approx(expected)
    files = {a.path for a in client.list_artifacts(tracker.parent_id)}
    assert {"pareto_front.json", "pareto_front.png", "pareto_front.html"} <= files
    front = json.loads(Path(client.download_artifacts(tracker.parent_id, "pareto_front.json",
                                                      str(tmp_path))).read_text())
    assert front["reference_point"] == {"accuracy": 0.0, "latency_ms": 1.0}
    assert [p["accuracy"] for p in front["front"]] == [0.5, 0.9]


@pytest.mark.usefixtures("mlflow_db")
def test_tracker_close_after_crash_marks_parent(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri, "exp", "crash", reference_ms=1.0)
    tracker.start_trial("t1", "arch", {})
    tracker.close("FAILED")
    tracker.close("FINISHED")  # idempotent: the first status stays
    client = MlflowClient(uri)
    assert client.get_run(tracker.parent_id).info.status == "FAILED"
    [child] = client.search_runs([tracker.experiment_id], "tags.`hwnas.role` = 'trial'")
    assert child.info.status == "KILLED" and child.data.tags["hwnas.outcome"] == "killed"


# -- a whole search: CLI -> real local Ray -> SQLite MLflow -----------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_search_cli_end_to_end(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = yaml.safe_load(QUICKSTART.read_text())
    # rejections count: exactly 8 trials, some rejected (count_rejected false: test_quota.py)
    config.update(name="e2e", trials=8, storage_path=str(tmp_path / "ray"), count_rejected=True)
    config["task"].update(max_train=48, max_val=40)
    config["training"].update(epochs=2)
    config["budgets"] = {"latency_ms": 0.3}
    # start 0: random first trials; the size-and-latency start draws only within the budget
    config["strategy"]["params"] = {"population_size": 4, "sample_size": 2, "start": 0}
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("search", "--config", str(path), "--seed", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout is exactly one JSON document
    assert summary["trials"] == 8 and summary["experiment"] == "quickstart"
    assert summary["completed"] + summary["stopped"] + summary["rejected"] == 8
    assert summary["failed"] == 0 and summary["rejected"] >= 1
    assert summary["pareto"] and 0 < summary["hypervolume"] <= 1
    for point in summary["pareto"]:
        assert point["latency_ms"] <= 0.3 and 0 <= point["accuracy"] <= 1
        assert point["epochs"] >= 1 and point["params"] > 0 and point["macs"] > 0

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the default, in the cwd
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert all(r.info.status == "FINISHED" for r in runs)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.params["strategy.name"] == "evolution" and parent.data.params["seed"] == "1"
    assert parent.data.tags["hwnas.estimator"] == "npu32-mbv2-small"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8
    rejected = [r for r in children if r.data.tags["hwnas.outcome"] == "rejected"]
    assert len(rejected) == summary["rejected"]
    for run in rejected:
        assert run.data.metrics["latency_ms"] > 0.3 and run.data.metrics["rejected"] == 1
        assert "accuracy" not in run.data.metrics  # not a failed training: never trained
        assert "latency" in run.data.tags["hwnas.reject_reason"]
    trained = [r for r in children if r.data.tags["hwnas.outcome"] in ("completed", "stopped")]
    for run in trained:
        keys = {"accuracy", "latency_ms", "params", "peak_activation_bytes", "macs", "epochs",
                "train_seconds", "rejected"}
        assert keys <= set(run.data.metrics), run.data.metrics
        epochs = client.get_metric_history(run.info.run_id, "accuracy")
        assert [m.step for m in epochs][:1] == [1]  # per-epoch series
    hv = client.get_metric_history(parent.info.run_id, "hypervolume")
    assert [m.step for m in hv] == list(range(1, 9))
    assert all(b.value >= a.value for a, b in zip(hv, hv[1:]))  # a front only grows
    assert hv[-1].value == pytest.approx(summary["hypervolume"])
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.json", "pareto_front.png", "pareto_front.html"} <= files
    # each front entry names its trial's run (what `hwnas train --run` takes)
    assert {p["run_id"] for p in summary["pareto"]} <= {r.info.run_id for r in trained}


@pytest.mark.slow
def test_search_cli_bad_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("hardware: {profile: npu32, estimator: npu32-mbv2}\n")
    proc = run_cli("search", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "built for space 'mbv2'" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing written



@pytest.mark.slow
def test_sigterm_while_the_search_sets_up_ends_its_run_killed(tmp_path: Path, monkeypatch: Any
                                                              ) -> None:
    """A SIGTERM after the parent run is opened but before Tune starts (here: the moment the
    config is logged to it) still ends that run KILLED, with exit status 143."""
    import os
    import signal

    from mlflow.tracking import MlflowClient

    from nas.search import run_search
    from nas.tracking import SearchTracker

    original = SearchTracker.log_config

    def log_config_then_sigterm(self: Any, config: Any) -> None:
        original(self, config)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(SearchTracker, "log_config", log_config_then_sigterm)
    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(name="setup", trials=4, storage_path=str(tmp_path / "ray"))
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'm.db'}", "experiment": "setup"}
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_search(validate_config(config))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_info.value.code == 128 + signal.SIGTERM
    client = MlflowClient(config["tracking"]["uri"])
    runs = client.search_runs([client.get_experiment_by_name("setup").experiment_id])
    assert [(r.data.tags.get("hwnas.role"), r.info.status) for r in runs] == [("search", "KILLED")]


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_sigterm_mid_search_leaves_no_running_run(tmp_path: Path) -> None:
    """A search killed mid-way (SIGTERM, as a scheduler or `timeout` sends) ends its runs."""
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(name="killed", trials=50, storage_path=str(tmp_path / "ray"))
    config["task"].update(max_train=200, max_val=40)
    config["budgets"] = {}
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
         "search", "--config", str(path)], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    deadline = time.monotonic() + 360
    try:
        while time.monotonic() < deadline:  # wait until a trial has finished and others run
            time.sleep(1)
            exp = (tmp_path / "mlflow.db").exists() and client.get_experiment_by_name(
                "quickstart")
            if exp and len(client.search_runs([exp.experiment_id], "tags.`hwnas.outcome` != ''"
                                              )) >= 1:
                break
        else:
            pytest.fail("no trial finished within 360 s")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    runs = client.search_runs([exp.experiment_id], max_results=200)
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert "RUNNING" not in statuses.values(), stderr[-2000:]
    [parent] = [r for r in runs if r.data.tags.get("hwnas.role") == "search"]
    assert parent.info.status == "KILLED"
    assert len(runs) - 1 < 50  # it really stopped early


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["optuna-nsga2", "random"])
def test_search_other_strategies(strategy: str, tmp_path: Path) -> None:
    """Ray's OptunaSearch and the random baseline run the same trials (rejections included)."""
    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(trials=5, storage_path=str(tmp_path / "ray"), count_rejected=True)
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(epochs=1)
    config["budgets"] = {"latency_ms": 0.25}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("search", "--config", str(path), "--strategy", strategy, "--name", strategy,
                   "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["trials"] == 5 and summary["failed"] == 0
    assert summary["completed"] + summary["stopped"] + summary["rejected"] == 5
    assert all(p["latency_ms"] <= 0.25 for p in summary["pareto"])
    assert not (tmp_path / "mlflow.db").exists()  # --tracking-uri was used instead


def test_tracking_callback_pickles_without_its_live_parts(tmp_path: Path) -> None:
    """Tune pickles callbacks into its experiment folder; a progress display holds locks."""
    import pickle
    import threading

    from nas.tracking import SearchTracker
    from nas.tracking.callback import TrackingCallback

    tracker = SearchTracker(f"sqlite:///{tmp_path / 'm.db'}", "exp", "p", reference_ms=1.0)
    lock = threading.RLock()
    callback = TrackingCallback(tracker, str, 3, on_update=lambda t: lock.acquire())
    blob = pickle.dumps(callback)  # the lock and the database client are not in it
    copy = pickle.loads(blob)
    assert copy.max_epochs == 3 and copy.tracker is tracker  # re-attached by run name
    from nas.tracking import callback as tracking

    tracking._LIVE.pop(tracker.run_name)  # in a process without that search: detached
    orphan = pickle.loads(blob)
    assert orphan.tracker is None and orphan.on_update is None
    orphan.on_trial_start(0, [], object())  # a detached callback does nothing
    tracker.close()



def test_a_search_mostly_rejected_says_so() -> None:
    """A search whose rejections count (count_rejected: true) and that rejected half its trials
    or more before training says that they still used up trials."""
    from nas.cli.search import rejection_hint as _rejection_hint

    assert _rejection_hint(24, 11) is None and _rejection_hint(0, 0) is None
    hint = _rejection_hint(24, 16)
    assert hint is not None and "16 of 24 trials" in hint and "raise trials" in hint


def test_sigterm_is_recorded_even_when_its_exit_is_swallowed() -> None:
    """Ray can turn the SystemExit of a SIGTERM into another exception, or Tune can absorb it
    and end the experiment as finished: the search reads the recorded signal instead."""
    import os
    import signal

    from nas.signals import sigterm_raises

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_raises() as signals:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes of the main thread
                pass
        except SystemExit as exc:  # what Ray might do with it
            assert exc.code == 128 + signal.SIGTERM
    assert signals.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
