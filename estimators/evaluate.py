"""Evaluate an estimator against whole networks measured on its back end.

The held-out networks are sampled from the estimator's space (curated and uncurated variants
alternately) with a random stream that the build never uses, measured end to end on the back end
(not as a sum of blocks), and compared with the prediction. They are classifiers, or with
``head`` (``det``, ``seg``) detection or segmentation networks of the space, scored the same way
(the estimator must have been built with that head: ``hwnas estimator build --head``):

- ``within_5pct`` / ``within_10pct``: fraction of networks predicted within +-5% / +-10%;
- ``mape``: mean absolute percentage error, in percent;
- ``rmse_ms``: root-mean-square error in ms;
- ``kendall_tau`` / ``spearman``: rank correlation of predicted and measured latency (what a
  search needs: the right order of candidates);
- ``noise_floor``: the back end's own repeatability, the median over networks of the
  interquartile range of repeated runs divided by their median (0 for a simulator). An estimator
  cannot be judged more finely than this.

and the **repeatability ceiling**, how well two timings of the same network agree:

- the held-out networks are timed in ``passes`` interleaved passes
  (:func:`~estimators.build.measure_in_passes`: a network's passes are a whole sweep over the
  networks apart, minutes on a CPU). Timing A of a network is
  :func:`~estimators.build.robust_timing` over its odd passes, timing B over its even passes:
  two independent timings by the method that a build with ``passes / 2`` network passes uses;
- ``repeat_within_5pct`` / ``repeat_within_10pct``: the fraction of networks whose A and B
  agree within 5% / 10% (the larger over the smaller at most 1.05 / 1.10). No estimator can be
  expected to agree with a measurement more often than the measurement agrees with itself;
- ``repeat_passes``: the passes timed. A deterministic back end (a simulator) is timed once:
  its ceiling is 1 by definition, not by measurement;
- ``repeat_statistic``: what a pass reports of its repeats, ``median`` or ``min`` (the
  fastest), as the estimator's build did (:func:`eval_profile`); ``null`` on a simulator;
- ``repeat_reference_ms``: with a back end timed against a reference (``reference:
  network``), the reference's time every ratio was scaled by, the build's own; else ``null``.

The accuracy metrics score the prediction against :func:`~estimators.build.robust_timing` over
*all* passes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from searchspaces.genome import TASK_HEADS
from searchspaces.layers import HEAD_BLOCKS

from .backends import Measurement
from .backends.timing import STATISTIC
from .build import (
    measure_in_passes,
    measure_network_sample,
    robust_timing,
    sample_networks,
    timing_passes,
    timing_reference,
    timing_statistic,
)
from .latency import LatencyEstimator, read_manifest, resolve_estimator
from .profiles import HardwareProfile, load_profile

METRIC_KEYS = ("within_5pct", "within_10pct", "mape", "rmse_ms", "kendall_tau", "spearman",
               "noise_floor", "repeat_within_5pct", "repeat_within_10pct", "repeat_passes",
               "repeat_statistic", "repeat_reference_ms")


def accuracy_metrics(predicted: np.ndarray, measured: np.ndarray, spread: np.ndarray
                     ) -> dict[str, float]:
    """The metrics above from paired predictions and measurements (ms)."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    if predicted.shape != measured.shape or predicted.size < 2:
        raise ValueError("need at least two paired predictions and measurements")
    rel = np.abs(predicted - measured) / measured
    return {
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "mape": float(np.mean(rel) * 100),
        "rmse_ms": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "kendall_tau": float(stats.kendalltau(predicted, measured).statistic),
        "spearman": float(stats.spearmanr(predicted, measured).statistic),
        "noise_floor": float(np.median(np.asarray(spread, float) / measured)),
    }


