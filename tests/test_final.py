"""``hwnas train`` and ``hwnas export --weights/--run``: final training of a chosen candidate,
checkpointed and resumable, logged to MLflow, exported to ONNX.

Tiny on purpose: a 600-parameter network on 8x8 digits (64 training, 32 validation images), so
an epoch takes well under a second; most of a test's time is MLflow's and the exporters'.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from conftest import ROOT, strict_loads
from nas.cli import main
from nas.config import validate_config
from nas.final import CHECKPOINT, WEIGHTS, Source, load_weights, model_from_weights, plan_final
from nas.final import train_final as run_final

ARCH = "r8_w1.0_d8:stem_c8_s1-ibn_k3_e1_c8_r1_s2-head_c16"
CONFIG = {"name": "final-test", "seed": 3,
          "task": {"dataset": "digits", "max_train": 64, "max_val": 32},
          "training": {"batch_size": 16, "lr": 0.01}}
EPOCH_KEYS = ("train_loss", "accuracy", "val_loss", "lr", "epoch_seconds")


pytestmark = pytest.mark.usefixtures("one_thread")


def config_for(folder: Path) -> dict:
    return {**CONFIG, "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}",
                                   "experiment": "final-test"}}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A search's parent and child run as ``hwnas search`` writes them (no Ray: the tracker
    alone), then ``hwnas train --run CHILD --epochs 2``: the config comes from the search."""
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    folder = tmp_path_factory.mktemp("final")
    config = validate_config(config_for(folder))
    tracker = SearchTracker(config.tracking.uri, "final-test", "search-1", reference_ms=1.0)
    tracker.log_config(config.model_dump())
    child = tracker.start_trial("t1", ARCH, {"s0_block": "ibn"})
    tracker.finish_trial("t1", {"arch": ARCH, "accuracy": 0.5, "latency_ms": 0.1, "epochs": 1,
                                "params": 586, "peak_activation_bytes": 4096, "macs": 9000,
                                "train_seconds": 0.5}, "FINISHED", max_epochs=1)
    tracker.close()
    out = folder / "out"
    code = main(["train", "--run", child, "--epochs", "2", "--out", str(out), "--tracking-uri",
                 config.tracking.uri, "--json"])
    assert code == 0
    return {"folder": folder, "out": out, "uri": config.tracking.uri, "child": child,
            "parent": tracker.parent_id, "client": MlflowClient(config.tracking.uri)}


