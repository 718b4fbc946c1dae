"""Sub-space searches (space.free / space.choices) and hwnas ablation on a tiny budget."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, run_cli, strict_loads
from nas.analysis import ablation as ablation_module
from nas.analysis.ablation import (
    Ablation,
    AblationPlan,
    ArmResult,
    arm_space,
    parse_pins,
    pick,
    pinned,
    plan_ablation,
    run_ablation,
)
from nas.cli.compare import print_ablation
from nas.config import SearchConfig, load_config
from nas.search import SearchSummary, subspace
from searchspaces.spaces import get_space


def test_subspace_holds_other_dimensions_at_the_baseline() -> None:
    space = get_space("mbv2-small", 32, True)
    searched, fixed = subspace(space, ["width_mult", "s0_block"], {"s0_block": ["ibn", "fibn"]})
    assert searched == {"width_mult": space.dimensions()["width_mult"],
                        "s0_block": ("ibn", "fibn")}
    base = space.to_choices(space.baseline())
    assert fixed == {k: v for k, v in base.items() if k not in searched}
    arch = space.from_choices({**fixed, "width_mult": 0.5, "s0_block": "fibn"})
    assert arch.width_mult == 0.5 and arch.stages[0].block == "fibn"
    assert arch.stages[1:] == space.baseline().stages[1:]
    assert subspace(space, None, {}) == (space, {})


@pytest.mark.parametrize(("free", "choices", "fragment"), [
    (["depth"], {}, "no dimension depth"),
    (["s0_block"], {"s0_block": ["tcn"]}, "s0_block"),
    ([], {}, "no dimension to search"),
    (None, {"s0_block": ["ibn"]}, "space.free"),
])
def test_subspace_errors(free: list[str] | None, choices: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        subspace(get_space("mbv2-small", 32, True), free, choices)


def test_arms_and_pick() -> None:
    space = get_space("mbv2-small", 32, True)
    assert arm_space(space, "multiplier") == (["width_mult"], {})
    free, choices = arm_space(space, "fusion")
    assert free and all(k.endswith("_block") for k in free)
    assert all(v == ["ibn", "fibn"] for v in choices.values())
    assert arm_space(space, "both")[0] == ["width_mult", *free]
    with pytest.raises(ValueError, match="unknown ablation arm"):
        arm_space(space, "prune")
    points = [{"accuracy": 0.9, "latency_ms": 1.0}, {"accuracy": 0.89, "latency_ms": 0.5},
              {"accuracy": 0.80, "latency_ms": 0.1}]
    assert pick(points, 0.885)["latency_ms"] == 0.5 and pick(points, 0.95) is None


def test_io_arm_frees_the_input_and_the_heads_output() -> None:
    """``io`` is ``both`` plus the input resolution and, where the task's head has one, its
    output dimension (detection: scales, segmentation: the skip branch's stride)."""
    for head, outputs in (("head", []), ("det", ["head_scales"]), ("seg", ["head_stride"])):
        space = get_space("mbv2-small", 32, True, head=head)
        both, choices = arm_space(space, "both")
        assert arm_space(space, "io") == ([*both, "resolution", *outputs], choices)


def test_pick_for_memory_breaks_ties_by_latency() -> None:
    points = [{"accuracy": 0.9, "latency_ms": 1.0, "peak_activation_bytes": 400},
              {"accuracy": 0.9, "latency_ms": 0.4, "peak_activation_bytes": 600},
              {"accuracy": 0.9, "latency_ms": 0.8, "peak_activation_bytes": 400},
              {"accuracy": 0.7, "latency_ms": 0.1, "peak_activation_bytes": 100}]
    assert pick(points, 0.85)["latency_ms"] == 0.4
    assert pick(points, 0.85, "memory") == points[2]
    assert pick(points, 0.5, "memory") == points[3]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"minimise": "energy"}, "unknown quantity to minimise 'energy'"),
    ({"arms": ("both", "prune")}, "arms must be distinct names"),
    ({"arms": ("both", "both")}, "arms must be distinct names"),
    ({"arms": ()}, "got none"),
])
def test_plan_refuses_bad_arms_and_quantities(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        plan_ablation(load_config(ROOT / "configs" / "quickstart.yaml"), **kwargs)


def test_pins_hold_the_baseline_off_the_spaces_where_an_arm_does_not_search() -> None:
    space = get_space("mbv2-small", 32, True, head="det")
    assert parse_pins(space, {"head_scales": "1", "resolution": 24}) == {
        "head_scales": 1, "resolution": 24}
    for pins, fragment in (({"depth": 2}, "no such dimension"),
                           ({"head_scales": 3}, "its choices are 2, 1"),
                           ({"width_mult": 0.5}, "the arms search it"),
                           ({"s0_block": "fibn"}, "the arms search it")):
        with pytest.raises(ValueError, match=fragment):
            parse_pins(space, pins)
    free, choices = arm_space(space, "both")
    assert pinned(free, choices, {"head_scales": 1}) == (
        [*free, "head_scales"], {**choices, "head_scales": [1]})
    assert pinned(*arm_space(space, "io"), {"head_scales": 1}) == arm_space(space, "io")


_BASE = {"arch": "", "accuracy": 0.90, "latency_ms": 1.0, "peak_activation_bytes": 1000}


def _fake_search(picks: dict[str, list[dict[str, Any]]], seen: dict[str, Any]) -> Any:
    """A stand-in for :func:`nas.search.run_search` that returns ``picks[arm]`` as the arm's
    trained points and records each arm's config (its budgets and free dimensions)."""
    def search(config: SearchConfig, **_: Any) -> SearchSummary:
        arm = config.name.rsplit("-", 1)[1]
        seen[arm] = config
        points = picks.get(arm, [])
        return SearchSummary(f"run-{arm}", "x", "0", config.tracking.uri, len(points),
                             len(points), 0, 1, 0, 0.0, 2.0, 0.0, points=points)
    return search


@pytest.mark.parametrize("minimise", ["latency", "memory"])
@pytest.mark.usefixtures("mlflow_db")
def test_run_ablation_picks_and_budgets_by_what_it_minimises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minimise: str) -> None:
    """The arms' only budget is the baseline's value of the minimised quantity; each arm's pick
    is the least of it within the tolerance; the JSON and plot carry both reductions and the
    task's metric."""
    space = get_space("mbv2-small", 32, True, head="seg")
    base_arch = space.baseline().to_string()
    fast = space.from_choices({**space.to_choices(space.baseline()), "width_mult": 0.5})
    small = space.from_choices({**space.to_choices(space.baseline()), "resolution": 24,
                                "s0_block": "fibn", "head_stride": 8})
    picks = {"both": [{**_BASE, "arch": fast.to_string(), "accuracy": 0.897, "latency_ms": 0.5,
                       "peak_activation_bytes": 1000}],
             "io": [{**_BASE, "arch": fast.to_string(), "accuracy": 0.897, "latency_ms": 0.5,
                     "peak_activation_bytes": 1000},
                    {**_BASE, "arch": small.to_string(), "accuracy": 0.899, "latency_ms": 0.8,
                     "peak_activation_bytes": 250},
                    {**_BASE, "arch": small.to_string(), "accuracy": 0.5, "latency_ms": 0.1,
                     "peak_activation_bytes": 100}]}
    picks["baseline"] = [{**_BASE, "arch": base_arch}]
    seen: dict[str, Any] = {}
    monkeypatch.setattr(ablation_module, "run_search", _fake_search(picks, seen))
    monkeypatch.setattr(ablation_module, "ray_session", lambda _address: contextlib.nullcontext())
    config = load_config(ROOT / "configs" / "segmentation.yaml").with_overrides(**{
        "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "trials": 4})
    plan = AblationPlan(config, space, 0.005, ("both", "io"), minimise, {"head_stride": 8})
    result = run_ablation(plan, out_dir=tmp_path / "abl")

    # the pin holds the baseline and the both arm at stride 8; io searches the stride
    for arm in ("baseline", "both"):
        assert seen[arm].space.choices["head_stride"] == [8]
    assert "head_stride" not in seen["io"].space.choices
    assert seen["io"].space.free[-2:] == ["resolution", "head_stride"]
    budget = seen["io"].budgets
    if minimise == "latency":
        assert budget.latency_ms == pytest.approx(1.0) and budget.peak_activation_mib is None
    else:
        assert budget.peak_activation_mib == pytest.approx(1000 / 2**20)
        assert budget.latency_ms is None
    both, io = result.arms
    assert both.arch == fast.to_string() and both.reduction == pytest.approx(0.5)
    assert both.memory_reduction == pytest.approx(0.0)
    expected = fast if minimise == "latency" else small
    assert io.arch == expected.to_string()
    assert io.fused_stages == ([] if minimise == "latency" else [0])
    assert (io.reduction, io.memory_reduction) == pytest.approx(
        (0.5, 0.0) if minimise == "latency" else (0.2, 0.75))
    saved = strict_loads((tmp_path / "abl" / f"{result.ablation_id}.json").read_text())
    assert saved["metric"] == "miou" and saved["minimise"] == minimise
    assert saved["baseline_peak_activation_bytes"] == 1000
    assert saved["pins"] == {"head_stride": 8}
    assert saved["arms"][1]["memory_reduction"] == pytest.approx(io.memory_reduction)
    assert Path(result.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_db")
def test_ablation_cli_tiny(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(storage_path=str(tmp_path / "ray"))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("ablation", "--config", str(path), "--trials", "1", "--surrogate",
                   "--tolerance", "1.0", "--out", str(tmp_path / "abl"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert [a["arm"] for a in result["arms"]] == ["multiplier", "fusion", "both"]
    assert result["baseline_latency_ms"] > 0 and result["surrogate"]
    for arm in result["arms"]:
        # with a tolerance of a whole point every candidate qualifies: the fastest is chosen
        assert arm["latency_ms"] <= result["baseline_latency_ms"]
        assert arm["reduction"] == pytest.approx(
            1 - arm["latency_ms"] / result["baseline_latency_ms"])
    assert (tmp_path / "abl" / f"{result['ablation_id']}.json").is_file()
    png = Path(result["plot"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.parent == tmp_path / "abl"


@pytest.mark.parametrize(("args", "fragment"), [
    (["--pin", "head_scales"], "--pin takes DIM=VALUE"),
    (["--pin", "width_mult=0.5"], "the arms search it"),
    (["--minimise", "energy"], "unknown quantity to minimise"),
])
def test_ablation_cli_refuses_bad_options_in_one_line(args: list[str], fragment: str,
                                                      tmp_path: Path) -> None:
    proc = run_cli("ablation", "--config", str(ROOT / "configs" / "quickstart.yaml"), *args,
                   "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path)
    assert proc.returncode == 2 and fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_ablation_text_names_every_arm_its_cuts_and_whole_architecture(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The human output of ``hwnas ablation``: the baseline in the title, a row per arm with its
    metric, latency, memory and both cuts (an arm with no pick within the tolerance says so),
    each picked architecture whole on its own line, and where the plot and the run are."""
    arch = "r32_w0.75_d32:stem_c32_s1-fibn_k3_e4_c32_r2_s1-ibn_k5_e6_c64_r3_s2-head_c1280"
    picked = ArmResult("fusion", trials=6, arch=arch, accuracy=0.9512, latency_ms=0.0417,
                       reduction=0.1391, fused_stages=[1, 2], run_id="r1", rejected=2,
                       peak_activation_bytes=20480, memory_reduction=0.25)
    none = ArmResult("multiplier", trials=4, arch=None, accuracy=None, latency_ms=None,
                     reduction=None, fused_stages=[], run_id="r2", rejected=4)
    result = Ablation("abl-1", "run-9", "baseline-arch", 0.9543, 0.0484, 0.005, False,
                      [none, picked], plot="/tmp/abl-1.png", metric="accuracy",
                      minimise="latency", baseline_peak_activation_bytes=27648,
                      pins={"head_scales": 1})
    print_ablation(result)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert "abl-1: baseline accuracy 0.9543, 0.0484 ms, 27.0 KiB; picked for latency; " \
        "head_scales=1" in " ".join(line.strip() for line in lines)
    row = next(line for line in lines if line.strip().startswith("fusion "))
    for cell in ("6 (2 rejected)", "0.9512", "0.0417", "20.0", "13.9%", "25.0%", "1,2"):
        assert cell in row
    row = next(line for line in lines if line.strip().startswith("multiplier "))
    assert "4 (4 rejected)" in row and "none within tolerance" in row
    assert f"fusion: {arch}" in lines  # whole, on one line, ready to copy (not folded)
    assert not any(line.startswith("multiplier:") for line in lines)
    assert lines[-1] == "plot: /tmp/abl-1.png; MLflow ablation run run-9"
