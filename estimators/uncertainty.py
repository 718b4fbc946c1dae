"""Prediction intervals for the latency estimator, from a bootstrap ensemble of its regressors.

Why an ensemble and not quantile regression: a network's latency is the *sum* of its blocks,
and quantiles do not add (the 90th percentile of a sum is not the sum of the blocks' 90th
percentiles; block errors are correlated, since blocks of one kind share one model). An ensemble
gives coherent network-level samples instead: member ``m`` of every kind predicts every block
of the network, the blocks are summed (and the per-network overhead applied) *per member*, so
an error a member makes on many similar blocks adds up across them as it would in reality.

Each member is the product recipe (:func:`estimators.latency.fit_kind`, with the same choice of
work prior as the point model) fitted on a bootstrap resample of the kind's rows with its own
LightGBM seed. The point prediction is unchanged: it stays the model fitted on all rows.

The interval: with ``s`` the standard deviation over members of ``log(network latency)``,
``[p10, p90] = point * exp(-+1.28 * sqrt(s^2 + f^2))`` and ``p50 = point``, i.e. a log-normal
80% interval centred on the point prediction. With a handful of members their own 10th and 90th
percentiles would be the 2nd-smallest and 2nd-largest of 8 numbers, too noisy to use; the
log-normal form is stable and keeps ``p10 <= point <= p90`` by construction.

``f`` (``floor_log_sd`` in the manifest) is the error that a bootstrap ensemble cannot see:
it measures only the variance of the fit, not the bias of the recipe (on the H200 at batch 32
the sum of blocks overshoots networks by a few percent), measurement noise, or the per-network
overhead. It is calibrated on the build's whole networks as the smallest ``f`` that puts 80% of
them inside their interval. On the H200 tables the ensemble alone covered 25-50% of the build
networks and its spread hardly tracked the error at batch 32 (held-out networks had *less*
spread than build networks at the same error), so scaling the spread up (``q * s``) left
held-out coverage at 60%, where adding the floor in quadrature brought it to ~80%
(``benchmarks/active_profiling.py`` prints the figures). With fewer than
:data:`MIN_CALIBRATION_NETWORKS` networks ``f = 0`` and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from searchspaces.genome import Architecture

if TYPE_CHECKING:
    from .latency import KindModel, LatencyEstimator

DEFAULT_MEMBERS = 8
Z80 = 1.2815515655446004
"""The standard normal's 90th percentile: the half-width of a central 80% interval in sigmas."""
MIN_CALIBRATION_NETWORKS = 5


def fit_members(kind: str, config: np.ndarray, latency_ms: np.ndarray, parallelism_factor: int,
                prior: bool, count: int = DEFAULT_MEMBERS, seed: int = 0
                ) -> tuple[KindModel, ...]:
    """``count`` regressors of one kind, each on a bootstrap resample of the rows (drawn from
    ``numpy.random.default_rng([seed, i])``) and with LightGBM seed ``i``."""
    if count < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {count}")
    return tuple(fit_member(kind, config, latency_ms, parallelism_factor, prior, i, seed)
                 for i in range(count))


def fit_member(kind: str, config: np.ndarray, latency_ms: np.ndarray, parallelism_factor: int,
               prior: bool, index: int, seed: int = 0) -> KindModel:
    """Member ``index`` of :func:`fit_members` (each is fitted on its own, so in any order)."""
    from .latency import LGBM_PARAMS, fit_kind

    y = np.asarray(latency_ms, dtype=np.float64)
    rows = np.random.default_rng([seed, index]).integers(len(y), size=len(y))
    return fit_kind(kind, config[rows], y[rows], parallelism_factor,
                    params={**LGBM_PARAMS, "seed": index}, prior=prior)


def member_views(est: LatencyEstimator) -> list[LatencyEstimator]:
    """One estimator per ensemble member, with the estimator's composition (per-block cost and
    per-network overhead) and its own block and stage caches, so members are batched, cached and
    composed exactly as the point prediction is."""
    from .latency import LatencyEstimator

    if not est.members:
        raise ValueError(f"estimator ({est.profile}, {est.space}) has no ensemble members, so "
                         "no interval; rebuild or refit it with this hwnas")
    if not est._member_views:
        count = len(next(iter(est.members.values())))
        est._member_views = [
            LatencyEstimator(est.space, est.parallelism_factor, est.backend, est.profile,
                             {kind: models[i] for kind, models in est.members.items()},
                             overhead=est.overhead, per_block_ms=est.per_block_ms)
            for i in range(count)]
    return est._member_views


