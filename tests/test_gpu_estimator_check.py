"""The device check ``benchmarks/gpu_estimator_check.sh``: its shell syntax, its goals, and a dry
run of the whole pipeline on the roofline model (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, strict_loads

if str(ROOT) not in sys.path:  # benchmarks/ sits beside the installed packages, not in them
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_estimator_check import BUDGET_S, goals_met, table  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_estimator_check.sh"


def _run(*args: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_script_syntax() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_goals() -> None:
    good = {"within_10pct": 1.0, "within_5pct": 0.93, "kendall_tau": 0.96}
    assert goals_met("h200-fp16", good, 200.0) == {
        "within_10pct": True, "within_5pct": True, "kendall_tau": True, "time_budget": True}
    missed = goals_met("h200-fp16", {**good, "within_5pct": 0.8}, BUDGET_S + 1)
    assert missed is not None and not missed["within_5pct"] and not missed["time_budget"]
    assert goals_met("h200-fp16-b32", {"within_10pct": 0.96}, 10.0) == {
        "within_10pct": True, "time_budget": True}
    assert goals_met("roofline-npu32", good, 1.0) is None


def test_table_prints_a_missing_metric_as_na() -> None:
    metrics = {"within_5pct": 0.9, "within_10pct": 1.0, "mape": 2.5, "kendall_tau": None,
               "noise_floor": 0.01, "repeat_within_5pct": 1.0, "repeat_within_10pct": 1.0,
               "repeat_passes": 2}
    text = table({"profile": "h200-fp16", "gpu": "GPU", "date": "today", "blocks": 400,
                  "networks": 16, "archs": 30, "metrics": metrics, "phases_s": {"eval": 9.0},
                  "elapsed_s": 200.0, "total_s": 210.0, "goals": {"kendall_tau": False}})
    assert "Kendall tau n/a" in text and "within ±10% 1.000" in text
    assert "kendall_tau MISSED" in text


@pytest.mark.slow
def test_dry_run_prints_and_writes_the_figures(tmp_path: Path) -> None:
    proc = _run("--dry-run", out=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
    report = strict_loads(line)
    assert report["profile"] == "roofline-npu32" and report["goals"] is None
    assert report["metrics"]["within_10pct"] >= 0.5 and report["metrics"]["repeat_passes"] == 1
    assert {"setup", "imports", "build_blocks", "build_networks", "build_fit",
            "eval"} <= set(report["phases_s"])
    assert "within ±10%" in proc.stdout and "goals: not checked" in proc.stdout
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"gpu_estimator_check.json", "eval_rows.csv", "measurements.csv",
                       "networks.csv", "manifest.json"}
    saved = strict_loads((tmp_path / "out" / "gpu_estimator_check.json").read_text())
    assert saved == report


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_without_a_gpu_it_says_so() -> None:
    proc = _run()
    assert proc.returncode == 2 and "no CUDA GPU here" in proc.stderr