def test_train_from_a_child_run_is_linked_and_logged(trained: dict) -> None:
    client = trained["client"]
    run_id = json.loads((trained["out"] / "final.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["hwnas.role"] == "final"
    assert run.data.tags["hwnas.search_run_id"] == trained["parent"]
    assert run.data.tags["hwnas.source_run_id"] == trained["child"]
    assert "mlflow.parentRunId" not in run.data.tags  # not one of the search's trials
    assert run.data.params["arch"] == ARCH and run.data.params["lr"] == "0.01"  # search config
    for key in EPOCH_KEYS:
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2]
    assert {a.path for a in client.list_artifacts(run_id)} == {"onnx", "weights"}
    models = client.search_logged_models([run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    assert len(models) == 1 and models[0].status == "READY"
    # the MLflow model (pt2, no pickle) computes what the saved weights compute
    import mlflow.pytorch

    logged = mlflow.pytorch.load_model(models[0].model_uri)
    model = model_from_weights(load_weights(trained["out"] / WEIGHTS)).model
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(logged(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("how", ["weights", "checkpoint", "run"])
def test_onnx_of_the_trained_model_matches_torch(trained: dict, how: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The exported ONNX computes in ONNX Runtime what the trained torch model computes."""
    run_id = json.loads((trained["out"] / "final.json").read_text())["run_id"]
    source = {"weights": ["--weights", str(trained["out"] / WEIGHTS)],
              "checkpoint": ["--weights", str(trained["out"] / CHECKPOINT)],
              "run": ["--run", run_id, "--tracking-uri", trained["uri"]]}[how]
    onnx = tmp_path / "m.onnx"
    code, stdout, stderr = cli(capsys, "export", *source, "--format", "onnx", "--out",
                               str(onnx), "--json")
    assert code == 0, stderr
    info = strict_loads(stdout)
    assert info["trained"] is True and info["arch"] == ARCH and info["input_shape"] == [1, 1, 8, 8]
    state = load_weights(trained["out"] / WEIGHTS)
    assert state["epoch"] == 2
    model = model_from_weights(state).model
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        expected = model(images).numpy()
    got = np.concatenate([session.run(None, {"input": images[i:i + 1].numpy()})[0]
                          for i in range(len(images))])
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
    assert np.abs(expected).max() > 1e-2  # a trained classifier, not all zeros


def test_an_interrupted_training_resumes_to_the_same_weights(trained: dict,
                                                             tmp_path: Path) -> None:
    """Stopped after epoch 1 and started again, training continues at epoch 2 in the same MLflow
    run, with one metric point per epoch, and ends with the weights of an uninterrupted run
    (the --run training above: same arch, config and seed)."""
    config = validate_config(config_for(trained["folder"]))
    plan = plan_final(Source(ARCH, config), 2, tmp_path / "out")

    class Stop(Exception):
        pass

    def stop_after_first(epoch: int, metrics: dict[str, float]) -> None:
        raise Stop

    with pytest.raises(Stop):
        run_final(plan, on_epoch=stop_after_first)
    run_id = json.loads((tmp_path / "out" / "final.json").read_text())["run_id"]
    assert trained["client"].get_run(run_id).info.status == "FAILED"
    assert load_weights(tmp_path / "out" / CHECKPOINT)["epoch"] == 1
    result = run_final(plan_final(Source(ARCH, config), 2, tmp_path / "out"))
    assert (result.run_id, result.start_epoch, len(result.history)) == (run_id, 1, 2)
    client = trained["client"]
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in EPOCH_KEYS:
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2]
    resumed = load_weights(tmp_path / "out" / WEIGHTS)["model"]
    straight = load_weights(trained["out"] / WEIGHTS)["model"]
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name
    # a third start on a finished training does nothing and says so
    again = run_final(plan_final(Source(ARCH, config), 2, tmp_path / "out"))
    assert (again.start_epoch, again.run_id) == (2, run_id)
    assert [m.step for m in client.get_metric_history(run_id, "accuracy")] == [1, 2]


def test_bad_input_is_one_line(trained: dict, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    uri = trained["uri"]
    plain = trained["client"].create_run(
        trained["client"].get_experiment_by_name("final-test").experiment_id).info.run_id
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config_for(trained["folder"])))
    cases = [
        (["train", "--run", "0" * 32, "--epochs", "1", "--tracking-uri", uri], "no MLflow run"),
        (["train", "--run", plain, "--epochs", "1", "--tracking-uri", uri], "has no arch"),
        (["train", "--run", trained["parent"], "--epochs", "1", "--tracking-uri", uri],
         "child runs"),
        (["train", ARCH, "--epochs", "0", "--config", str(cfg)], "--epochs must be >= 1"),
        (["train", ARCH, "--run", trained["child"], "--epochs", "1"], "either an ARCH"),
        (["train", "--epochs", "1"], "either an ARCH"),
        (["train", ARCH, "--config", str(cfg)], "Missing option '--epochs'"),
        (["train", ARCH, "--epochs", "3", "--config", str(cfg), "--out", str(trained["out"])],
         "holds a training with another epochs"),
        (["train", ARCH, "--epochs", "1", "--config", str(cfg), "--device", "tpu9"],
         "unknown torch device"),
        (["export", "--weights", str(tmp_path / "nope.pt"), "--format", "onnx", "--out",
          str(tmp_path / "x")], "no checkpoint file"),
        (["export", "--weights", str(cfg), "--format", "onnx", "--out", str(tmp_path / "x")],
         "not an hwnas checkpoint"),
        (["export", "--run", "0" * 32, "--tracking-uri", uri, "--format", "onnx", "--out",
          str(tmp_path / "x")], "no MLflow run"),
        (["export", "--weights", str(trained["out"] / WEIGHTS), "--num-classes", "5",
          "--format", "onnx", "--out", str(tmp_path / "x")], "num classes 10, not 5"),
    ]
    for args, message in cases:
        for extra in ([], ["--json"]):
            code, stdout, stderr = cli(capsys, *args, *extra)
            lines = stderr.strip().splitlines()
            assert code == 2 and stdout == "", (args, stderr)
            assert len(lines) == 1 and lines[0].startswith("hwnas: error:"), (args, stderr)
            assert message in stderr, (args, stderr)
    assert not (tmp_path / "x").exists()


def test_help_explains_train_and_export(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = cli(capsys, "train", "--help")
    assert code == 0 and "--run" in stdout and "resume" in stdout.lower()
    code, stdout, _ = cli(capsys, "arch", "export", "--help")
    assert code == 0 and "--weights" in stdout and "--run" in stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path: Path, sig: int) -> None:
    """``hwnas train`` killed after its first checkpoint and started again continues after the
    checkpoint's epoch (not from 0) in the same MLflow run, which ends FINISHED with exactly
    one point per epoch per metric. SIGTERM ends the first process's run KILLED (exit 143)."""
    from mlflow.tracking import MlflowClient

    epochs = 6
    cfg = tmp_path / "c.yaml"
    config = config_for(tmp_path)
    config["task"] = {**config["task"], "max_train": 320}
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    args = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
            "train", ARCH, "--config", str(cfg), "--epochs", str(epochs), "--out", str(out),
            "--threads", "1", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / CHECKPOINT).exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    reached = load_weights(out / CHECKPOINT)["epoch"]
    assert 1 <= reached < epochs
    client = MlflowClient(config["tracking"]["uri"])
    run_id = json.loads((out / "final.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == ("KILLED" if sig == signal.SIGTERM
                                                  else "RUNNING")
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    summary = strict_loads(again.stdout)
    assert summary["run_id"] == run_id
    assert summary["start_epoch"] == reached and len(summary["history"]) == epochs
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in EPOCH_KEYS:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert steps == list(range(1, epochs + 1)), (key, steps)
