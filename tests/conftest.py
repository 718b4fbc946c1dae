from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on a busy 2-core machine more make small models ~40x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def _empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store as MLflow creates it, made once per test process."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the tables
    return path


@pytest.fixture
def mlflow_db(tmp_path: Path, _empty_mlflow_store: Path) -> Path:
    """``tmp_path/mlflow.db`` (where the configs' default URI and the tests point) holding an
    empty store: MLflow takes 3-4 s to create a store's tables, a copy a millisecond. For tests
    whose subject is not the store's creation (``make demo`` and the tests without this fixture
    still create theirs)."""
    import shutil

    shutil.copyfile(_empty_mlflow_store, tmp_path / "mlflow.db")
    return tmp_path / "mlflow.db"


def strict_loads(text: str) -> object:
    """``json.loads`` that rejects NaN and Infinity, as strict JSON parsers (jq, JavaScript)
    do: every ``--json`` output and manifest must pass it."""
    def reject(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def small_networks(config: dict) -> None:
    """Narrow a search config's space to width 0.5 at 24 px, every other dimension free.

    A test config without budgets would train any candidate, up to the 20M-parameter networks
    of width 1.0 at 32 px (3.8 s an epoch of 32 images on one core); at width 0.5 and 24 px one
    trains in about a third of that. For tests that do not depend on the candidates' size."""
    from searchspaces.spaces import get_space

    dimensions = get_space(config["space"]["name"]).dimensions()
    config["space"].update(free=sorted(dimensions),
                           choices={"width_mult": [0.5], "resolution": [24]})


def run_cli(*args: str, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hwnas`` entry point as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout,
    )


def kill_search_after(path: Path, cwd: Path, name: str, completed: int) -> str:
    """Start ``hwnas search --config path --name name`` in ``cwd`` (MLflow in ``cwd``/mlflow.db),
    SIGKILL it and the Ray it started once ``completed`` trials have completed, and return the
    experiment id."""
    import os
    import signal
    import time

    from mlflow.tracking import MlflowClient

    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
         "search", "--config", str(path), "--name", name], cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    deadline = time.monotonic() + 180
    try:
        while True:
            assert time.monotonic() < deadline, f"no {completed} trials completed within 180 s"
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.5)
            exp = (cwd / "mlflow.db").exists() and client.get_experiment_by_name("quickstart")
            if exp and len(client.search_runs(
                    [exp.experiment_id], "tags.`hwnas.outcome` = 'completed'")) >= completed:
                return exp.experiment_id
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait(30)


def file_tree(root: Path) -> list[tuple[str, int, int]]:
    """Every path under ``root`` with its size and mtime: equal before and after a call means
    the call wrote nothing there."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))
