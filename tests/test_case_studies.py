"""The seed's case studies as configs (configs/presence-detection.yaml, configs/segmentation.yaml,
configs/memory-budget-classifier.yaml) and benchmarks/case_studies.py's table."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROOT
from estimators.memory import memory_report
from nas.config import TASK_METRICS, load_config
from searchspaces.genome import TASK_HEADS
from searchspaces.spaces import get_space

CONFIGS = {"presence-detection": ("detection", "presence", 1),
           "segmentation": ("segmentation", "shapes", 3),
           "memory-budget-classifier": ("classification", None, 10)}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_case_study_configs(name: str) -> None:
    """Each config is its task on the npu32 target, and its synthetic scenes go to a folder git
    ignores (written on first use, never committed)."""
    kind, synthetic, _classes = CONFIGS[name]
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert (cfg.name, cfg.task.kind, cfg.task.synthetic) == (name, kind, synthetic)
    assert (cfg.space.name, cfg.hardware.profile, cfg.hardware.estimator) == (
        "mbv2-small", "npu32", "npu32-mbv2-small")
    assert cfg.tracking.experiment == name and TASK_METRICS[kind]
    if synthetic:
        ignored = subprocess.run(["git", "check-ignore", "-q", cfg.task.data_dir], cwd=ROOT)
        assert ignored.returncode == 0, f"{cfg.task.data_dir} is not git-ignored"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_case_study_budgets_against_the_baseline(name: str) -> None:
    """As each config's comments say: the detection and segmentation baselines fit (only latency
    is searched); the classifier's memory budget is the baseline's peak less the seed's 47%, so
    neither a 24 px input nor fused early stages fit alone, and the two together do."""
    kind, _synthetic, classes = CONFIGS[name]
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    space = get_space("mbv2-small", 32, True, head=TASK_HEADS[kind])
    channels = 1 if kind == "classification" else 3
    peak = memory_report(space.baseline(), classes, channels).peak_activation_bytes / 2**20
    budget = cfg.budgets.peak_activation_mib
    if kind != "classification":
        assert peak <= budget and cfg.budgets.latency_ms is None
        return
    assert budget == pytest.approx(peak * (1 - 0.47), abs=0.005) and budget < peak
    base = space.to_choices(space.baseline())
    fused = {"s1_block": "fibn", "s2_block": "fibn"}

    def fits(**choices: object) -> bool:
        arch = space.from_choices({**base, **choices})
        return memory_report(arch, classes, channels).peak_activation_bytes / 2**20 <= budget

    assert not fits(resolution=24) and not fits(**fused) and fits(resolution=24, **fused)


def test_case_studies_report_and_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.case_studies import main, report

    with pytest.raises(SystemExit):
        main(["--cases", "presence-detection,faces"])
    assert "--cases takes names among" in capsys.readouterr().err
    row = {"case": "memory-budget-classifier", "metric": "accuracy", "minimise": "memory",
           "baseline": {"metric": 0.98, "latency_ms": 0.33, "peak_activation_kib": 1664.0},
           "chosen": {"arm": "io", "metric": 0.978, "latency_ms": 0.2,
                      "peak_activation_kib": 576.0},
           "reduction": 1 - 576 / 1664, "seed_reduction": 0.47,
           "arms": [{"arm": "fusion", "trials": 4, "rejected": 0, "arch": None,
                     "latency_reduction": None, "memory_reduction": None},
                    {"arm": "io", "trials": 4, "rejected": 1, "arch": "r24...",
                     "latency_reduction": 0.4, "memory_reduction": 1 - 576 / 1664}]}
    text = report([row])
    assert "0.980 @ 1664 KiB" in text and "0.978 @ 576 KiB" in text
    assert "65.4% mem" in text and "47%" in text and "none within tolerance" in text
    assert "ZigZag npu32 simulator" in text
