"""Active profiling: spend a block-measuring budget in rounds, each on the blocks that the
space's candidate networks are most uncertain about.

Round 1 measures a random share of the budget (:func:`estimators.build.sample_blocks`: curated
and uncurated blocks, every kind). Each later round fits a bootstrap ensemble per kind on the
rows of the earlier rounds (:func:`estimators.uncertainty.fit_members`), samples
:data:`CANDIDATE_NETWORKS` candidate networks of the space (both variants, as the block sampler
does), decomposes them into blocks and scores every block not yet measured:

- ``spread``: the members' standard deviation of the block's log latency;
- ``usage`` (default): that spread times the block's *share of the candidates' latency*,
  ``sum over candidate networks n containing b of ms_b / ms_n``. A network's log error is the
  latency-weighted mean of its blocks' log errors, so this is how much the block's uncertainty
  moves the candidates' predictions: a large, often-used block outranks a rare one or a pooling
  layer that is 0.1% of every network. Kinds are not given quotas: a kind whose blocks matter
  little to networks gets few measurements, which is the point; round 1 covers every kind,
  and a kind with under :data:`MIN_KIND_ROWS` rows counts as wholly uncertain.

A round's blocks are picked greedily with *local penalization* (Gonzalez et al., AISTATS 2016):
after a block is picked, the scores of blocks of its kind are multiplied by
``1 - exp(-d^2 / 2 l^2)``, ``d`` the distance in standardized log configuration. Without it a
round spends its whole share on near-copies of the single most uncertain region.

Determinism and resuming: round ``r`` depends only on the seed and the rows measured in rounds
before it (the ensemble is deterministic LightGBM on one thread; the candidates come from their
own seeded stream). A resumed build replays the rounds: it refits on the rows the table already
holds, so it chooses the same blocks, and measures only those not yet in the table.

Offline (:func:`choose_from_pool`, used by ``benchmarks/active_profiling.py``) the candidates
are rows of an already-measured pool: a candidate network's blocks are mapped to their nearest
pool row of the same kind, and a pool row's usage is the sum over the blocks mapped to it. This
scores "the pool row nearest to what the candidates need" rather than the needed block itself,
so it understates what online selection can do where the pool lacks such blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from searchspaces.layers import BlockSpec, decompose

from .features import CONFIG_FIELDS, block_key, config_array, row_config
from .latency import BLOCK_KINDS, LatencyEstimator
from .uncertainty import DEFAULT_MEMBERS, fit_members, member_views

ACQUISITIONS = ("usage", "spread")
CANDIDATE_NETWORKS = 300
LENGTH_SCALE = 0.25
"""Local-penalization length in standard deviations of the candidates' log configuration.
Offline on npu32 and the H200 tables (2 seeds each), 0.25 reached random sampling's accuracy
with about half the blocks on all three; 0.5 and 1.0 needed 62-80%."""
MIN_PER_ROUND = 10
MIN_KIND_ROWS = 8
"""A kind with fewer measured rows is treated as unknown (largest spread): a bootstrap of one
or two rows repeats them, so its members agree and would claim certainty where there is none.
On the H200 a single classifier row made every network 60% off, and an ensemble of that one
row never asked for a second."""

Measure = Callable[[list[BlockSpec]], list[float]]
"""Measures blocks (or reads them from the table) and returns their latencies in ms."""


def round_targets(samples: int, rounds: int) -> list[int]:
    """Cumulative number of blocks measured after each round."""
    if rounds < 1:
        raise ValueError(f"active rounds must be >= 1, got {rounds}")
    if samples < MIN_PER_ROUND * rounds:
        raise ValueError(f"{samples} samples in {rounds} rounds is under {MIN_PER_ROUND} blocks "
                         "a round; use fewer rounds or more --samples")
    return [round(samples * (r + 1) / rounds) for r in range(rounds)]


def fit_ensemble(blocks: Sequence[BlockSpec], latency_ms: Sequence[float], space: str,
                 parallelism_factor: int, members: int = DEFAULT_MEMBERS, seed: int = 0
                 ) -> LatencyEstimator:
    """An estimator of bootstrap members only (its point model is member 0), fitted on the
    given rows with the work prior: what a round needs to rank blocks, without the
    cross-validation of the product fit. Kinds under :data:`MIN_KIND_ROWS` rows are left out."""
    y = np.asarray(latency_ms, dtype=np.float64)
    ensemble = {}
    for kind in BLOCK_KINDS:
        idx = [i for i, b in enumerate(blocks) if b.kind == kind]
        if len(idx) >= MIN_KIND_ROWS:
            ensemble[kind] = fit_members(kind, config_array([blocks[i] for i in idx]), y[idx],
                                         parallelism_factor, prior=True, count=members,
                                         seed=seed)
    return LatencyEstimator(space, parallelism_factor, "", "",
                            {k: m[0] for k, m in ensemble.items()}, members=ensemble)


def block_stats(est: LatencyEstimator, blocks: Sequence[BlockSpec]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Members' geometric-mean latency (ms) and log-spread of each block. A block of a kind the
    ensemble lacks (:data:`MIN_KIND_ROWS`) gets the largest spread seen and the median latency
    of the rest."""
    known = np.array([b.kind in est.members for b in blocks])
    center = np.zeros(len(blocks))
    spread = np.zeros(len(blocks))
    if known.any():
        sub = [b for b, k in zip(blocks, known) if k]
        logs = np.log(np.stack([v.predict_blocks(sub) for v in member_views(est)]))
        center[known] = np.exp(logs.mean(axis=0))
        spread[known] = logs.std(axis=0, ddof=1)
    if not known.all():
        center[~known] = np.median(center[known]) if known.any() else 1.0
        spread[~known] = spread[known].max() if known.any() else 1.0
    return center, spread


