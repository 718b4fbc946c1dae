"""The MLflow side of a search, read as a person reads it: trial run names, rejected trials
without accuracy, the search's description, the experiment marked for MLflow 3's training view,
when the big HTML plot is written, the hint that opens the UI, and a legend that hides no point.
Real SQLite MLflow store, no Ray."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT

ARCH = ("r32_w1.0_d32:stem_c32_s1-conv_k5_c32_r2_s1-ibn_k3_e1_c32_r1_s1-ibn_k3_e6_c32_r3_s2-"
        "fibn_k5_e3_c64_r5_s2-conv_k5_c96_r3_s1-conv_k3_c224_r4_s2-ibn_k3_e6_c352_r1_s1-"
        "head_c1280")


@pytest.mark.slow  # a fresh interpreter
def test_store_imports_no_ray() -> None:
    code = ("import sys, nas.tracking.store, nas.tracking; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_trial_run_names_lead_with_what_tells_trials_apart() -> None:
    from nas.tracking.text import trial_label, trial_run_name

    assert trial_label(7) == "t007" and trial_label(1234) == "t1234"
    assert trial_run_name("t007", ARCH) == "t007 ciifcci"
    assert trial_run_name("t007", ARCH, 0.13812) == "t007 ciifcci 0.138ms"
    assert trial_run_name("t012", ARCH, 0.41, "rejected") == "t012 ciifcci 0.41ms rejected"
    assert trial_run_name("t012", ARCH, 2.5, "completed") == "t012 ciifcci 2.5ms"
    assert trial_run_name("t003", "not-an-arch", 1234.4) == "t003 1234ms"
    # the runs table shows ~15 characters: trial number and block kinds fit
    assert len("t007 ciifcci") <= 15


def _result(acc: float, lat: float, epochs: int = 3, rejected: int = 0) -> dict[str, Any]:
    return {"arch": ARCH, "accuracy": acc, "latency_ms": lat, "params": 10,
            "peak_activation_bytes": 20, "macs": 30, "epochs": epochs, "train_seconds": 1.0,
            "rejected": rejected, "reject_reason": "latency 2 ms > 1 ms" if rejected else ""}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, list[str]]:
    """A tracker fed four trials (one rejected, then one off the front), its client, and the
    artifact files it uploaded, in order (one store for the tests that only read it)."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    tmp_path = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"strategy.name": "evolution", "trials": 4, "budgets.latency_ms": 1.0,
              "budgets.params_m": None, "space.name": "mbv2-small", "seed": 3}
    tracker = SearchTracker(uri, "exp", "unit-search", reference_ms=1.0, params=params)
    uploads: list[str] = []
    log_artifact = tracker.client.log_artifact

    def spy(run_id: str, path: str, *args: Any) -> None:
        uploads.append(Path(path).name)
        log_artifact(run_id, path, *args)

    tracker.client.log_artifact = spy
    tracker.log_config({"name": "unit", "trials": 4})
    # Tune's trial ids are random hex; the names number the trials in the order they started
    rows = [("c3a1", _result(0.5, 0.5)), ("07fe", _result(0.0, 2.0, 0, 1)),
            ("9b20", _result(0.9, 0.8)), ("e411", _result(0.4, 0.6))]
    for trial_id, result in rows:
        tracker.start_trial(trial_id, ARCH, {"x": 1})
        tracker.log_epoch(trial_id, result)
        tracker.finish_trial(trial_id, result, "FINISHED", max_epochs=3)
    tracker.close("FINISHED")
    return tracker, MlflowClient(uri), uploads


@pytest.mark.slow  # the `tracked` store: a new MLflow SQLite store (~20 s)
def test_rejected_trial_has_no_accuracy_and_says_why(tracked: tuple[Any, Any, list[str]]
                                                     ) -> None:
    tracker, client, _ = tracked
    runs = client.search_runs([tracker.experiment_id], "tags.`hwnas.role` = 'trial'")
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == ["t001 ciifcci 0.5ms", "t002 ciifcci 2ms rejected",
                               "t003 ciifcci 0.8ms", "t004 ciifcci 0.6ms"]
    rejected = by_name["t002 ciifcci 2ms rejected"]
    assert rejected.data.tags["hwnas.outcome"] == "rejected"
    assert rejected.data.tags["hwnas.reject_reason"] == "latency 2 ms > 1 ms"
    assert "accuracy" not in rejected.data.metrics
    assert rejected.data.metrics["latency_ms"] == 2.0 and rejected.data.metrics["rejected"] == 1
    assert client.get_metric_history(rejected.info.run_id, "accuracy") == []
    for name in ("t001 ciifcci 0.5ms", "t003 ciifcci 0.8ms"):
        assert by_name[name].data.metrics["accuracy"] > 0
    # everything computed from the runs still counts the rejection as a trial, not a point
    assert tracker.count("rejected") == 1 and len(tracker.candidates()) == 3
    assert [(p["trial"], p["trial_id"]) for p in tracker.front()] == [("t001", "c3a1"),
                                                                       ("t003", "9b20")]


