"""Failures a long search must survive: a candidate that crashes, an unreachable MLflow server,
a killed driver (resume), a lost worker node. Real processes, all on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import yaml

from conftest import ROOT, run_cli

QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def small_config(tmp_path: Path, **changes: Any) -> Path:
    config = yaml.safe_load(QUICKSTART.read_text())
    config.update(storage_path=str(tmp_path / "ray"), trials=4)
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(epochs=1)
    config["budgets"] = {}
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_candidate_crash_is_a_failed_child_run_and_the_search_goes_on(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    # a learning rate of 1e30 overflows the weights: the loss turns NaN and training raises
    path = small_config(tmp_path, trials=3, training__lr=1e30, resources__max_failures=0)
    proc = run_cli("search", "--config", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["trials"] == 3 and summary["failed"] == 3 and summary["pareto"] == []
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    children = [r for r in runs if r.data.tags.get("hwnas.role") == "trial"]
    assert len(children) == 3
    for run in children:
        assert run.info.status == "FAILED" and run.data.tags["hwnas.outcome"] == "failed"
        assert "training loss is not finite" in run.data.tags["hwnas.error"]
    [parent] = [r for r in runs if r.data.tags.get("hwnas.role") == "search"]
    assert parent.info.status == "FINISHED"


def test_unreachable_mlflow_server_fails_before_any_trial(tmp_path: Path) -> None:
    path = small_config(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_cli("search", "--config", str(path), "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"MLflow server {uri} is unreachable" in proc.stderr
    assert not (tmp_path / "ray").exists()  # no trial, not even Ray's experiment folder
