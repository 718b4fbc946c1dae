"""The configs a user starts from on GPUs (configs/cifar10-gpu.yaml, configs/imagefolder-gpu.yaml),
each run for 2 trials on a tiny dataset written in its format (CPU: gpus 0), and the CIFAR-10
one with its four trials per GPU where a GPU exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, run_cli
from nas.config import load_config
from nas.synthetic_data import write_cifar10, write_imagefolder

CONFIGS = ROOT / "configs"


@pytest.mark.parametrize("name", ["cifar10-gpu", "imagefolder-gpu"])
def test_gpu_configs_are_valid_and_pack_four_trials_per_gpu(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.resources.gpus == 0.25 and config.resources.simulated_memory_mib is None
    assert config.task.dataset == name.removesuffix("-gpu") and not config.task.download


def _dataset(name: str, folder: Path) -> Path:
    rng = np.random.default_rng(0)
    if name == "cifar10-gpu":
        return write_cifar10(folder, 60, rng, test_images=10)
    return write_imagefolder(folder, ("cat", "dog", "fox"), 8, rng)


def _run(name: str, tmp_path: Path, gpus: float, trials: int) -> tuple[dict[str, Any], list]:
    """Run config ``name`` on a tiny dataset in ``tmp_path``; its summary and trial runs."""
    from mlflow.tracking import MlflowClient

    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    config.update(trials=trials, storage_path=str(tmp_path / "ray"))
    config["task"].update(data_dir=str(_dataset(name, tmp_path / "data")), max_train=24,
                          max_val=12)
    config["training"].update(epochs=1, batch_size=8)
    config["resources"].update(cpus=1, gpus=gpus)
    config["strategy"]["params"] = {"population_size": trials, "sample_size": 2}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("search", "--config", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the configs' default URI
    exp = client.get_experiment_by_name(config["tracking"]["experiment"])
    runs = client.search_runs([exp.experiment_id], "tags.`hwnas.role` = 'trial'")
    return summary, runs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10-gpu", "imagefolder-gpu"])
@pytest.mark.usefixtures("mlflow_db")
def test_gpu_config_runs_two_trials_on_cpu(name: str, tmp_path: Path) -> None:
    summary, runs = _run(name, tmp_path, gpus=0, trials=2)
    # count_rejected: false: 2 candidates within the budgets trained, however many were rejected
    assert summary["completed"] == 2 and summary["failed"] == 0
    assert summary["trials"] == 2 + summary["rejected"] == len(runs)
    trained = [r for r in runs if r.data.tags["hwnas.outcome"] == "completed"]
    assert len(trained) == 2
    for run in trained:
        assert run.info.status == "FINISHED" and run.data.metrics["epochs"] == 1
        assert 0 <= run.data.metrics["accuracy"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cifar10_config_packs_trials_on_a_gpu(tmp_path: Path) -> None:
    """gpus 0.25 as shipped: four trials at once on one GPU, each within its memory share."""
    summary, runs = _run("cifar10-gpu", tmp_path, gpus=0.25, trials=4)
    assert summary["trials"] == 4 and summary["failed"] == 0
    assert summary["completed"] + summary["rejected"] == 4 and summary["completed"] >= 1
