"""torch-cpu timed against a fixed reference network (``reference: network``, issue 12): each
repeat divided by the reference's repeat of the same round, scaled by one calibrated time that a
build keeps for its evaluations and refits."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from estimators.backends import Measurement, create_backend
from estimators.backends.timing import REFERENCE_NETWORK, reference_ratios
from estimators.backends.torch_backends import TorchCPUBackend
from estimators.build import (
    TIMING_FILE,
    build_estimator,
    fit_estimator,
    robust_timing,
    table_scale,
    timing_protocol,
    timing_reference,
)
from estimators.evaluate import eval_profile, evaluate_estimator, split_timings
from estimators.latency import MANIFEST, LatencyEstimator
from estimators.profiles import HardwareProfile, load_profile
from searchspaces.baselines import mobilenetv2
from searchspaces.genome import Architecture
from searchspaces.layers import decompose

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"pin_core": "auto", "warmup": 1, "repeats": 5, "min_time_ms": 0}


def _profile(**settings: object) -> HardwareProfile:
    return HardwareProfile("test", "torch-cpu", 16, settings=dict(settings))


def test_passes_against_a_reference_combine_by_their_median() -> None:
    """On the plain clock the fastest pass is the least disturbed; against a reference the
    disturbance divides out, and the median of the passes is the estimate."""
    passes = [Measurement(2.5, 0.2), Measurement(2.0, 0.1), Measurement(3.0, 0.4)]
    assert robust_timing(passes) == Measurement(2.0, 0.1)
    assert robust_timing(passes, referenced=True) == Measurement(2.5, 0.2)
    assert robust_timing(passes[:2], referenced=True) == Measurement(2.25, 0.15000000000000002)
    assert split_timings(passes[:2], referenced=True) == (passes[0], passes[1])


def test_reference_ratios_divide_each_round_by_the_reference() -> None:
    """A slowdown that lasts a round hits the workload and the reference alike: the ratios
    stay put, and the scale turns them back into milliseconds."""
    work = [[2.0, 4.0, 6.0], [1.0, 1.0, 3.0]]
    ratios = reference_ratios(work, [1.0, 2.0, 3.0], scale_ms=5.0)
    assert np.allclose(ratios[0], [10.0, 10.0, 10.0])
    assert np.allclose(ratios[1], [5.0, 2.5, 5.0])
    with pytest.raises(ValueError, match="positive time"):
        reference_ratios(work, [1.0, 0.0, 3.0], scale_ms=5.0)


@pytest.mark.parametrize(("settings", "key"), [
    ({"reference": "block"}, "reference"),
    ({"reference": "network", "statistic": "min"}, "statistic"),
    ({"reference": "network", "reference_ms": 0.0}, "reference_ms"),
    ({"reference": "network", "reference_ms": "fast"}, "reference_ms"),
])
def test_bad_reference_settings_raise(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key) as info:
        TorchCPUBackend(_profile(**settings))
    assert "\n" not in str(info.value)


def test_without_a_reference_there_is_no_scale() -> None:
    assert TorchCPUBackend(_profile(**QUICK)).reference_ms() is None
    assert create_backend("roofline-npu32").reference_ms() is None
    assert timing_reference(_profile()) is None
    assert timing_reference(_profile(reference="network")) == "network"
    assert timing_reference(load_profile("npu32")) is None


def test_the_reference_timed_against_itself_reads_its_scale() -> None:
    """The reference network measured against the reference: every ratio is one run of the
    same program over another, so the median ratio is near 1 and the latency near the scale
    given. The scale is 1 s, hundreds of times what the network takes on any CPU, so the
    window can be wide (a factor of 2 either way: two runs of one program on a shared core
    have differed by 26%) and still tell the scale from the network's own time."""
    backend = TorchCPUBackend(_profile(**{**QUICK, "repeats": 21}, reference="network",
                                       reference_ms=1000.0))
    assert backend.reference_ms() == 1000.0  # the setting: nothing calibrated
    arch, num_classes, in_channels = REFERENCE_NETWORK
    m = backend.measure_network(Architecture.from_string(arch), num_classes, in_channels)
    assert 500.0 < m.latency_ms < 2000.0
    assert m.spread_ms >= 0.0
    blocks = decompose(Architecture.from_string(arch), num_classes, in_channels)
    timed = backend.measure_blocks(blocks[:4])
    assert len(timed) == 4 and all(0 < t.latency_ms < 1000.0 for t in timed)
    in_context = backend.measure_network_blocks(Architecture.from_string(arch), num_classes,
                                                in_channels)
    assert len(in_context) == len(blocks)
    assert 0.5 * m.latency_ms < sum(t.latency_ms for t in in_context) < 2.0 * m.latency_ms


def test_a_backend_calibrates_its_reference_once() -> None:
    backend = TorchCPUBackend(_profile(reference="network", **QUICK))
    first = backend.reference_ms()
    assert first is not None and first > 0
    assert backend.reference_ms() == first


