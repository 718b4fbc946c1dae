"""``apply``: greedy rule application that the estimator confirms step by step, the
compatibility and format checks, and brief training of base and result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from estimators.latency import LatencyEstimator, resolve_estimator
from estimators.memory import memory_report
from nas.expert.apply import Applied, apply_rules
from nas.expert.rules import Effect, Rule, RuleSet, Support, save_rules
from searchspaces.baselines import resolve_arch
from searchspaces.genome import Architecture, Stage
from searchspaces.spaces import get_space

ESTIMATOR = "npu32-mbv2-small"
CLASSES, CHANNELS = 10, 1
SUPPORT = Support(searches=2, pareto=5, dominated=3, pareto_share=0.8, dominated_share=0.2)


def rule(position: str, knob: str, value: object, accuracy: float = 0.0,
         latency: float = -10.0) -> Rule:
    return Rule(position=position, knob=knob, value=value, support=SUPPORT,
                effect=Effect(latency_pct=latency, accuracy_points=accuracy))


def ruleset(*rules: Rule, p: int = 32, profile: str = "npu32") -> RuleSet:
    return RuleSet(space="mbv2-small", profile=profile, parallelism_factor=p,
                   source={"test": True}, rules=list(rules))


RULES = ruleset(
    rule("late", "block", "conv", accuracy=-5.0),  # strong on latency, too costly: skipped
    rule("early", "block", "fibn"),  # fusing raises latency on this NPU: rejected
    rule("global", "width_mult", 0.75, accuracy=-0.5),
    rule("early", "channels_aligned", True),
    rule("middle", "block", "conv", accuracy=-0.8),
    rule("late", "expansion", 4),
)


@pytest.fixture(scope="module")
def est() -> LatencyEstimator:
    return LatencyEstimator.load(resolve_estimator(ESTIMATOR))


@pytest.fixture(scope="module")
def applied(est: LatencyEstimator) -> Applied:
    return apply_rules(resolve_arch("mobilenetv2-cifar"), RULES, est, num_classes=CLASSES,
                       in_channels=CHANNELS)


def test_every_kept_step_lowers_latency(applied: Applied, est: LatencyEstimator) -> None:
    base = resolve_arch("mobilenetv2-cifar")
    assert applied.base == base.to_string()
    current = applied.base_latency_ms
    assert current == pytest.approx(est.predict(base, CLASSES, CHANNELS))
    for step in applied.steps:
        if step.outcome == "skipped":
            continue
        assert step.latency_before_ms == pytest.approx(current, rel=1e-12)
        if step.outcome == "kept":
            assert step.latency_after_ms < step.latency_before_ms and step.delta_ms < 0
            current = step.latency_after_ms
        elif step.outcome == "rejected":
            assert step.delta_ms >= 0 and "no latency gain" in step.reason
    assert applied.latency_ms == pytest.approx(current, rel=1e-12)
    assert applied.latency_ms <= applied.base_latency_ms
    assert applied.kept(), "width 0.75 and depthwise -> conv lower latency on npu32"
    assert applied.reduction_pct == pytest.approx(
        100 * (1 - applied.latency_ms / applied.base_latency_ms))


def test_steps_follow_the_rules(applied: Applied) -> None:
    outcome = {(s.rule, s.stage): s.outcome for s in applied.steps}
    assert outcome[("late: block = conv", None)] == "skipped"
    skipped = [s for s in applied.steps if s.outcome == "skipped"]
    assert len(skipped) == 1 and "-5.00 points" in skipped[0].reason
    # 7 stages: early 0-2, middle 3-4, late 5-6
    assert [s.stage for s in applied.steps if s.rule == "early: block = fibn"] == [0, 1, 2]
    assert all(outcome[("early: block = fibn", i)] == "rejected" for i in range(3))
    assert outcome[("global: width_mult = 0.75", None)] == "kept"
    assert [s.stage for s in applied.steps if s.rule == "middle: block = conv"] == [3, 4]
    assert [s.stage for s in applied.steps if s.rule == "late: expansion = 4"] == [5, 6]
    # after width 0.75, stage 0's c16 builds 16 channels: no aligned count within +-50%
    aligned = {s.stage: s for s in applied.steps if s.knob == "channels_aligned"}
    assert set(aligned) == {0, 1, 2} and aligned[0].outcome == "n/a"
    assert "multiple of P" in aligned[0].reason


def test_new_arch_round_trips_and_matches(applied: Applied, est: LatencyEstimator) -> None:
    new = Architecture.from_string(applied.arch)
    assert new.to_string() == applied.arch
    assert new.width_mult == 0.75
    assert est.predict(new, CLASSES, CHANNELS) == pytest.approx(applied.latency_ms, rel=1e-12)
    mem = memory_report(new, CLASSES, CHANNELS)
    assert (applied.params, applied.peak_activation_bytes) == (mem.params,
                                                                mem.peak_activation_bytes)
    for step in applied.kept():
        if step.stage is not None:
            assert new.stages[step.stage].to_string() == step.after or any(
                s.stage == step.stage and s.outcome == "kept" and s is not step
                for s in applied.steps)
    doc = json.loads(json.dumps(applied.to_json()))
    assert doc["arch"] == applied.arch and len(doc["steps"]) == len(applied.steps)


def test_budget_rejects_an_edit(est: LatencyEstimator) -> None:
    """Unfusing a fused k5 first stage is much faster but expands at full resolution (the
    fused block reads the narrow input instead): a peak-activation budget at the base's peak
    rejects it."""
    base = get_space("mbv2-small", 32).baseline().replace_stage(0, Stage("fibn", 5, 6, 32, 1, 1))
    base = base.replace_stage(1, Stage("ibn", 3, 1, 32, 2, 1))
    rules = ruleset(rule("early", "block", "ibn"))
    free = apply_rules(base, rules, est, num_classes=CLASSES, in_channels=CHANNELS)
    assert free.steps[0].outcome == "kept" and free.steps[0].stage == 0
    assert free.peak_activation_bytes > free.base_peak_activation_bytes
    capped = apply_rules(base, rules, est, num_classes=CLASSES, in_channels=CHANNELS,
                         max_peak_bytes=free.base_peak_activation_bytes)
    assert capped.steps[0].outcome == "rejected" and "peak activations" in capped.steps[0].reason
    assert capped.arch == capped.base and not capped.notes
    over = apply_rules(base, rules, est, num_classes=CLASSES, in_channels=CHANNELS,
                       max_peak_bytes=free.base_peak_activation_bytes - 1)
    assert over.steps[0].outcome == "rejected" and "already exceed" in over.notes[0]


def test_compatibility(est: LatencyEstimator) -> None:
    base = resolve_arch("mobilenetv2-cifar")
    with pytest.raises(ValueError, match=r"npu16 \(P=16\).*npu32 \(P=32\)") as info:
        apply_rules(base, ruleset(rule("global", "width_mult", 0.75), p=16, profile="npu16"),
                    est, num_classes=CLASSES, in_channels=CHANNELS)
    assert "\n" not in str(info.value)
    other = apply_rules(base, ruleset(rule("global", "width_mult", 0.75), profile="tpu32"), est,
                        num_classes=CLASSES, in_channels=CHANNELS)
    assert len(other.notes) == 1 and "tpu32" in other.notes[0]
    with pytest.raises(ValueError, match="points"):
        apply_rules(base, RULES, est, max_accuracy_drop=-1.0)


def _cli_error(*args: str) -> str:
    proc = run_cli("expert", "apply", *args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("hwnas: error:") and proc.stderr.count("\n") == 1
    return proc.stderr


@pytest.mark.slow
def test_cli_errors(tmp_path: Path) -> None:
    mismatch = save_rules(ruleset(rule("global", "width_mult", 0.75), p=16, profile="npu16"),
                          tmp_path / "p16.yaml")
    message = _cli_error("mobilenetv2-cifar", "--rules", str(mismatch), "-e", ESTIMATOR)
    assert "P=16" in message and "P=32" in message
    data = RULES.model_dump(mode="json")
    data["rules"][1]["knob"] = "colour"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert "rules.1.knob" in _cli_error("mobilenetv2-cifar", "--rules", str(bad), "-e", ESTIMATOR)


@pytest.mark.slow
def test_cli_train_tiny(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "seed": 0, "task": {"dataset": "digits", "max_train": 64, "max_val": 64},
        "training": {"epochs": 1, "batch_size": 32}}))
    rules = save_rules(RULES, tmp_path / "rules.yaml")
    base = get_space("mbv2-small", 32).baseline()
    proc = run_cli("expert", "apply", base.to_string(), "--rules", str(rules), "-e", ESTIMATOR,
                   "--train", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    doc = json.loads(proc.stdout)
    assert (doc["num_classes"], doc["in_channels"]) == (10, 1)  # from the dataset
    assert doc["latency_ms"] < doc["base_latency_ms"] and doc["arch"] != doc["base"]
    trained = doc["training"]
    assert (trained["dataset"], trained["epochs"], trained["seed"]) == ("digits", 1, 0)
    for key in ("base_accuracy", "accuracy"):
        assert 0.0 <= trained[key] <= 1.0
    assert doc["estimator"].endswith(ESTIMATOR)


def test_shipped_rules_load_and_apply_to_a_new_model() -> None:
    """configs/expert_rules_npu32.yaml (``make expert-rules``) fits the shipped npu32 estimator,
    says how to regenerate it, has its report beside it, and applies at once."""
    from conftest import ROOT
    from nas.expert.rules import load_rules

    path = ROOT / "configs" / "expert_rules_npu32.yaml"
    rules = load_rules(path)
    est = LatencyEstimator.load(resolve_estimator(ESTIMATOR))
    assert (rules.space, rules.profile, rules.parallelism_factor) == (
        est.space, est.profile, est.parallelism_factor)
    assert rules.rules and "hwnas expert mine" in rules.source["command"]
    assert path.with_suffix(".md").is_file()
    done = apply_rules(resolve_arch("mobilenetv2-cifar"), rules, est, num_classes=CLASSES,
                       in_channels=CHANNELS)
    assert done.latency_ms <= done.base_latency_ms
    Architecture.from_string(done.arch)