@pytest.mark.slow  # the `tracked` store: a new MLflow SQLite store (~20 s)
def test_parent_description_summarizes_the_search(tracked: tuple[Any, Any, list[str]],
                                                  tmp_path: Path) -> None:
    import yaml

    tracker, client, _ = tracked
    parent = client.get_run(tracker.parent_id)
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(
        "**hwnas search `unit-search`** (evolution, finished): 4 of 4 trials finished: 3 "
        "completed, 0 stopped by ASHA, 1 rejected before training, 0 failed. Hypervolume "
        f"**{tracker.hypervolume:.4f}**, Pareto front of 2.")
    assert "latency ≤ 1.0 ms" in note and "parameters ≤" not in note  # budgets that are set
    assert "| t001 | 0.5000 | 0.5000 | 3 |" in note and "| t003 | 0.8000 | 0.9000 | 3 |" in note
    assert "hwnas search --config search_config.yaml" in note
    assert "hwnas search --resume unit-search" in note
    config = Path(client.download_artifacts(tracker.parent_id, "search_config.yaml",
                                            str(tmp_path)))
    assert yaml.safe_load(config.read_text()) == {"name": "unit", "trials": 4}


@pytest.mark.slow  # the `tracked` store: a new MLflow SQLite store (~20 s)
def test_experiment_opens_in_the_training_view_with_metric_columns(
        tracked: tuple[Any, Any, list[str]]) -> None:
    from nas.tracking.store import VIEW_TAG, experiment_id

    tracker, client, _ = tracked
    tags = client.get_experiment(tracker.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(tags[VIEW_TAG])
    state = json.loads(view["state"])
    assert isinstance(view["name"], str) and isinstance(view["createdAt"], int)
    assert state["selectedColumns"][:2] == ["metrics.`accuracy`", "metrics.`latency_ms`"]
    assert "tags.`hwnas.outcome`" in state["selectedColumns"]
    assert state["columnOrder"][1:] == state["selectedColumns"]  # run name first, then those
    assert state["columnWidths"] == {"attributes.`Run Name`": 270}
    # an experiment made before (no tags) is marked on first use; a marked one is left alone
    bare = client.create_experiment("older")
    assert experiment_id(client, "older", tracker.tracking_uri) == bare
    assert client.get_experiment(bare).tags.keys() >= {"mlflow.experimentKind", VIEW_TAG}
    assert experiment_id(client, "exp", tracker.tracking_uri) == tracker.experiment_id
    assert client.get_experiment(tracker.experiment_id).tags[VIEW_TAG] == tags[VIEW_TAG]


@pytest.mark.slow  # the `tracked` store: a new MLflow SQLite store (~20 s)
def test_html_plot_only_when_the_front_changes(tracked: tuple[Any, Any, list[str]]) -> None:
    tracker, client, uploads = tracked
    # trials 1, 3 change the front (trial 2 is rejected, trial 4 is dominated); close writes
    # the final one since trial 4 came after the last HTML. The PNG is drawn when the trained
    # candidates change (trials 1, 3, 4), not for the rejected one nor again at close.
    assert uploads.count("pareto_front.json") == 5 and uploads.count("pareto_front.html") == 3
    assert uploads.count("pareto_front.png") == 3
    files = {a.path for a in client.list_artifacts(tracker.parent_id)}
    assert {"pareto_front.json", "pareto_front.png", "pareto_front.html",
            "search_config.yaml"} <= files
    # drawn on a background thread, uploaded in order: the last JSON is the final state
    front = json.loads(Path(client.download_artifacts(
        tracker.parent_id, "pareto_front.json")).read_text())
    assert front["trials_finished"] == 4 and len(front["front"]) == 2


@pytest.mark.slow  # a new MLflow SQLite store
def test_a_failed_plot_upload_is_raised_and_the_parent_still_ends(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri, "exp", "broken-plots", reference_ms=1.0)

    def refuse(*args: Any) -> None:
        raise OSError("artifact store full")

    tracker.client.log_artifact = refuse
    tracker.start_trial("c3a1", ARCH, {"x": 1})
    tracker.finish_trial("c3a1", _result(0.5, 0.5), "FINISHED", max_epochs=3)
    with pytest.raises(OSError, match="artifact store full"):
        tracker.close("FINISHED")
    assert MlflowClient(uri).get_run(tracker.parent_id).info.status == "FINISHED"


def test_ui_hint_names_the_venv_mlflow_and_the_url(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.tracking.store import ui_hint

    monkeypatch.chdir(tmp_path)
    hint = ui_hint("sqlite:///mlflow.db", "3")
    exe = Path(sys.executable).parent / "mlflow"
    assert exe.is_file()  # the venv has the executable the hint names
    command, url = re.fullmatch(r"Browse the runs:\n  (.+)\n  then open (\S+)", hint).groups()
    assert command == (f"{exe} ui --backend-store-uri sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
                       f" --workers 1")
    page = "#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=hwnas-trials"
    assert url == f"http://127.0.0.1:5000/{page}"
    assert ui_hint("http://127.0.0.1:5123/", "3") == (
        f"Browse the runs at http://127.0.0.1:5123/{page}")


def test_pareto_legend_hides_no_point() -> None:
    """Points everywhere in the axes (corners included): the legend's box, in display
    coordinates, holds none of them and stays outside the axes."""
    from nas.plots import pareto_figure

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.uniform(0.05, 0.3, 60), [0.05, 0.3, 0.05, 0.3]])
    acc = np.concatenate([rng.uniform(0.1, 0.99, 60), [0.1, 0.1, 0.99, 0.99]])
    points = [{"latency_ms": float(x), "accuracy": float(y)} for x, y in zip(lat, acc)]
    front = sorted(points, key=lambda p: p["latency_ms"])[:3]
    fig = pareto_figure(points, front, "title", budget_ms=0.25)
    fig.canvas.draw()
    [ax] = fig.axes
    [legend] = fig.legends
    box = legend.get_window_extent()
    shown = ax.transData.transform(np.column_stack([lat, acc]))
    inside = [(x, y) for x, y in shown if box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1]
    assert not inside
    assert not box.overlaps(ax.get_window_extent())
    assert len(legend.get_texts()) == 3  # evaluated, Pareto front, budget