def test_a_reference_build_keeps_its_scale_for_resume_eval_and_refit(tmp_path: Path) -> None:
    """The build calibrates once and writes the scale before any row; a resumed build, every
    evaluation and a refit from the tables use that number, not a new calibration."""
    profile = tmp_path / "torch-cpu-ref.yaml"
    profile.write_text("name: torch-cpu-ref\nbackend: torch-cpu\nparallelism_factor: 16\n"
                       "description: torch-cpu against a reference, quick, for tests\n"
                       "settings:\n  pin_core: auto\n  warmup: 1\n  repeats: 5\n"
                       "  min_time_ms: 0\n  reference: network\n")
    est = tmp_path / "est"
    build_estimator(str(profile), "mbv2-small", 24, est, networks=2)
    saved = json.loads((est / TIMING_FILE).read_text())
    manifest = json.loads((est / MANIFEST).read_text())
    assert saved["reference"] == manifest["reference"] == "network"
    # the scale: the calibration, or the reference's fastest repeat over the build if faster
    assert saved["reference_ms"] == manifest["reference_calibrated_ms"] > 0
    assert saved["reference_fastest_ms"] == manifest["reference_fastest_ms"] > 0
    scale = min(saved["reference_ms"], saved["reference_fastest_ms"])
    assert manifest["reference_ms"] == scale
    assert manifest["statistic"] == "median"

    # resuming: the file's scale, not a fresh calibration; another protocol is refused
    (est / TIMING_FILE).write_text(json.dumps({**saved, "reference_ms": 3.5}))
    prof = load_profile(str(profile))
    resumed, protocol = timing_protocol(prof, create_backend(prof), est)
    assert protocol["reference_ms"] == 3.5 and resumed.settings["reference_ms"] == 3.5
    plain = dataclasses.replace(prof, settings={**prof.settings, "reference": "none"})
    with pytest.raises(ValueError, match="timed with reference 'network'") as info:
        timing_protocol(plain, create_backend(plain), est)
    assert "\n" not in str(info.value)
    (est / TIMING_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        timing_protocol(prof, create_backend(prof), est)
    (est / TIMING_FILE).write_text(json.dumps(saved))

    estimator = LatencyEstimator.load(est, intervals=False)
    evaluated = eval_profile(estimator, prof)
    assert evaluated.settings["reference_ms"] == scale
    assert create_backend(evaluated).reference_ms() == scale
    metrics, rows = evaluate_estimator(est, 2, seed=4)
    assert metrics["repeat_reference_ms"] == scale
    for r in rows:  # two passes against a reference: their mean, not the faster
        assert r["measured_ms"] == pytest.approx((r["timing_a_ms"] + r["timing_b_ms"]) / 2)
        assert r["reference_ms"] == scale

    refit = tmp_path / "refit"
    fit_estimator(est, str(profile), "mbv2-small", refit)
    again = json.loads((refit / MANIFEST).read_text())
    assert (again["reference"], again["reference_ms"]) == ("network", scale)
    assert json.loads((refit / TIMING_FILE).read_text()) == saved

    # a build calibrated in a slow minute: its fastest reference repeat (half the calibration
    # here) is the scale, and every table latency is rescaled to it, so predictions halve
    slow = tmp_path / "slow"
    shutil.copytree(est, slow)
    (slow / TIMING_FILE).write_text(json.dumps(
        {**saved, "reference_fastest_ms": saved["reference_ms"] / 2}))
    assert table_scale(slow) == (saved["reference_ms"] / 2, 0.5)
    rescaled, _ = fit_estimator(slow, str(profile), "mbv2-small", slow)
    assert json.loads((slow / MANIFEST).read_text())["reference_ms"] == saved["reference_ms"] / 2
    archs = [mobilenetv2(), *(Architecture.from_string(r["arch"]) for r in rows)]
    (slow / TIMING_FILE).write_text(json.dumps({**saved, "reference_fastest_ms": None}))
    calibrated, _ = fit_estimator(slow, str(profile), "mbv2-small", tmp_path / "calibrated")
    assert table_scale(slow) == (saved["reference_ms"], 1.0)
    np.testing.assert_allclose(rescaled.predict_many(archs),
                               calibrated.predict_many(archs) / 2, rtol=1e-6)


def test_an_estimator_built_without_a_reference_is_evaluated_without_one() -> None:
    """The shipped CPU estimator was measured on the plain clock: a profile that now times
    against a reference evaluates it on the plain clock too."""
    built = LatencyEstimator.load(ROOT / "estimators" / "shipped" / "torch-cpu-mbv2-small",
                                  intervals=False)
    cpu = load_profile("torch-cpu")
    with_ref = dataclasses.replace(cpu, settings={**cpu.settings, "reference": "network",
                                                  "statistic": "median"})
    assert built.meta.get("reference") is None
    profile = eval_profile(built, with_ref)
    assert profile.settings["reference"] == "none" and "reference_ms" not in profile.settings
    assert timing_reference(profile) is None
