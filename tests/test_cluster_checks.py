"""A search the Ray cluster cannot run fails at once, in one line: an address where nothing
listens, or trials asking for resources no node has (which Ray would leave pending forever)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from nas.config import ClusterError
from nas.search import check_reachable, trial_fit_problem
from servers import free_port


def node(cpu: float, gpu: float = 0.0, alive: bool = True) -> dict:
    """A node as ``ray.nodes()`` describes it (the keys these checks read)."""
    resources = {"CPU": cpu, "memory": 1e9, **({"GPU": gpu} if gpu else {})}
    return {"Alive": alive, "Resources": resources}


def test_an_address_where_nothing_listens_fails_in_seconds() -> None:
    port = free_port()
    start = time.perf_counter()
    with pytest.raises(ClusterError, match=rf"127\.0\.0\.1:{port}: .*ray start --head --port"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ClusterError, match="cannot connect"):
        check_reachable(f"ray://127.0.0.1:{port}")
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1", "127.0.0.1:port", ":6379"])
def test_an_address_that_is_not_host_port_is_named(address: str) -> None:
    with pytest.raises(ClusterError, match="is not HOST:PORT"):
        check_reachable(address)


def test_auto_is_left_to_ray() -> None:
    check_reachable("auto")  # Ray finds the cluster itself; nothing to probe


def test_a_trial_fits_when_one_alive_node_has_all_it_asks() -> None:
    nodes = [node(2), node(4, gpu=1)]
    assert trial_fit_problem(nodes, cpus=1, gpus=0) is None
    assert trial_fit_problem(nodes, cpus=4, gpus=0.25) is None
    # enough CPUs on one node and a GPU on another is not enough for one trial
    assert "at most 8 CPU and 1 GPU" in trial_fit_problem([node(8), node(1, gpu=1)], 4, 1)
    # a dead node's resources do not count
    assert trial_fit_problem([node(2), node(4, gpu=1, alive=False)], 1, 0.5) is not None


def test_a_trial_asking_for_a_gpu_on_a_cpu_only_cluster_says_how_to_train_on_cpus() -> None:
    problem = trial_fit_problem([node(2)], cpus=1, gpus=0.25)
    assert problem is not None
    assert "1 CPU and 0.25 GPU" in problem and "at most 2 CPU and 0 GPU" in problem
    assert "resources.gpus: 0" in problem
    assert "resources.gpus" not in trial_fit_problem([node(2, gpu=1)], cpus=4, gpus=1)


@pytest.mark.slow
def test_search_asking_for_a_gpu_on_a_local_ray_without_one_is_one_line(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(trials=2, resources={"gpus": 0.25}, storage_path=str(tmp_path / "ray"),
                  tracking={"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("search", "--config", str(path), "--json")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hwnas:")]
    assert errors == [errors[0]] and "0.25 GPU" in errors[0] and "0 GPU on one node" in errors[0]
    assert not (tmp_path / "ray").exists() or not any((tmp_path / "ray").rglob("*.json"))
