"""The latency landscape: roughness measures on known curves, sweeps and descents with the
shipped NPU estimator, the report's JSON round trip, the plot and the one-line errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from estimators.latency import LatencyEstimator, resolve_estimator
from nas.analysis.landscape import (
    LandscapeReport,
    channel_neighbours,
    channel_sweep,
    descend,
    descent_minima,
    edge_rise_share,
    landscape_report,
    plot_landscape,
    random_channels,
    roughness,
    sweep_base,
    top_rises,
)
from searchspaces.layers import decompose
from searchspaces.spaces import SearchSpace, get_space

P = 32


@pytest.fixture(scope="module")
def est() -> LatencyEstimator:
    return LatencyEstimator.load(resolve_estimator("npu32-mbv2-small"))


@pytest.fixture(scope="module")
def narrow() -> SearchSpace:
    """mbv2-small with channel ranges of +-10% (uncurated): descents stay short."""
    return replace(get_space("mbv2-small", P, curated=False), channel_range=(0.9, 1.1))


# -- roughness ---------------------------------------------------------------------------------

def test_roughness_of_monotone_curves() -> None:
    up = roughness(np.arange(10.0))
    assert (up.points, up.steps, up.down_steps, up.flat_steps) == (10, 9, 0, 0)
    assert up.non_monotone_fraction == 0.0
    assert (up.local_minima, up.interior_minima) == (1, 0)  # the low end only
    down = roughness(np.arange(10.0)[::-1])
    assert down.non_monotone_fraction == 1.0
    assert (down.local_minima, down.interior_minima) == (1, 0)  # the high end
    stairs = roughness([1.0, 1.0, 2.0, 2.0, 3.0])  # plateaus merge: still one basin
    assert (stairs.down_steps, stairs.flat_steps, stairs.local_minima) == (0, 2, 1)
    flat = roughness([5.0, 5.0, 5.0])
    assert (flat.flat_steps, flat.local_minima, flat.interior_minima) == (2, 1, 0)
    one = roughness([3.0])
    assert (one.steps, one.non_monotone_fraction, one.local_minima) == (0, 0.0, 1)


def test_roughness_of_known_zigzags() -> None:
    z = roughness([1.0, 2.0, 1.0, 2.0, 1.0])
    assert (z.steps, z.down_steps) == (4, 2)
    assert z.non_monotone_fraction == 0.5
    assert (z.local_minima, z.interior_minima) == (3, 1)  # both ends and the middle
    saw = roughness([0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0])  # up 3, down 1, three times
    assert saw.down_steps == 3 and math.isclose(saw.non_monotone_fraction, 3 / 7)
    assert (saw.local_minima, saw.interior_minima) == (4, 3)
    valley = roughness([3.0, 1.0, 1.0, 2.0])  # a flat-bottomed valley is one minimum
    assert (valley.local_minima, valley.interior_minima) == (1, 1)


def test_roughness_tolerance_makes_small_dips_flat() -> None:
    y = [1.0, 1.05, 1.0, 2.0]
    assert (roughness(y).down_steps, roughness(y).local_minima) == (1, 2)
    tol = roughness(y, atol=0.1)
    assert (tol.down_steps, tol.flat_steps, tol.local_minima) == (0, 2, 1)


def test_roughness_minima_match_brute_force(rng: np.random.Generator) -> None:
    for n in (2, 3, 5, 17, 60):
        for _ in range(20):
            y = rng.permutation(n).astype(float)  # distinct values: no plateaus
            brute = sum(all(y[j] > y[i] for j in (i - 1, i + 1) if 0 <= j < n)
                        for i in range(n))
            r = roughness(y)
            assert r.local_minima == brute
            assert r.interior_minima == brute - int(y[0] < y[1]) - int(y[-1] < y[-2])
            assert r.down_steps == int(np.sum(np.diff(y) < 0))


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, float("nan")]])
def test_roughness_rejects_bad_input(bad: list) -> None:
    with pytest.raises(ValueError):
        roughness(bad)


def test_edge_rise_share_and_top_rises() -> None:
    c = np.arange(1, 97)
    stairs = np.ceil(c / P)
    assert edge_rise_share(c, stairs, P) == 1.0
    assert top_rises(c, stairs, count=5) == (33, 65)  # kP -> kP + 1: a new pass
    ramp = c.astype(float)
    assert math.isclose(edge_rise_share(c, ramp, P), 2 / 95)
    assert edge_rise_share(c, np.ones(96), P) == 0.0
    with pytest.raises(ValueError):
        edge_rise_share(c, ramp[:-1], P)


# -- sweeps ------------------------------------------------------------------------------------

def test_sweep_base_builds_the_same_network() -> None:
    space = get_space("mbv2-small", P, curated=True)
    base = replace(space.baseline(), width_mult=0.75)
    flat = sweep_base(space, base)
    assert (flat.width_mult, flat.channel_divisor) == (1.0, 1)
    assert decompose(flat, 10) == decompose(base, 10)
    assert sweep_base(space) == sweep_base(space, sweep_base(space))  # idempotent


def test_channel_sweep_curated_points_lie_on_the_uncurated_curve(est: LatencyEstimator) -> None:
    unc = get_space("mbv2-small", P, curated=False)
    cur = get_space("mbv2-small", P, curated=True)
    stage = 3
    chans = unc.channel_choices[stage]
    lat = channel_sweep(unc, est, stage, "ibn", chans)
    assert lat.shape == (len(chans),) and np.all(np.isfinite(lat)) and np.all(lat > 0)
    cur_lat = channel_sweep(cur, est, stage, "ibn", cur.channel_choices[stage])
    np.testing.assert_array_equal(cur_lat, lat[[chans.index(c) for c in cur.channel_choices[3]]])
    # the same points scored as members of the curated space itself (divisor P, width 1.0)
    choices = cur.to_choices(cur.baseline())
    direct = [cur.from_choices({**choices, "s3_channels": c}) for c in cur.channel_choices[3]]
    np.testing.assert_allclose(est.predict_many(direct), cur_lat, rtol=1e-12)
    # the kind matters: a conv stage is another curve
    assert not np.allclose(channel_sweep(unc, est, stage, "conv", chans), lat)


def test_channel_sweep_rejects_bad_stage_and_kind(est: LatencyEstimator) -> None:
    space = get_space("mbv2-small", P, curated=False)
    for stage in (7, -1):
        with pytest.raises(ValueError, match="out of range") as err:
            channel_sweep(space, est, stage, "ibn", [32])
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown block kind 'dense'") as err:
        channel_sweep(space, est, 3, "dense", [32])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="positive integers"):
        channel_sweep(space, est, 3, "ibn", [0, 1])


# -- descent -----------------------------------------------------------------------------------

@pytest.mark.parametrize("objective", ["latency", "latency_per_channel"])
def test_descent_ends_where_no_neighbour_improves(est: LatencyEstimator, narrow: SearchSpace,
                                                  objective: str) -> None:
    rng = np.random.default_rng(7)
    starts = [random_channels(narrow, rng) for _ in range(3)]
    ends = descend(narrow, est, starts, objective)
    ctx = sweep_base(narrow)

    def value(vec: tuple[int, ...]) -> float:  # scored independently of the descent's memo
        arch = replace(ctx, stages=tuple(replace(s, channels=c)
                                         for s, c in zip(ctx.stages, vec)))
        lat = est.predict(arch)
        return lat / sum(vec) if objective == "latency_per_channel" else lat

    for start, end in zip(starts, ends):
        assert end.start == start
        assert math.isclose(end.value, value(end.end), rel_tol=1e-12)
        assert end.value <= value(start)
        assert all(value(nb) >= end.value for nb in channel_neighbours(narrow, end.end))
        assert (end.moves == 0) == (end.end == start)


def test_descent_minima_summary(est: LatencyEstimator, narrow: SearchSpace) -> None:
    res = descent_minima(narrow, est, np.random.default_rng(0), starts=4)
    assert 1 <= res.distinct_minima <= 4 and 0 < res.reached_best <= 1
    assert res.best_value <= res.median_value and res.floor_value > 0
    again = descent_minima(narrow, est, np.random.default_rng(0), starts=4)
    assert again == res  # the rng is the only randomness
    with pytest.raises(ValueError, match="not a choice"):
        descend(narrow, est, [(1,) * 7])
    with pytest.raises(ValueError, match="unknown objective"):
        descend(narrow, est, [random_channels(narrow, np.random.default_rng(0))], "accuracy")


# -- report and plot ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(est: LatencyEstimator) -> LandscapeReport:
    template = replace(get_space("mbv2-small", P), channel_range=(0.8, 1.2))
    return landscape_report(template, est, stages=[3, 6], kinds=("ibn", "conv"), seed=1,
                            starts=2, descent_kinds=("ibn",))


def test_report_rows_and_json_round_trip(report: LandscapeReport) -> None:
    assert [(r.stage, r.kind) for r in report.rows] == [(3, "ibn"), (3, "conv"), (6, "ibn"),
                                                        (6, "conv")]
    for row in report.rows:
        assert set(row.curated_channels) <= set(row.channels)
        assert all(c % P == 0 for c in row.curated_channels)
        assert np.all(np.diff(row.channels) == 1)
        assert row.uncurated.points == len(row.channels)
        assert row.curated.points == len(row.curated_channels)
    assert {(d.objective, d.curated) for d in report.descent} == {
        ("latency", True), ("latency", False), ("latency_per_channel", True),
        ("latency_per_channel", False)}
    data = json.loads(json.dumps(report.to_dict()))
    assert LandscapeReport.from_dict(data) == report
    table = report.table()
    assert "uncurated (step 1)" in table and "greedy descent" in table


def test_report_errors_are_one_line(est: LatencyEstimator) -> None:
    cases = [({"space_name": "mbv2"}, "built for space 'mbv2-small'"),
             ({"stages": [9]}, "out of range"),
             ({"kinds": ("ibn", "mbconv")}, "unknown block kind"),
             ({"objectives": ("speed",)}, "unknown objective")]
    for kwargs, message in cases:
        args = {"space_name": "mbv2-small", "estimator": est, "starts": 0, **kwargs}
        with pytest.raises(ValueError, match=message) as err:
            landscape_report(**args)
        assert "\n" not in str(err.value)


def test_plot_writes_a_png(report: LandscapeReport, tmp_path) -> None:
    path = plot_landscape(report, tmp_path / "landscape.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    rows_only = plot_landscape(report.rows[:1], tmp_path / "one.png", parallelism_factor=P)
    assert rows_only.stat().st_size > 0
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_landscape([], tmp_path / "none.png")


def test_benchmark_script(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.space_landscape import main

    png, out = tmp_path / "l.png", tmp_path / "l.json"
    rc = main(["--space", "mbv2-small", "--estimator", "npu32-mbv2-small", "--stages", "3",
               "--kinds", "ibn", "--starts", "2", "--png", str(png), "--json", str(out)])
    assert rc == 0 and png.stat().st_size > 0
    assert json.loads(out.read_text())["rows"][0]["stage"] == 3
    assert "largest rises" in capsys.readouterr().out
    assert main(["--space", "mbv2", "--estimator", "npu32-mbv2-small", "--starts", "0"]) == 2
    assert "built for space" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_space_landscape(tmp_path: Path) -> None:
    from conftest import run_cli

    png = tmp_path / "land.png"
    proc = run_cli("space", "landscape", "mbv2-small", "-e", "npu32-mbv2-small", "--stages", "3",
                   "--kinds", "conv", "--starts", "2", "--png", str(png), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    [row] = report["rows"]
    assert row["stage"] == 3 and row["kind"] == "conv"
    assert len(row["latency_ms"]) == len(row["channels"]) > len(row["curated_channels"]) > 1
    assert row["curated"]["non_monotone_fraction"] <= row["uncurated"]["non_monotone_fraction"]
    assert png.stat().st_size > 1000 and report["png"] == str(png)
    bad = run_cli("space", "landscape", "mbv2", "-e", "npu32-mbv2-small")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
