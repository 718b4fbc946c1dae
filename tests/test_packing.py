"""Packed trials (nas/packing.py): each trial's share of GPU memory, the retry at half the batch
after an out-of-memory error, how MLflow records it, and a whole search where candidates run out
of (simulated) memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import ROOT, run_cli
from nas.packing import (
    CONTEXT_RESERVE_BYTES,
    OutOfMemory,
    check_simulated,
    limit_memory,
    memory_fraction,
    oom_reason,
    train_with_oom_retry,
)

GIB = 1 << 30


# -- memory share -----------------------------------------------------------------------------
def test_memory_fraction_is_the_share_less_the_context() -> None:
    assert memory_fraction(0.25, 140 * GIB) == pytest.approx(0.25 - 1 / 140)
    assert memory_fraction(0.5, 80 * GIB) == pytest.approx(0.5 - 1 / 80)
    # a small device: never below half the share
    assert memory_fraction(0.25, 2 * GIB) == pytest.approx(0.125)
    # no cap without a share, or with a whole GPU (or several)
    assert memory_fraction(0, 80 * GIB) is None
    assert memory_fraction(1, 80 * GIB) is None and memory_fraction(2, 80 * GIB) is None
    # four quarter-shares and four contexts fit on the device
    assert 4 * (memory_fraction(0.25, 24 * GIB) * 24 * GIB + CONTEXT_RESERVE_BYTES) <= 24 * GIB
    with pytest.raises(ValueError, match="gpus >= 0"):
        memory_fraction(-0.5, 80 * GIB)


def test_limit_memory_leaves_a_cpu_alone() -> None:
    assert limit_memory(0.25, torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_limit_memory_caps_a_cuda_process() -> None:
    """In a fresh process (the cap is per process): a quarter share allows an allocation of a
    fifth of the GPU and refuses one of a third."""
    code = """
import torch
from nas.packing import limit_memory
fraction = limit_memory(0.25, torch.device("cuda"))
total = torch.cuda.get_device_properties(0).total_memory
small = torch.empty(int(total * 0.2), dtype=torch.uint8, device="cuda")
del small
try:
    torch.empty(int(total * 0.34), dtype=torch.uint8, device="cuda")
    print("allocated", fraction)
except torch.OutOfMemoryError:
    print("refused", fraction)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdict, fraction = proc.stdout.split()
    assert verdict == "refused" and 0.125 <= float(fraction) < 0.25


# -- the simulated-memory hook ----------------------------------------------------------------
def test_simulated_memory_raises_out_of_memory_over_the_limit() -> None:
    check_simulated(16, 1024 * 1024, None)  # no hook: never
    check_simulated(8, 1024 * 1024, 8.0)  # exactly 8 MiB fits
    with pytest.raises(torch.OutOfMemoryError, match="simulated: batch 16"):
        check_simulated(16, 1024 * 1024, 8.0)


# -- retry at half the batch ------------------------------------------------------------------
def _attempts(fits: int) -> tuple[list[tuple[int, dict]], Any]:
    """An attempt that runs out of memory above batch ``fits``, and the calls it got."""
    calls: list[tuple[int, dict]] = []

    def attempt(batch: int, extra: dict) -> None:
        calls.append((batch, dict(extra)))
        if batch > fits:
            big = torch.zeros(4)  # what an attempt holds when it fails
            raise torch.OutOfMemoryError(f"CUDA out of memory ({big.numel()})")

    return calls, attempt