@pytest.mark.slow  # a new MLflow SQLite store (~20 s)
def test_killed_search_ends_its_runs_even_when_a_plot_fails(tmp_path: Path) -> None:
    """A SIGTERM in the middle of matplotlib's first import leaves it half-imported, and the
    final plot then raises: the runs must still end KILLED (a finished search still raises)."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    for status in ("KILLED", "FINISHED"):
        tracker = SearchTracker(uri, "exp", f"unit-{status}", reference_ms=1.0)
        tracker.start_trial("c3a1", ARCH, {"x": 1})
        tracker.log_epoch("c3a1", _result(0.5, 0.5, epochs=1))

        def broken(*args: Any, **kwargs: Any) -> None:
            raise KeyError("Rectangle:kwdoc")

        tracker.write_artifacts = broken  # type: ignore[method-assign]
        if status == "FINISHED":
            with pytest.raises(KeyError):
                tracker.close(status)
            continue
        tracker.close(status)
        assert client.get_run(tracker.parent_id).info.status == "KILLED"
        runs = client.search_runs([tracker.experiment_id])
        assert runs and "RUNNING" not in {r.info.status for r in runs}


@pytest.mark.slow  # a new MLflow SQLite store (~20 s)
def test_resume_ends_a_run_killed_between_its_final_tags_and_its_end(tmp_path: Path) -> None:
    """A driver SIGKILLed after a trial's outcome tags were written but before its run was
    ended leaves that run RUNNING: the resumed search keeps the trial and ends the run, and
    ends a run killed mid-training KILLED."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker
    from nas.tracking.store import log_values

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    first = SearchTracker(uri, "exp", "unit-resume", reference_ms=1.0)
    done = first.start_trial("t_done", ARCH, {"x": 1})
    # its final tags are written, and the driver dies before the run is ended
    log_values(client, done, _result(0.5, 0.5), 3, {"hwnas.outcome": "completed"})
    mid = first.start_trial("t_mid", ARCH, {"x": 1})
    first.log_epoch("t_mid", _result(0.4, 0.6, epochs=1))

    resumed = SearchTracker(uri, "exp", "unit-resume", reference_ms=1.0,
                            resume_run_id=first.parent_id)
    assert client.get_run(done).info.status == "FINISHED"
    assert [r["trial_id"] for r in resumed.finished] == ["t_done"]
    assert client.get_run(mid).info.status == "KILLED"
    assert client.get_run(mid).data.tags["hwnas.outcome"] == "killed"
    assert resumed.start_trial("t_done", ARCH, {"x": 1}) is None  # never run again
    resumed.close()
    assert "RUNNING" not in {r.info.status for r in client.search_runs([resumed.experiment_id])}
