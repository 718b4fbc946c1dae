"""benchmarks/evolution_ask_cost.py: the per-ask cost of evolution in a hwnas space."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.evolution_ask_cost import run, synthetic_accuracy
from nas.strategies.evolution import LATE_AFTER

ROOT = Path(__file__).resolve().parents[1]


def test_ask_cost_times_every_ask_of_a_quickstart_search_by_phase() -> None:
    report = run(str(ROOT / "configs" / "quickstart.yaml"), trials=4, seed=0)
    phase_name = f"asks 1-{LATE_AFTER}"
    assert list(report["phases"]) == [phase_name]  # no asks in the late phase
    phase = report["phases"][phase_name]
    assert phase["asks"] == 4 and 0.0 < phase["mean_s"] <= phase["max_s"]
    # the first ask prices the screened start's draws (500 by default) through the estimator
    assert report["configs_priced"] >= 100 and report["archive"] >= 1
    json.dumps(report, allow_nan=False)
    low, high = synthetic_accuracy({"a": 1}, 1e3), synthetic_accuracy({"a": 1}, 1e6)
    assert 0.5 < low < high < 0.9


def test_ask_cost_rejects_a_bad_trial_count_in_one_line() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "evolution_ask_cost.py"),
                           "--trials", "0"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "--trials must be >= 1, got 0" in done.stderr.strip().splitlines()[-1]
