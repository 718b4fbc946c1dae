"""hwnas expert mine: the statistics on hand-built rows with known answers, then real searches
(local Ray, SQLite MLflow under tmp_path) mined through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import ROOT
from nas.expert.edits import stage_value
from nas.expert.mine import features, mine_rows
from nas.expert.rules import RuleSet, load_rules, save_rules, stages_at
from searchspaces.genome import Architecture

CHANNELS = (16, 24, 32, 64, 96, 160, 320)
STRIDES = (1, 1, 2, 2, 1, 2, 1)
KIND = {"i": "ibn", "f": "fibn", "c": "conv"}


def arch(blocks: str, width: float = 1.0, kernels: str = "3333333") -> str:
    """A 7-stage net (early = stages 0-2, middle = 3-4, late = 5-6); ``blocks`` one letter per
    stage: i(bn), f(ibn), c(onv)."""
    stages = []
    for b, k, c, s in zip(blocks, kernels, CHANNELS, STRIDES, strict=True):
        e = "" if b == "c" else "_e6"
        stages.append(f"{KIND[b]}_k{k}{e}_c{c}_r1_s{s}")
    return f"r32_w{width}_d8:stem_c32_s1-{'-'.join(stages)}-head_c1280"


# Two searches. Pareto-optimal nets all fuse the early stages; dominated ones (but one) do not.
# Pareto middles: conv in 3 of 5, fibn in 2 of 5, dominated middles all ibn. Width multipliers
# are spread alike over both groups (no contrast). Only A1 has 5x5 kernels late.
ROWS = [
    # search, arch, accuracy, latency, Pareto?
    ("A", arch("fffccii", 1.0, "3333355"), 0.90, 1.0, True),
    ("A", arch("fffccii", 0.5), 0.80, 0.8, True),
    ("A", arch("fffffii", 1.0), 0.70, 0.6, True),
    ("A", arch("iiiiiii", 1.0), 0.60, 1.2, False),
    ("A", arch("iiiiiii", 0.5), 0.50, 1.1, False),
    ("A", arch("iiiiiii", 1.0), 0.65, 0.9, False),
    ("B", arch("fffccii", 0.5), 0.85, 0.5, True),
    ("B", arch("fffffii", 1.0), 0.75, 0.4, True),
    ("B", arch("iiiiiii", 0.5), 0.70, 0.6, False),
    ("B", arch("fffiiii", 1.0), 0.60, 0.7, False),
]


def rows() -> list[dict[str, Any]]:
    return [{"search_id": s, "arch": a, "accuracy": acc, "latency_ms": lat}
            for s, a, acc, lat, _ in ROWS]


def expected_effect(has: list[bool]) -> tuple[float, float]:
    """The documented effect, recomputed from the table: per-search normalised medians."""
    lat = np.array([r[3] for r in ROWS])
    acc = np.array([r[2] for r in ROWS])
    search = np.array([r[0] for r in ROWS])
    rel_lat, rel_acc = lat.copy(), acc.copy()
    for s in set(search):
        rel_lat[search == s] /= np.median(lat[search == s])
        rel_acc[search == s] -= np.median(acc[search == s])
    has_ = np.array(has)
    return (100 * (np.median(rel_lat[has_]) / np.median(rel_lat[~has_]) - 1),
            100 * (np.median(rel_acc[has_]) - np.median(rel_acc[~has_])))


def test_features_take_the_majority_of_a_position() -> None:
    a = Architecture.from_string(arch("fficcii", 0.5, "5533355"))
    got = features(a, 8)
    assert ("early", "block", "fibn") in got and ("early", "block", "ibn") not in got  # 2 of 3
    assert ("middle", "block", "conv") in got and ("late", "block", "ibn") in got
    assert ("early", "kernel", 5) in got and ("late", "kernel", 5) in got
    assert ("middle", "kernel", 3) in got and ("global", "width_mult", 0.5) in got
    # conv stages have no expansion: the middle (two convs) has no expansion feature at all
    assert not [f for f in got if f[:2] == ("middle", "expansion")]
    assert ("early", "expansion", 6) in got
    mixed = features(Architecture.from_string(arch("iiiicii")), 8)
    assert {("middle", "block", "ibn"), ("middle", "block", "conv")} <= mixed  # 1 of 2 each
    # alignment is judged on the built channel count (c24 at width 0.5 builds 16)
    assert ("early", "channels_aligned", True) in got
    assert ("early", "channels_aligned", False) in features(a, 64)
    assert not [f for f in got if f[1] == "resolution"]


def test_known_rules_counts_shares_lift_and_effects() -> None:
    mining = mine_rows(rows(), 8)
    assert (mining.architectures, mining.pareto, mining.dominated) == (10, 5, 5)
    assert mining.pareto_by_search == {"A": 3, "B": 2}
    assert [r.label for r in mining.rules] == ["early: block = fibn", "middle: block = conv"]
    fuse, conv = mining.rules
    s = fuse.support
    assert (s.searches, s.pareto, s.dominated) == (2, 5, 1)
    assert (s.pareto_share, s.dominated_share) == (1.0, 0.2)
    lat, acc = expected_effect([r[1].split(":")[1].startswith("stem_c32_s1-fibn") for r in ROWS])
    assert fuse.effect.latency_pct == pytest.approx(lat, abs=0.01) and lat < 0
    assert fuse.effect.accuracy_points == pytest.approx(acc, abs=0.01) and acc > 0
    assert fuse.note.startswith("Pareto-optimal nets fuse the early stages: 5 of 5 vs 1 of 5 "
                                "dominated; ")
    assert (conv.support.pareto, conv.support.dominated, conv.support.pareto_share) == (3, 0, 0.6)

    stats = {(f.position, f.knob, f.value): f for f in mining.stats}
    # conflicting values: fibn in the middle passes the thresholds too, but conv lifts more
    assert stats["middle", "block", "fibn"].lift == pytest.approx(0.4)
    # no contrast: every net has 3x3 early kernels; widths are spread alike
    assert stats["early", "kernel", 3].without == 0
    assert abs(stats["global", "width_mult", 1.0].lift) < 1e-9
    # had convs counted as expansion 1, the middle would show expansion = 1 with lift 0.6
    assert ("middle", "expansion", 1) not in stats
    # support: only one Pareto net has late 5x5 kernels (lift 0.2): a rule only at support 1
    assert stats["late", "kernel", 5].pareto == 1
    loose = mine_rows(rows(), 8, min_support=1)
    assert "late: kernel = 5" in [r.label for r in loose.rules]
    strict = mine_rows(rows(), 8, min_lift=0.7)
    assert [r.label for r in strict.rules] == ["early: block = fibn"]


def test_stopped_candidates_count_in_support_not_in_accuracy_effects() -> None:
    """A candidate ASHA stopped after one epoch sits near chance: it is dominated support, but
    its accuracy must not move the median the effects are read from."""
    base = mine_rows(rows(), 8)
    stopped = [*rows(), {"search_id": "A", "arch": arch("iiiiiii", 0.5), "accuracy": 0.10,
                         "latency_ms": 1.3, "complete": False}]
    mined = mine_rows(stopped, 8)
    fuse = {r.label: r for r in mined.rules}["early: block = fibn"]
    assert (fuse.support.pareto, fuse.support.dominated) == (5, 1)
    assert fuse.support.dominated_share == pytest.approx(1 / 6, abs=1e-4)
    ref = {r.label: r for r in base.rules}["early: block = fibn"]
    assert fuse.effect.accuracy_points == pytest.approx(ref.effect.accuracy_points)
    counted = mine_rows([{**r, "complete": True} for r in stopped], 8)
    moved = {r.label: r for r in counted.rules}["early: block = fibn"]
    assert moved.effect.accuracy_points != pytest.approx(ref.effect.accuracy_points)


def test_rules_round_trip_through_the_file(tmp_path: Path) -> None:
    mining = mine_rows(rows(), 8)
    rs = RuleSet(space="mbv2-small", profile="npu32", parallelism_factor=8,
                 source={"architectures": 10}, rules=list(mining.rules))
    assert load_rules(save_rules(rs, tmp_path / "r.yaml")) == rs


def test_no_dominated_or_bad_rows() -> None:
    only_front = [r for r in rows() if r["search_id"] == "A"][:3]
    assert mine_rows(only_front, 8).rules == ()
    with pytest.raises(ValueError, match="row 0: missing latency_ms"):
        mine_rows([{"search_id": "A", "arch": arch("iiiiiii"), "accuracy": 0.5}], 8)
    with pytest.raises(ValueError, match="row 0: .*unknown block kind 'ibx'"):
        mine_rows([{"search_id": "A", "arch": arch("iiiiiii").replace("ibn", "ibx"),
                    "accuracy": 0.5, "latency_ms": 1.0}], 8)
    with pytest.raises(ValueError, match="min_lift must be in"):
        mine_rows(rows(), 8, min_lift=1.5)


# -- real searches ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real searches: a briefly trained one in experiment mine-a, a NASWOT surrogate one in
    mine-b."""
    import ray

    from nas.config import validate_config
    from nas.search import run_search

    tmp = tmp_path_factory.mktemp("mine")
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config.update(name="trained", trials=5, storage_path=str(tmp / "ray"), count_rejected=True)
    config["task"].update(max_train=32, max_val=32)
    config["training"].update(epochs=1)
    config["budgets"] = {"latency_ms": 0.45}  # some candidates are rejected, never trained
    config["strategy"]["params"] = {"population_size": 4, "sample_size": 2}
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    config["tracking"] = {"uri": uri, "experiment": "mine-a"}
    trained = validate_config(config)
    surrogate = trained.with_overrides(**{"name": "surr", "trials": 3, "training.surrogate": True,
                                          "tracking.experiment": "mine-b"})
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summaries = [run_search(trained), run_search(surrogate)]
    finally:
        ray.shutdown()
    return {"tmp": tmp, "uri": uri, "summaries": summaries}