def candidate_networks(space: str, parallelism_factor: int, count: int,
                       rng: np.random.Generator) -> list[list[BlockSpec]]:
    """The blocks of ``count`` networks sampled as :func:`estimators.build.sample_blocks`
    samples them (curated and uncurated alternately, random classes and input channels)."""
    from .build import IN_CHANNELS_CHOICES, NUM_CLASSES_CHOICES, _variants

    variants = _variants(space, parallelism_factor)
    return [decompose(variants[i % 2].sample(rng), int(rng.choice(NUM_CLASSES_CHOICES)),
                      int(rng.choice(IN_CHANNELS_CHOICES))) for i in range(count)]


def _unique(networks: list[list[BlockSpec]]) -> tuple[list[BlockSpec], list[np.ndarray]]:
    """Distinct blocks of the networks and, per network, the indices of its blocks."""
    index: dict[tuple, int] = {}
    blocks: list[BlockSpec] = []
    members = []
    for net in networks:
        idx = []
        for b in net:
            key = block_key(b)
            if key not in index:
                index[key] = len(blocks)
                blocks.append(b)
            idx.append(index[key])
        members.append(np.array(idx))
    return blocks, members


def usage(center_ms: np.ndarray, networks: list[np.ndarray]) -> np.ndarray:
    """Each block's summed share of its candidate networks' latency."""
    out = np.zeros(len(center_ms))
    for idx in networks:
        np.add.at(out, idx, center_ms[idx] / center_ms[idx].sum())
    return out


def _log_config(blocks: Sequence[BlockSpec]) -> np.ndarray:
    return np.log1p(config_array(blocks).astype(np.float64))


def pick(blocks: Sequence[BlockSpec], scores: np.ndarray, n: int,
         length_scale: float = LENGTH_SCALE) -> list[int]:
    """Greedy top-``n`` by score with local penalization within each kind (module doc);
    indices with a non-finite or negative score are never picked."""
    scores = np.where(np.isfinite(scores), scores, -1.0).astype(np.float64)
    x = _log_config(blocks)
    kinds = np.array([b.kind for b in blocks])
    for kind in set(kinds.tolist()):
        sel = kinds == kind
        std = x[sel].std(axis=0)
        x[sel] = (x[sel] - x[sel].mean(axis=0)) / np.where(std > 0, std, 1.0)
    chosen: list[int] = []
    for _ in range(min(n, len(blocks))):
        best = int(np.argmax(scores))
        if scores[best] < 0:
            break
        chosen.append(best)
        scores[best] = -1.0
        same = (kinds == kinds[best]) & (scores >= 0)
        d2 = ((x[same] - x[best]) ** 2).sum(axis=1)
        scores[same] *= 1.0 - np.exp(-d2 / (2 * length_scale**2))
    return chosen