def repeatability(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """The fraction of networks whose two timings (ms) agree within 5% and 10%: the larger
    over the smaller at most 1.05 / 1.10 (symmetric, so which timing comes first is moot)."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    if first.shape != second.shape or first.size < 1:
        raise ValueError("need at least one pair of timings of the same networks")
    if np.any(first <= 0) or np.any(second <= 0):
        raise ValueError("timings must be positive")
    ratio = np.maximum(first, second) / np.minimum(first, second)
    return {"repeat_within_5pct": float(np.mean(ratio <= 1.05)),
            "repeat_within_10pct": float(np.mean(ratio <= 1.10))}


def eval_passes(estimator: LatencyEstimator, profile: HardwareProfile) -> int:
    """Default timing passes of an evaluation: the passes the estimator's build timed its whole
    networks in (its manifest), else its profile's ``network_passes``; at least 2. Each network
    keeps its fastest pass, and the fastest of 4 runs lower than the fastest of 2: scored against
    networks timed in more passes than the build's, an estimator reads a few percent high
    (docs/estimators.md, "Block timing passes")."""
    built = estimator.meta.get("network_passes")
    passes = built if isinstance(built, int) and built > 1 else timing_passes(profile)
    return max(2, passes)


def eval_profile(estimator: LatencyEstimator, profile: HardwareProfile) -> HardwareProfile:
    """``profile`` timing passes as the estimator's build did (its manifest): with its statistic
    (median for an estimator built before the setting existed: an estimator fitted on medians,
    scored against fastest repeats, would read a few percent high, and the other way round),
    and against its reference with the build's own scale (``reference_ms``), or against none
    for an estimator built without one: two calibrations of the reference differ by the
    machine's speed at the moment, which the build's scale divides out."""
    if timing_statistic(profile) is None:
        return profile
    settings = {**profile.settings, "statistic": estimator.meta.get("statistic") or STATISTIC}
    reference = estimator.meta.get("reference") or "none"
    if reference != "none" or "reference" in settings:
        settings["reference"] = reference
        settings.pop("reference_ms", None)
        if reference != "none" and estimator.meta.get("reference_ms") is not None:
            settings["reference_ms"] = float(estimator.meta["reference_ms"])
    if settings == profile.settings:
        return profile
    return dataclasses.replace(profile, settings=settings)


def split_timings(passes: list[Measurement], referenced: bool = False
                  ) -> tuple[Measurement, Measurement]:
    """Timings A (odd passes) and B (even passes) of one network, each
    :func:`~estimators.build.robust_timing` over its half (``referenced``: passes timed
    against a reference); one pass is both."""
    if len(passes) == 1:
        return passes[0], passes[0]
    return (robust_timing(passes[0::2], referenced),
            robust_timing(passes[1::2], referenced))


def check_head(folder: str | Path, head: str) -> None:
    """One-line ``ValueError`` unless the estimator in ``folder`` prices networks ending in a
    ``head`` head (``head``, ``det``, ``seg``): it has a model for each of the head's kinds."""
    if head not in TASK_HEADS.values():
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(TASK_HEADS.values())}")
    folder = resolve_estimator(folder)
    missing = [k for k in HEAD_BLOCKS.get(head, ()) if k not in read_manifest(folder)["models"]]
    if missing:
        raise ValueError(f"estimator {folder} has no model for {', '.join(missing)} blocks; "
                         f"build it with --head {head} (or all) to evaluate {head} networks")


def evaluate_estimator(folder: str | Path, archs: int, seed: int = 1, workers: int = 1,
                       cache_dir: Path | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       passes: int | None = None, head: str = "head"
                       ) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Metrics over ``archs`` held-out networks, and the per-network rows (with the
    ``reference_ms`` their times are scaled by, ``None`` on the plain clock).

    ``workers`` processes measure in parallel (use 1 for a real CPU back end: parallel runs
    disturb each other); ``cache_dir`` is where a memoizing back end (ZigZag) keeps its layer
    results, by default the estimator's own ``cache/`` folder when it is writable. ``passes``
    (>= 2) timing passes give the repeatability ceiling (one on a deterministic back end); by
    default as many as the estimator's build timed its networks in, at least 2, so that the
    networks scored are timed as the ones its composition was fitted on (:func:`eval_passes`);
    ``progress(done, total)`` counts single network measurements over all passes. ``head``
    (``head``, ``det`` or ``seg``) is the task head the held-out networks end in.
    """
    if archs < 2:
        raise ValueError(f"evaluate needs at least 2 networks, got {archs}")
    if passes is not None and passes < 2:
        raise ValueError(f"evaluate needs at least 2 timing passes (the repeatability ceiling "
                         f"compares two), got {passes}")
    folder = resolve_estimator(folder)
    check_head(folder, head)
    estimator = LatencyEstimator.load(folder)
    profile = eval_profile(estimator, load_profile(estimator.meta.get("profile_path")
                                                   or estimator.profile))
    if cache_dir is None and os.access(folder, os.W_OK):
        cache_dir = folder / "cache"
    nets = sample_networks(estimator.space, estimator.parallelism_factor, archs,
                           np.random.default_rng([seed, 1]), head)
    passes = timing_passes(profile, eval_passes(estimator, profile) if passes is None else passes)
    referenced = timing_reference(profile) is not None
    scale = profile.settings.get("reference_ms") if referenced else None
    rows = []
    for net, timed in measure_in_passes(nets, measure_network_sample, profile, workers, passes,
                                        cache_dir, progress):
        m = robust_timing(timed, referenced)
        a, b = split_timings(timed, referenced)
        rows.append({"arch": net.arch.to_string(), "num_classes": net.num_classes,
                     "in_channels": net.in_channels, "measured_ms": m.latency_ms,
                     "spread_ms": m.spread_ms,
                     "predicted_ms": estimator.predict(net.arch, net.num_classes,
                                                       net.in_channels),
                     "timing_a_ms": a.latency_ms, "timing_b_ms": b.latency_ms,
                     "reference_ms": scale})
    metrics = accuracy_metrics(np.array([r["predicted_ms"] for r in rows]),
                               np.array([r["measured_ms"] for r in rows]),
                               np.array([r["spread_ms"] for r in rows]))
    metrics.update(repeatability(np.array([r["timing_a_ms"] for r in rows]),
                                 np.array([r["timing_b_ms"] for r in rows])))
    metrics["repeat_passes"] = passes
    metrics["repeat_statistic"] = timing_statistic(profile)
    metrics["repeat_reference_ms"] = scale
    return metrics, rows