def test_retry_at_half_the_batch_after_out_of_memory() -> None:
    calls, attempt = _attempts(fits=64)
    assert train_with_oom_retry(attempt, 64) is None
    assert calls == [(64, {"oom_batch": 0})]  # fits: one attempt

    calls, attempt = _attempts(fits=8)
    assert train_with_oom_retry(attempt, 16) is None
    assert calls == [(16, {"oom_batch": 0}), (8, {"oom_batch": 16})]

    calls, attempt = _attempts(fits=4)
    failed = train_with_oom_retry(attempt, 16)
    assert failed == OutOfMemory(batch_size=8, first_batch=16)
    assert failed.reason == "out of memory at batch 8" == oom_reason(8)
    assert [batch for batch, _ in calls] == [16, 8]  # retried once only

    calls, attempt = _attempts(fits=0)
    assert train_with_oom_retry(attempt, 1) == OutOfMemory(batch_size=1)  # nothing to halve
    assert len(calls) == 1


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt(batch: int, extra: dict) -> None:
        calls.append(batch)
        raise FloatingPointError("training loss is not finite")

    with pytest.raises(FloatingPointError):
        train_with_oom_retry(attempt, 16)
    assert calls == [16]


# -- what MLflow records (real SQLite store, no Ray) ------------------------------------------
def _result(**extra: Any) -> dict[str, Any]:
    return {"arch": "a", "accuracy": 0.5, "latency_ms": 0.2, "params": 10,
            "peak_activation_bytes": 20, "macs": 30, "epochs": 2, "train_seconds": 1.0,
            "rejected": 0, "reject_reason": "", "batch_size": 16, "oom_batch": 0, **extra}


@pytest.mark.usefixtures("mlflow_db")
def test_tracker_records_the_failed_attempt_and_the_retry(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from nas.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri, "exp", "oom", reference_ms=1.0)
    plain, retried = _result(), _result(batch_size=8, oom_batch=16)
    failed = _result(accuracy=0.0, epochs=0, train_seconds=0.0, failed=1,
                     failure_reason="out of memory at batch 8", batch_size=8, oom_batch=16)
    for trial_id, result in (("plain", plain), ("retried", retried), ("failed", failed)):
        tracker.start_trial(trial_id, "a", {})
        tracker.log_epoch(trial_id, {**result, "epochs": 1} if result["epochs"] else result)
        tracker.log_epoch(trial_id, result)  # a second report records no second attempt
        tracker.finish_trial(trial_id, result, "FINISHED", max_epochs=2)
    tracker.close()
    assert [tracker.count(o) for o in ("completed", "failed")] == [2, 1]
    assert len(tracker.candidates()) == 2  # the failed one is not on any front

    client = MlflowClient(uri)
    runs = {r.data.tags["hwnas.trial_id"]: r for r in client.search_runs(
        [tracker.experiment_id], "tags.`hwnas.role` = 'trial'")}
    attempts = client.search_runs([tracker.experiment_id], "tags.`hwnas.role` = 'attempt'")
    by_trial = {r.data.tags["hwnas.trial_id"]: r for r in attempts}
    assert set(by_trial) == {"retried", "failed"}  # one each, none for the trial that fit
    for trial_id, attempt in by_trial.items():
        assert attempt.info.status == "FAILED"
        assert attempt.data.tags["hwnas.outcome"] == "failed"
        assert attempt.data.tags["hwnas.failure_reason"] == "out of memory at batch 16"
        assert attempt.data.tags["mlflow.parentRunId"] == runs[trial_id].info.run_id
        assert attempt.data.params["batch_size"] == "16"
    ok = runs["retried"]
    assert ok.info.status == "FINISHED" and ok.data.tags["hwnas.outcome"] == "completed"
    assert ok.data.tags["hwnas.retried"] == "out of memory at batch 16; retried at batch 8"
    assert ok.data.metrics["batch_size"] == 8 and ok.data.metrics["accuracy"] == 0.5
    bad = runs["failed"]
    assert bad.info.status == "FAILED" and bad.data.tags["hwnas.outcome"] == "failed"
    assert bad.data.tags["hwnas.failure_reason"] == "out of memory at batch 8"
    assert "accuracy" not in bad.data.metrics  # it never trained
    assert "hwnas.retried" not in runs["plain"].data.tags


def test_a_failed_trial_is_never_bred_from() -> None:
    from nas.strategies.tune_adapter import StrategySearcher

    told = []

    class Strategy:
        def ask(self) -> dict:
            return {"x": 1}

        def tell(self, config: dict, objectives: Any) -> None:
            told.append(objectives)

    searcher = StrategySearcher(Strategy(), [("accuracy", "max"), ("latency_ms", "min")])
    searcher.suggest("t")
    searcher.on_trial_complete("t", _result(accuracy=0.0, failed=1))
    assert told == [None]


