"""Evaluate an estimator against whole networks measured on its back end.

The held-out networks are sampled from the estimator's space (curated and uncurated variants
alternately) with a random stream that the build never uses, measured end to end on the back end
(not as a sum of blocks), and compared with the prediction:

- ``within_5pct`` / ``within_10pct``: fraction of networks predicted within +-5% / +-10%;
- ``mape``: mean absolute percentage error, in percent;
- ``rmse_ms``: root-mean-square error in ms;
- ``kendall_tau`` / ``spearman``: rank correlation of predicted and measured latency (what a
  search needs: the right order of candidates);
- ``noise_floor``: the back end's own repeatability, the median over networks of the
  interquartile range of repeated runs divided by their median (0 for a simulator). An estimator
  cannot be judged more finely than this.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from .build import measure_network_sample, measure_parallel, sample_networks
from .latency import LatencyEstimator, resolve_estimator
from .profiles import load_profile

METRIC_KEYS = ("within_5pct", "within_10pct", "mape", "rmse_ms", "kendall_tau", "spearman",
               "noise_floor")


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


def evaluate_estimator(folder: str | Path, archs: int, seed: int = 1, workers: int = 1,
                       cache_dir: Path | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Metrics over ``archs`` held-out networks, and the per-network rows.

    ``workers`` processes measure in parallel (use 1 for a real CPU back end: parallel runs
    disturb each other); ``cache_dir`` is where a memoizing back end (ZigZag) keeps its layer
    results, by default the estimator's own ``cache/`` folder when it is writable.
    """
    if archs < 2:
        raise ValueError(f"evaluate needs at least 2 networks, got {archs}")
    folder = resolve_estimator(folder)
    estimator = LatencyEstimator.load(folder)
    profile = load_profile(estimator.meta.get("profile_path") or estimator.profile)
    if cache_dir is None and os.access(folder, os.W_OK):
        cache_dir = folder / "cache"
    nets = sample_networks(estimator.space, estimator.parallelism_factor, archs,
                           np.random.default_rng([seed, 1]))
    rows = []
    measured = measure_parallel(nets, measure_network_sample, profile, workers, cache_dir)
    for i, (net, m) in enumerate(measured):
        pred = estimator.predict(net.arch, net.num_classes, net.in_channels)
        rows.append({"arch": net.arch.to_string(), "num_classes": net.num_classes,
                     "in_channels": net.in_channels, "measured_ms": m.latency_ms,
                     "spread_ms": m.spread_ms, "predicted_ms": pred})
        if progress:
            progress(i + 1, len(nets))
    metrics = accuracy_metrics(np.array([r["predicted_ms"] for r in rows]),
                               np.array([r["measured_ms"] for r in rows]),
                               np.array([r["spread_ms"] for r in rows]))
    return metrics, rows
