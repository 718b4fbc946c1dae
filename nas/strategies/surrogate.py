"""Model-assisted selection for evolution: a cheap model ranks many children, the best is asked.

Evaluating a candidate (training it) costs minutes to hours; proposing one costs microseconds.
So evolution proposes a pool of children and a gradient-boosted tree model (LightGBM, Ke et al.,
NeurIPS 2017), refitted on every finished trial, predicts each child's objectives. The child
asked is the one whose predicted point adds the most hypervolume to the front found so far
(expected-improvement style acquisition with the model's mean as the point estimate, as in
SMS-EGO, Ponweiser et al., PPSN 2008). An objective known before evaluation (latency from an
estimator or a table) is computed, not predicted.

Children that add nothing are still ordered: by their additive-epsilon distance to the front
(Zitzler et al., IEEE TEC 2003), the amount every objective would have to improve before the
child became non-dominated, so a pool without any predicted improvement still yields its most
promising member rather than an arbitrary one.

Late in a search (``gp_after`` trials, :class:`~nas.strategies.evolution.Evolution`) the first
objective is predicted by a Gaussian process instead (scikit-learn's, Rasmussen and Williams 2006):
constant x RBF + white noise over the same one-hot features. Trees predict a flat value outside the
trials, so among children near the front they rank poorly; the GP's smooth interpolation ranks
them better once there are enough trials to fit its kernel, but before that it did worse than the
trees (docs/results.md). What the strategy ranks is an upper confidence bound (Srinivas et al.,
ICML 2010), the posterior mean plus ``optimism`` standard deviations of the noise-free function,
so where the trials leave it unsure the GP is optimistic. One length scale serves all features:
one per feature (ARD) measured level on NAS-Bench-201's ImageNet16-120 pairs for three times the
CPU (docs/results.md).

Pure functions over arrays, no state: the strategy refits from its own trial history, which is
what makes a resumed search continue exactly (the model is never saved or pickled).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.pareto import pareto_mask

# Small data (tens to hundreds of trials): shallow trees, few of them, leaves down to 2 samples,
# one thread and deterministic mode so a seed repeats the same search.
LGBM_PARAMS: dict[str, Any] = {
    "objective": "regression", "learning_rate": 0.1, "num_leaves": 8, "min_data_in_leaf": 2,
    "min_data_in_bin": 1, "min_sum_hessian_in_leaf": 0.0, "lambda_l2": 1.0,
    "num_threads": 1, "deterministic": True, "force_row_wise": True, "verbosity": -1,
}
ROUNDS = 60
BAGGING = 0.8
GP_REFIT = 10  # trials between fits of the GP's kernel (a fit costs many predictions)


def encode(configs: Sequence[Mapping[str, Any]],
           dimensions: Mapping[str, Sequence[Any]], unit: bool = False) -> np.ndarray:
    """Features of configs: a one-hot column per choice of every dimension that varies, plus the
    value itself for numeric dimensions (so a tree can split on "kernel >= 5"); with ``unit``,
    that value scaled to [0, 1] over the dimension's choices, so a distance-based model (the GP)
    weighs "channels 16 -> 320" like "kernel 3 -> 7", not 76 times as much."""
    columns: list[np.ndarray] = []
    for name, choices in dimensions.items():
        if len(choices) < 2:
            continue
        values = [c[name] for c in configs]
        for choice in choices:
            columns.append(np.array([v == choice for v in values], dtype=np.float64))
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            value = np.array(values, dtype=np.float64)
            if unit:
                low, high = float(min(choices)), float(max(choices))
                value = (value - low) / (high - low)
            columns.append(value)
    if not columns:
        return np.zeros((len(configs), 1))
    return np.column_stack(columns)


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_pool: np.ndarray,
                seed: int | None = None) -> np.ndarray:
    """LightGBM fitted on ``(x_train, y_train)``, predicting ``x_pool``; with fewer than 4 points
    (or a constant target) the mean, as a tree could not split anyway.

    With a ``seed``, every tree is fitted on its own random ``BAGGING`` share of the rows
    (LightGBM's bagging, drawn from ``seed``): one model of many the data support, so its
    prediction is a sample rather than the mean (Thompson sampling)."""
    import lightgbm as lgb

    if (flat := _too_few(y_train, len(x_pool))) is not None:
        return flat
    # the Dataset takes its own thread count: with LightGBM's default (all cores) binning a few
    # hundred rows costs ~10 ms of thread start-up on a busy machine, against 0.6 ms on one
    data = lgb.Dataset(x_train, y_train, params={"num_threads": 1, "verbosity": -1})
    params = LGBM_PARAMS if seed is None else {
        **LGBM_PARAMS, "bagging_fraction": BAGGING, "bagging_freq": 1, "seed": seed}
    booster = lgb.train(params, data, num_boost_round=ROUNDS)
    return np.asarray(booster.predict(x_pool, num_threads=1), dtype=np.float64)


def _too_few(y_train: np.ndarray, n_pool: int) -> np.ndarray | None:
    """The mean for every pool point when below 4 points or with a constant target (no model
    could tell the points apart), else ``None``."""
    if len(y_train) < 4 or np.ptp(y_train) == 0:
        return np.full(n_pool, float(np.mean(y_train)) if len(y_train) else 0.0)
    return None


def _gp_regressor(kernel: Any, optimise: bool, alpha: float = 1e-10) -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor

    # the target standardised (normalize_y); no restarts and a fixed random_state, so the fitted
    # kernel is a function of the data alone
    return GaussianProcessRegressor(kernel, alpha=alpha,
                                    optimizer="fmin_l_bfgs_b" if optimise else None,
                                    normalize_y=True, n_restarts_optimizer=0, random_state=0)


def gp_kernel(x_train: np.ndarray, y_train: np.ndarray) -> Any:
    """The kernel (constant x RBF + white noise) whose hyperparameters maximise the marginal
    likelihood of the standardised ``y_train``; bounds keep it a smooth model of noisy data."""
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from threadpoolctl import threadpool_limits

    prior = (ConstantKernel(1.0, (1e-2, 1e2)) * RBF(3.0, (0.3, 30.0))
             + WhiteKernel(0.05, (1e-4, 1.0)))
    # one BLAS thread, as LightGBM gets one: at a few hundred trials a second thread only spins
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # a bound reached is a legitimate optimum here
        return _gp_regressor(prior, True).fit(x_train, y_train).kernel_


def gp_predict(x_train: np.ndarray, y_train: np.ndarray, x_pool: np.ndarray,
               kernel: Any, optimism: float = 0.0) -> np.ndarray:
    """The posterior mean at ``x_pool`` of a GP with the fixed ``kernel`` (from
    :func:`gp_kernel`) conditioned on ``(x_train, y_train)``, plus ``optimism`` times the
    posterior standard deviation of the noise-free function (an upper confidence bound, Srinivas
    et al., ICML 2010); the mean below 4 points."""
    if (flat := _too_few(y_train, len(x_pool))) is not None:
        return flat
    if optimism:
        mean, std = gp_posterior(x_train, y_train, x_pool, kernel)
        return mean + optimism * std
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        gp = _gp_regressor(kernel, False).fit(x_train, y_train)
        return np.asarray(gp.predict(x_pool), dtype=np.float64)


def gp_posterior(x_train: np.ndarray, y_train: np.ndarray, x_pool: np.ndarray,
                 kernel: Any) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of the noise-free function at ``x_pool``, for a GP
    with the fixed ``kernel`` (from :func:`gp_kernel`) conditioned on ``(x_train, y_train)``; the
    mean and a zero deviation below 4 points."""
    if (flat := _too_few(y_train, len(x_pool))) is not None:
        return flat, np.zeros(len(x_pool))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        # gp_kernel's kernel is k1 (constant x RBF) + k2 (white noise); the noise as the
        # regressor's alpha gives the same posterior mean and a standard deviation of the
        # function itself, not of a noisy observation of it
        gp = _gp_regressor(kernel.k1, False, alpha=kernel.k2.noise_level).fit(x_train, y_train)
        mean, std = gp.predict(x_pool, return_std=True)
    return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def hypervolume_gain_2d(front: np.ndarray, candidates: np.ndarray,
                        reference: tuple[float, float],
                        sd: np.ndarray | None = None) -> np.ndarray:
    """Area each candidate alone would add to the front's hypervolume (both objectives
    minimised), all candidates at once: the front's dominated region is a staircase whose lower
    edge is ``y_k`` on ``[x_k, x_{k+1})`` (``reference[1]`` left of the first point), and a
    candidate ``(cx, cy)`` adds, on each step, its width right of ``cx`` times its height above
    ``cy``.

    With ``sd``, each candidate's ``cy`` is uncertain, normal with mean ``cy`` and standard
    deviation ``sd``: the *expected* area (expected hypervolume improvement, Emmerich et al.,
    2006), each step's height then ``E[max(y_k - Y, 0)]``, the closed form of expected
    improvement."""
    front = front[np.all(front < np.asarray(reference), axis=1)]
    if len(front):
        front = front[pareto_mask(front, (False, False))]
        front = front[np.lexsort((front[:, 1], front[:, 0]))]
    lower = np.concatenate([[-np.inf], front[:, 0]])
    upper = np.concatenate([front[:, 0], [reference[0]]])
    edge = np.concatenate([[reference[1]], front[:, 1]])
    width = np.clip(upper[None, :] - np.maximum(candidates[:, :1], lower[None, :]), 0.0, None)
    gap = edge[None, :] - candidates[:, 1:2]
    if sd is None:
        height = np.clip(gap, 0.0, None)
    else:
        from scipy.stats import norm

        scale = np.maximum(np.asarray(sd, dtype=np.float64), 1e-12)[:, None]
        height = gap * norm.cdf(gap / scale) + scale * norm.pdf(gap / scale)
    return (width * height).sum(axis=1)


def acquisition(front: np.ndarray, candidates: np.ndarray,
                sd: np.ndarray | None = None) -> np.ndarray:
    """Score of each candidate point (higher is better) against the front, both as *minimised*
    objectives normalised so the front spans about [0, 1] (reference point 1.1 in each).

    Two objectives: the hypervolume the candidate adds, when positive; otherwise (and for any
    other number of objectives) minus its additive-epsilon distance to the front, which is <= 0.
    With ``sd`` (each candidate's standard deviation on the first objective, in the same units),
    two objectives score the *expected* hypervolume gain instead (:func:`hypervolume_gain_2d`).
    """
    front = np.asarray(front, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64)
    if len(front) == 0:
        return np.zeros(len(candidates))
    # eps[i] = min over front points f of max_j (c_ij - f_j): > 0 iff some f dominates c by it
    gaps = (candidates[:, None, :] - front[None, :, :]).max(axis=2).min(axis=1)
    scores = -np.maximum(gaps, 0.0)
    if front.shape[1] != 2:
        return scores
    if sd is None:
        gain = hypervolume_gain_2d(front, candidates, (1.1, 1.1))
    else:  # the uncertain objective on the staircase's height axis (the area is symmetric)
        gain = hypervolume_gain_2d(front[:, ::-1], candidates[:, ::-1], (1.1, 1.1), sd)
    return np.where(gain > 0, gain, scores)
