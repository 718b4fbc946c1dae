"""What the MLflow UI shows of a real search, read back through a real ``mlflow server``'s REST
API (the calls the UI makes): the experiment's kind and saved view, the parent's description,
scannable and distinct trial run names nested under the parent, metrics on trained trials, no
accuracy on rejected ones, and the plots in the parent's artifact list."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, run_cli
from servers import MlflowServer

NAME = re.compile(r"^t00[1-4] [ifc]{7} \d[\d.]*ms( rejected)?$")


def rest(server: MlflowServer, path: str, body: dict[str, Any] | None = None,
         **query: str) -> dict[str, Any]:
    url = f"{server.uri}/api/2.0/mlflow/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def tags_of(entity: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


@pytest.mark.slow
def test_a_search_reads_well_in_the_ui(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(name="ui", trials=4, storage_path=str(tmp_path / "ray"), count_rejected=True)
    config["task"].update(max_train=48, max_val=40)
    config["training"].update(epochs=1)
    config["budgets"] = {"latency_ms": 0.3}
    # start 0: random first trials; the size-and-latency start draws only within the budget
    config["strategy"]["params"] = {"population_size": 4, "sample_size": 2, "start": 0}
    path = tmp_path / "ui.yaml"
    path.write_text(yaml.safe_dump(config))
    server = MlflowServer(tmp_path)
    try:
        proc = run_cli("search", "--config", str(path), "--seed", "1", "--tracking-uri",
                       server.uri, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]

        experiment = rest(server, "experiments/get-by-name",
                          experiment_name="quickstart")["experiment"]
        exp_tags = tags_of(experiment)
        assert exp_tags["mlflow.experimentKind"] == "custom_model_development"
        view = json.loads(json.loads(exp_tags["mlflow.sharedViewState.hwnas-trials"])["state"])
        assert "metrics.`accuracy`" in view["selectedColumns"]
        link = (f"{server.uri}/#/experiments/{experiment['experiment_id']}/runs"
                f"?workflowType=machine_learning&viewStateShareKey=hwnas-trials")
        assert f"Browse the runs at {link}" in proc.stdout  # the closing hint

        runs = rest(server, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                            "max_results": 100})["runs"]
        [parent] = [r for r in runs if tags_of(r["data"])["hwnas.role"] == "search"]
        parent_id = parent["info"]["run_id"]
        note = tags_of(parent["data"])["mlflow.note.content"]
        assert note.startswith(f"**hwnas search `{parent['info']['run_name']}`** (evolution, "
                               f"finished): 4 of 4 trials finished")

        children = [r for r in runs if tags_of(r["data"]).get("mlflow.parentRunId") == parent_id]
        names = [r["info"]["run_name"] for r in children]
        assert len(children) == 4 and len(set(names)) == 4, names
        assert all(NAME.match(n) for n in names), names
        assert len({n[:4] for n in names}) == 4  # the trial numbers alone tell them apart
        outcomes = {r["info"]["run_name"]: tags_of(r["data"])["hwnas.outcome"] for r in children}
        metrics = {r["info"]["run_name"]: {m["key"] for m in r["data"].get("metrics", [])}
                   for r in children}
        rejected = [n for n, o in outcomes.items() if o == "rejected"]
        trained = [n for n, o in outcomes.items() if o in ("completed", "stopped")]
        assert rejected and trained and len(rejected) + len(trained) == 4, outcomes
        for name in rejected:
            assert name.endswith(" rejected")
            assert "accuracy" not in metrics[name] and "latency_ms" in metrics[name]
        for name in trained:
            assert {"accuracy", "latency_ms", "params", "epochs"} <= metrics[name]

        files = {f["path"] for f in rest(server, "artifacts/list", run_id=parent_id)["files"]}
        assert {"pareto_front.json", "pareto_front.png", "pareto_front.html",
                "search_config.yaml"} <= files
    finally:
        server.stop()