def member_network_ms(est: LatencyEstimator, archs: Sequence[Architecture],
                      num_classes: int = 1000, in_channels: int = 3) -> np.ndarray:
    """``(members, len(archs))`` network latencies in ms, one row per member."""
    return np.stack([view.predict_many(archs, num_classes, in_channels)
                     for view in member_views(est)])


def log_spread(samples_ms: np.ndarray) -> np.ndarray:
    """Standard deviation over the first axis (members) of log latency."""
    return np.std(np.log(np.maximum(samples_ms, 1e-12)), axis=0, ddof=1)


def half_width(spread: np.ndarray, floor: float) -> np.ndarray:
    """Half-width in log latency of the central 80% interval."""
    return Z80 * np.sqrt(np.asarray(spread) ** 2 + floor**2)


def predict_interval(est: LatencyEstimator, archs: Iterable[Architecture | str],
                     num_classes: int = 1000, in_channels: int = 3
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p10, p50, p90)`` in ms of each architecture; ``p50`` is the point prediction."""
    archs = [Architecture.from_string(a) if isinstance(a, str) else a for a in archs]
    point = est.predict_many(archs, num_classes, in_channels)
    half = half_width(log_spread(member_network_ms(est, archs, num_classes, in_channels)),
                      est.interval_floor)
    return point * np.exp(-half), point, point * np.exp(half)


def spread_and_point(est: LatencyEstimator, nets: Sequence[tuple[Architecture, int, int]]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Member log-spread and point prediction of each ``(arch, num_classes, in_channels)``,
    batched per ``(num_classes, in_channels)``."""
    spread, point = np.empty(len(nets)), np.empty(len(nets))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, nc, ic) in enumerate(nets):
        groups.setdefault((nc, ic), []).append(i)
    for (nc, ic), idx in groups.items():
        archs = [nets[i][0] for i in idx]
        spread[idx] = log_spread(member_network_ms(est, archs, nc, ic))
        point[idx] = est.predict_many(archs, nc, ic)
    return spread, point


def calibrate_on_networks(est: LatencyEstimator, nets: Sequence[tuple[Architecture, int, int]],
                          measured_ms: np.ndarray) -> dict[str, Any]:
    """Set ``est.interval_floor`` from measured whole networks (:func:`calibrate`); the
    report."""
    spread, point = spread_and_point(est, nets)
    est.interval_floor, report = calibrate(spread, point, measured_ms)
    return report


def calibrate(spread: np.ndarray, point_ms: np.ndarray, measured_ms: np.ndarray
              ) -> tuple[float, dict[str, Any]]:
    """The smallest floor ``f`` that puts 80% of the networks inside
    ``point * exp(+-1.28 * sqrt(spread^2 + f^2))`` (0 with too few networks), and a report."""
    spread, point, measured = (np.asarray(a, dtype=np.float64)
                               for a in (spread, point_ms, measured_ms))
    n = len(measured)
    resid = np.abs(np.log(measured / point))
    calibrated = n >= MIN_CALIBRATION_NETWORKS
    floor = 0.0
    if calibrated:
        need = np.maximum((resid / Z80) ** 2 - spread**2, 0.0)
        floor = float(np.sqrt(np.quantile(need, 0.8)))
    report: dict[str, Any] = {"networks": n, "calibrated": calibrated, "floor_log_sd": floor}
    if n:
        report["coverage_ensemble_only"] = float(np.mean(resid <= half_width(spread, 0.0)))
        report["coverage"] = float(np.mean(resid <= half_width(spread, floor) + 1e-12))
        report["median_log_spread"] = float(np.median(spread))
    return floor, report


def coverage(p10: np.ndarray, p90: np.ndarray, measured_ms: np.ndarray) -> float:
    """Fraction of measurements inside ``[p10, p90]`` (ideally 0.8)."""
    measured = np.asarray(measured_ms, dtype=np.float64)
    return float(np.mean((measured >= p10) & (measured <= p90)))