# -- a whole search: CLI -> real local Ray -> SQLite MLflow -----------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_search_retries_candidates_that_run_out_of_memory(tmp_path: Path) -> None:
    """The quickstart with a simulated 12 MiB device: a candidate whose 16 x peak activation
    bytes exceed it runs out of memory at batch 16, is recorded FAILED and retried at batch 8;
    the others train at 16; the search completes."""
    from mlflow.tracking import MlflowClient

    limit_mib, batch = 12.0, 16
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(name="oom", trials=4, storage_path=str(tmp_path / "ray"))
    config["task"].update(max_train=48, max_val=40)
    config["training"].update(epochs=1, batch_size=batch)
    config["budgets"] = {"peak_activation_mib": 1.5}  # so every candidate fits at batch 8
    # start 0: random first trials, not only the largest network at each latency
    config["strategy"]["params"] = {"population_size": 4, "sample_size": 2, "start": 0}
    config["resources"]["simulated_memory_mib"] = limit_mib
    path = tmp_path / "oom.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("search", "--config", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["trials"] == 4 and summary["failed"] == 0
    assert summary["completed"] + summary["rejected"] == 4

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    trials = client.search_runs([exp.experiment_id], "tags.`hwnas.role` = 'trial'")
    attempts = {r.data.tags["mlflow.parentRunId"]: r for r in client.search_runs(
        [exp.experiment_id], "tags.`hwnas.role` = 'attempt'")}
    trained = [r for r in trials if r.data.tags["hwnas.outcome"] == "completed"]
    too_big = [r for r in trained
               if batch * r.data.metrics["peak_activation_bytes"] > limit_mib * 2**20]
    assert too_big and len(too_big) < len(trained)  # this seed has both kinds
    assert set(attempts) == {r.info.run_id for r in too_big}
    for run in trained:
        retried = run in too_big
        assert run.info.status == "FINISHED" and 0 <= run.data.metrics["accuracy"] <= 1
        assert run.data.metrics["batch_size"] == (batch // 2 if retried else batch)
        if retried:
            first = attempts[run.info.run_id]
            assert first.info.status == "FAILED" and first.data.tags["hwnas.outcome"] == "failed"
            assert first.data.tags["hwnas.failure_reason"] == "out of memory at batch 16"
            assert run.data.tags["hwnas.retried"] == (
                "out of memory at batch 16; retried at batch 8")
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["resources.simulated_memory_mib"] == "12.0"  # the hook is on record


# -- the issue-13 benchmarks (figures only from their scripts; here their arithmetic) ----------
def test_search_cost_figures() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.search_cost import cost_figures

    # 4 candidates in 100 s on 1 GPU, 0.25 each: 25 GPU-s per candidate; each trained 2 epochs in
    # 40 s (10 GPU-s at its share), so 5 GPU-s per epoch and 15 GPU-s of overhead
    points = [{"train_seconds": 40.0, "epochs": 2}] * 4
    fig = cost_figures(100.0, 1, 0.25, points, train_images=9000, full_images=45000)
    assert fig["per_candidate_s"] == pytest.approx(25.0)
    assert fig["train_per_candidate_epoch_s"] == pytest.approx(5.0)
    assert fig["overhead_per_candidate_s"] == pytest.approx(15.0)
    assert fig["full_epoch_s"] == pytest.approx(25.0)  # 5 x 45000 / 9000
    assert fig["projected_500x3_s"] == pytest.approx(500 * (3 * 25.0 + 15.0))
    assert fig["projected_500x3_h"] == pytest.approx(500 * 90.0 / 3600)
    with pytest.raises(ValueError, match="no candidate"):
        cost_figures(1.0, 1, 1.0, [], 1, 1)


def test_gpu_issue13_script_parses() -> None:
    script = ROOT / "benchmarks" / "gpu_issue13.sh"
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument --bogus" in proc.stderr