def acquisition_scores(spread: np.ndarray, use: np.ndarray, acquisition: str) -> np.ndarray:
    if acquisition == "spread":
        return spread
    if acquisition == "usage":
        return spread * use
    raise ValueError(f"unknown acquisition {acquisition!r}; known: {', '.join(ACQUISITIONS)}")


def choose_next(est: LatencyEstimator, networks: list[list[BlockSpec]], measured: set[tuple],
                n: int, acquisition: str = "usage") -> list[BlockSpec]:
    """The ``n`` unmeasured blocks of the candidate networks to measure next (online)."""
    blocks, nets = _unique(networks)
    center, spread = block_stats(est, blocks)
    scores = acquisition_scores(spread, usage(center, nets), acquisition)
    scores[[block_key(b) in measured for b in blocks]] = -np.inf
    return [blocks[i] for i in pick(blocks, scores, n)]


def nearest_rows(pool: Sequence[BlockSpec], blocks: Sequence[BlockSpec]) -> np.ndarray:
    """Index of each block's nearest pool row of the same kind (standardized log
    configuration; -1 where the pool has no row of that kind)."""
    out = np.full(len(blocks), -1)
    px, bx = _log_config(pool), _log_config(blocks)
    pk, bk = np.array([b.kind for b in pool]), np.array([b.kind for b in blocks])
    for kind in set(bk.tolist()):
        ps, bs = np.flatnonzero(pk == kind), np.flatnonzero(bk == kind)
        if not len(ps):
            continue
        std = px[ps].std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        d2 = (((bx[bs, None, :] - px[None, ps, :]) / scale) ** 2).sum(axis=2)
        out[bs] = ps[d2.argmin(axis=1)]
    return out


def choose_from_pool(est: LatencyEstimator, pool: Sequence[BlockSpec], taken: np.ndarray,
                     networks: list[list[BlockSpec]], n: int, acquisition: str = "usage"
                     ) -> list[int]:
    """The ``n`` untaken pool rows to add next (offline; see the module doc)."""
    blocks, nets = _unique(networks)
    center, _ = block_stats(est, blocks)
    block_use = usage(center, nets)
    near = nearest_rows(pool, blocks)
    pool_use = np.zeros(len(pool))
    np.add.at(pool_use, near[near >= 0], block_use[near >= 0])
    _, spread = block_stats(est, pool)
    scores = acquisition_scores(spread, pool_use, acquisition)
    scores[taken] = -np.inf
    return pick(pool, scores, n)


def active_blocks(space: str, parallelism_factor: int, samples: int, rounds: int, seed: int,
                  measure: Measure, acquisition: str = "usage",
                  members: int = DEFAULT_MEMBERS,
                  progress: Callable[[int, int], None] | None = None) -> list[BlockSpec]:
    """Run the rounds (module doc); ``measure`` is called once a round with that round's
    blocks. Returns every block chosen, in order."""
    from .build import sample_blocks

    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; known: {', '.join(ACQUISITIONS)}")
    targets = round_targets(samples, rounds)
    chosen: list[BlockSpec] = []
    latency: list[float] = []
    for r, target in enumerate(targets):
        if r == 0:
            new = sample_blocks(space, parallelism_factor, target,
                                np.random.default_rng([seed, 0]))
        else:
            est = fit_ensemble(chosen, latency, space, parallelism_factor, members, seed)
            nets = candidate_networks(space, parallelism_factor, CANDIDATE_NETWORKS,
                                      np.random.default_rng([seed, 3, r]))
            new = choose_next(est, nets, {block_key(b) for b in chosen}, target - len(chosen),
                              acquisition)
        latency += measure(new)
        chosen += new
        if progress:
            progress(r + 1, len(targets))
    return chosen


def config_of_rows(rows: Sequence[dict[str, str]]) -> list[BlockSpec]:
    """Blocks of measurement-table rows."""
    return [BlockSpec(f"row{i}", r["kind"], **dict(zip(CONFIG_FIELDS, row_config(r))))
            for i, r in enumerate(rows)]
