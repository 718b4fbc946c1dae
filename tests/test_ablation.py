"""Sub-space searches (space.free / space.choices) and hwnas ablation on a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from nas.analysis.ablation import arm_space, pick
from nas.search import subspace
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


@pytest.mark.slow
def test_ablation_cli_tiny(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(storage_path=str(tmp_path / "ray"))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("ablation", "--config", str(path), "--trials", "2", "--surrogate",
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