def _recount(uri: str, experiment: str) -> list[dict[str, Any]]:
    """Trained candidates of each search, read straight from MLflow, with brute-force Pareto."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=500)
    out = []
    for parent in [r for r in runs if r.data.tags.get("hwnas.role") == "search"]:
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                and r.data.tags.get("hwnas.outcome") in ("completed", "stopped")]
        pts = [(k.data.metrics["accuracy"], k.data.metrics["latency_ms"]) for k in kids]
        for k, (a, lat) in zip(kids, pts):
            dominated = any(b >= a and m <= lat and (b > a or m < lat) for b, m in pts)
            out.append({"search": parent.info.run_id, "arch": k.data.params["arch"],
                        "pareto": not dominated})
    return out


def _has(arch_text: str, position: str, knob: str, value: Any, p: int) -> bool:
    a = Architecture.from_string(arch_text)
    if knob == "width_mult":
        return a.width_mult == value
    at = [i for i in stages_at(position, len(a.stages))
          if knob != "expansion" or a.stages[i].block != "conv"]
    return bool(at) and 2 * sum(stage_value(a, i, knob, p) == value for i in at) >= len(at)


@pytest.mark.slow
def test_mine_rules_matches_what_mlflow_holds(store: dict[str, Any]) -> None:
    from nas.expert.mine import mine_rules

    trained_summary = store["summaries"][0]
    mined = mine_rules(store["uri"], ["mine-a", "mine-b"], min_support=1, min_lift=0.0)
    truth = _recount(store["uri"], "mine-a")
    assert len(truth) == trained_summary.completed + trained_summary.stopped >= 2
    rs = mined.ruleset
    assert (rs.space, rs.profile, rs.parallelism_factor) == ("mbv2-small", "npu32", 32)
    assert rs.source["searches"] == [trained_summary.parent_run_id]
    assert rs.source["architectures"] == len(truth)
    assert rs.source["pareto"] == sum(t["pareto"] for t in truth) == len(trained_summary.pareto)
    [search] = mined.searches
    assert (search.candidates, search.pareto, search.surrogate) == (
        len(truth), len(trained_summary.pareto), False)
    assert len(mined.skipped) == 1 and "NASWOT surrogate" in mined.skipped[0]
    pareto = [t for t in truth if t["pareto"]]
    dominated = [t for t in truth if not t["pareto"]]
    for rule in rs.rules:  # every rule's counts, recounted from the architecture strings
        args = (rule.position, rule.knob, rule.value, 32)
        assert rule.support.pareto == sum(_has(t["arch"], *args) for t in pareto), rule.label
        assert rule.support.dominated == sum(_has(t["arch"], *args) for t in dominated)
    assert len({(r.position, r.knob) for r in rs.rules}) == len(rs.rules)
    lifts = [r.support.pareto_share - r.support.dominated_share for r in rs.rules]
    assert lifts == sorted(lifts, reverse=True)

    both = mine_rules(store["uri"], ["mine-a", "mine-b"], include_surrogate=True)
    assert [s.surrogate for s in both.searches] == [False, True] and not both.skipped
    assert both.ruleset.source["architectures"] == len(truth) + store["summaries"][1].completed
    with pytest.raises(ValueError, match="no search left to mine in mine-b: 1 skipped"):
        mine_rules(store["uri"], ["mine-b"])


@pytest.mark.slow
def test_mine_cli_json_and_report(store: dict[str, Any], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    out = tmp_path / "rules" / "npu32.yaml"
    argv = ["expert", "mine", "--experiments", "mine-a,mine-b", "--out", str(out),
            "--tracking-uri", store["uri"], "--min-support", "1", "--min-lift", "0", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # exactly one JSON document
    assert "--include-surrogate" in captured.err and "note: skipped" in captured.err
    rs = load_rules(out)
    assert doc["ruleset"] == rs.model_dump(mode="json") and doc["rules_file"] == str(out)
    assert rs.source["command"] == (f"hwnas expert mine --experiments mine-a,mine-b --out {out} "
                                    f"--tracking-uri {store['uri']} --min-support 1 --min-lift 0")
    report = Path(doc["report"])
    assert report == out.with_suffix(".md")
    text = report.read_text()
    assert rs.rules or rs.source["pareto"] == rs.source["architectures"]  # no contrast, no rule
    if rs.rules:
        assert "| # | position | knob | value | Pareto | dominated |" in text
    table = text.split("## Rules")[1].split("## Searches")[0]
    assert len([line for line in table.splitlines() if line.startswith("| ")
                and not line.startswith("| # ")]) == len(rs.rules)
    assert all(r.note in text for r in rs.rules)
    assert f"| `{store['summaries'][0].parent_run_id}` | trained-" in text
    assert "scored by the NASWOT surrogate" in text.split("## Skipped")[1]

    assert main(argv[:-1]) == 0  # the console table
    assert f"{len(rs.rules)} rules from 1 search " in capsys.readouterr().out


@pytest.mark.slow
def test_mine_cli_errors_are_one_line(store: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    out = str(tmp_path / "r.yaml")
    assert main(["expert", "mine", "--experiments", "mine-a,nope", "--out", out,
                 "--tracking-uri", store["uri"]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("hwnas: error: unknown experiment 'nope'")
    assert "mine-a, mine-b" in captured.err.split("known: ")[1]
    assert main(["expert", "mine", "--experiments", "Default", "--out", out,
                 "--tracking-uri", store["uri"]]) == 2  # MLflow's own, with no search in it
    assert capsys.readouterr().err.startswith("hwnas: error: no hwnas searches in experiment "
                                              "Default of sqlite:///")
    assert main(["expert", "mine", "--experiments", "x", "--out", out,
                 "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert capsys.readouterr().err.startswith("hwnas: error: no MLflow store")
    assert not (tmp_path / "none.db").exists()  # reading never creates a store
    assert main(["expert", "mine", "--experiments", "mine-a", "--out", str(tmp_path / "r.md"),
                 "--tracking-uri", store["uri"]]) == 2
    assert "must not end in .md" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_searches_must_share_space_p_and_profile(store: dict[str, Any]) -> None:
    """Runs logged by hand the way the tracker logs them (experiment mine-c, its own)."""
    from mlflow.tracking import MlflowClient

    from nas.expert.mine import mine_rules

    client = MlflowClient(store["uri"])
    exp = client.create_experiment("mine-c")
    for name, status in (("npu16-search", "FINISHED"), ("killed-search", "KILLED")):
        parent = client.create_run(exp, run_name=name, tags={
            "hwnas.role": "search", "hwnas.space": "mbv2-small (curated, P=16)"}).info.run_id
        client.log_param(parent, "space.name", "mbv2-small")
        client.log_param(parent, "hardware.profile", "npu16")
        for i, (acc, lat) in enumerate(((0.9, 1.0), (0.5, 2.0))):
            child = client.create_run(exp, tags={"mlflow.parentRunId": parent,
                                                 "hwnas.role": "trial",
                                                 "hwnas.outcome": "completed"}).info.run_id
            client.log_param(child, "arch", arch("fffiiii" if i == 0 else "iiiiiii"))
            client.log_metric(child, "accuracy", acc)
            client.log_metric(child, "latency_ms", lat)
            client.set_terminated(child)
        client.set_terminated(parent, status=status)
    mined = mine_rules(store["uri"], ["mine-c"], min_support=1)
    assert mined.ruleset.parallelism_factor == 16 and mined.ruleset.profile == "npu16"
    assert [s.name for s in mined.searches] == ["npu16-search"]
    assert mined.skipped == (f"search killed-search ({parent[:8]}): ended KILLED, not finished",)
    assert [r.label for r in mined.ruleset.rules] == ["early: block = fibn"]
    with pytest.raises(ValueError, match=r"searches differ in parallelism factor: P=32 in search "
                       r"trained-\S+ \(\w{8}\) vs P=16 in search npu16-search"):
        mine_rules(store["uri"], ["mine-a", "mine-c"])
