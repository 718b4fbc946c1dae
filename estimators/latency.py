"""The learned latency estimator: one LightGBM regressor per block kind, summed over a network.

Method (nn-Meter, Zhang et al., MobiSys 2021; the Amazon Neural Engine NAS work): measure many
blocks on a back end, fit a regressor per block kind, and predict a network as the sum of its
blocks' predictions, optionally corrected by what a few whole networks show about composing them:
either a per-network overhead (``network = a * sum(blocks) + b``) or a per-block fixed cost that a
block timed on its own pays and a network does not (``network = sum(blocks) - n_blocks * c``: on
a GPU every separately timed block pays a graph launch and an idle pipeline, 1-4 us on an H200),
whichever has the lower leave-one-out error, and only where it beats the plain sum
(:func:`fit_overhead`). Each kind's regressor is LightGBM on ``log(latency / prior)``, the prior a
non-negative fit of P-aligned work terms (:func:`estimators.features.work_basis`), or on
``log(latency)`` where cross-validation says the prior does not help (:func:`fit_kind_selected`).

Scoring many architectures of one space is fast because predictions are cached per block and
per *stage* (a stage's latency depends only on the stage genome, its input channels and
resolution, the width multiplier and the channel divisor), so a curated space, which has a finite
set of distinct stages, soon needs no model call at all.

On disk an estimator is a folder: ``manifest.json`` (space, back end, profile, feature schema,
versions, training error, file checksums) and one LightGBM *text* model per kind, gzip-compressed,
plus, optionally, the bootstrap ensemble members of each kind that give prediction intervals
(:mod:`estimators.uncertainty`; an estimator saved without them has no interval). Never pickled.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchspaces.files import atomic_write
from searchspaces.genome import Architecture
from searchspaces.layers import (
    HEAD_BLOCK_KINDS,
    BlockSpec,
    conv_out,
    decompose,
    end_blocks,
    stage_blocks,
)

from . import strict_json
from .features import (
    BASIS,
    CONFIG_FIELDS,
    FEATURES,
    block_key,
    config_array,
    model_features,
    work_basis,
)

FORMAT_VERSION = 2
READ_FORMATS = (1, 2)
"""Format 2 adds ``overhead.per_block_ms``; a format-1 folder reads as ``per_block_ms = 0``, and
an hwnas that knows only format 1 refuses a format-2 folder instead of ignoring its cost."""
MANIFEST = "manifest.json"
BLOCK_KINDS = ("stem", "ibn", "fibn", "conv", "head", "pool", "classifier")
"""The kinds every estimator models: a classifier's blocks."""

LGBM_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 3,
    "min_data_in_bin": 1,
    "feature_fraction": 0.9,
    "lambda_l2": 1e-3,
    "verbosity": -1,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
}
"""The regressor recipe: LightGBM on ``log(latency / prior)``, the prior a non-negative fit of
P-aligned work terms (see :func:`estimators.features.work_basis`). One thread: these fits are
small, and OpenMP threads that spin on a busy 2-core machine made them 50x slower."""
NUM_ROUNDS = 600


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the checksums a manifest records)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class KindModel:
    """``latency = prior * exp(booster(features))`` with ``prior = basis @ weights``, or
    ``prior = 1 ms`` where ``weights`` is ``None`` (the plain log-latency regressor)."""

    kind: str
    weights: tuple[float, ...] | None
    booster: Any  # lightgbm.Booster
    train_rows: int

    def prior_ms(self, basis: np.ndarray) -> np.ndarray:
        if self.weights is None:
            return np.ones(len(basis))
        return np.maximum(basis @ np.asarray(self.weights), 1e-9)

    def predict_ms(self, config: np.ndarray, parallelism_factor: int) -> np.ndarray:
        basis = work_basis(self.kind, config, parallelism_factor)
        base = self.prior_ms(basis)
        x = model_features(self.kind, config, parallelism_factor, basis, base)
        return base * np.exp(self.booster.predict(x, num_threads=1))


def fit_prior(basis: np.ndarray, latency_ms: np.ndarray) -> tuple[float, ...]:
    """Non-negative least squares of ``latency ~ basis @ w`` in *relative* error (rows scaled
    by 1/latency), so small and large blocks weigh alike."""
    from scipy.optimize import nnls

    weights, _ = nnls(basis / latency_ms[:, None], np.ones(len(latency_ms)))
    if not np.any(weights > 0):  # degenerate: a constant prior at the median
        weights = np.zeros(basis.shape[1])
        weights[-1] = float(np.median(latency_ms / np.maximum(basis[:, -1], 1)))
    return tuple(float(w) for w in weights)


def fit_kind(kind: str, config: np.ndarray, latency_ms: np.ndarray, parallelism_factor: int,
             num_rounds: int = NUM_ROUNDS, params: dict[str, Any] | None = None,
             prior: bool = True) -> KindModel:
    """Fit one kind's regressor on measured blocks: the non-negative work prior (unless
    ``prior`` is false), then LightGBM on ``log(latency / prior)`` with all :data:`FEATURES`.

    The prior carries an accelerator's near-analytic cost to unseen shapes; on a GPU, where
    latency is far from proportional to work, boosting straight on ``log(latency)`` can
    generalise better. :func:`estimators.build.fit_from_tables` picks per kind by
    cross-validation."""
    import lightgbm as lgb

    latency_ms = np.asarray(latency_ms, dtype=np.float64)
    if len(latency_ms) == 0:
        raise ValueError(f"no measurements of block kind {kind!r} to fit")
    if np.any(~np.isfinite(latency_ms)) or np.any(latency_ms <= 0):
        raise ValueError(f"measurements of {kind!r} must be positive and finite")
    basis = work_basis(kind, config, parallelism_factor)
    weights = fit_prior(basis, latency_ms) if prior else None
    base = KindModel(kind, weights, None, 0).prior_ms(basis)
    x = model_features(kind, config, parallelism_factor, basis, base)
    data = lgb.Dataset(x, np.log(latency_ms / base), feature_name=list(FEATURES),
                       params={"verbosity": -1}, free_raw_data=False)
    # keep_training_booster: the booster as trained, not a copy through its text form (that
    # round trip was a fifth of a shipped estimator's refit; the predictions are the same)
    booster = lgb.train(params or LGBM_PARAMS, data, num_boost_round=num_rounds,
                        keep_training_booster=True)
    return KindModel(kind, weights, booster, len(latency_ms))


def cv_error(kind: str, config: np.ndarray, y: np.ndarray, p: int, folds: int,
             prior: bool = True, params: dict[str, Any] | None = None
             ) -> dict[str, float | None]:
    """k-fold cross-validated relative error of one kind's regressor (with or without the
    work prior); the figures are ``None`` when there are fewer than ``2 * folds`` rows."""
    n = len(y)
    if n < 2 * folds:  # too few rows to tell: no figure (JSON null), not NaN
        return {"rows": n, "mape": None, "within_5pct": None, "within_10pct": None}
    order = np.random.default_rng(0).permutation(n)
    pred = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        model = fit_kind(kind, config[train], y[train], p, prior=prior, params=params)
        pred[test] = model.predict_ms(config[test], p)
    rel = np.abs(pred - y) / y
    return {"rows": n, "mape": float(rel.mean() * 100), "within_5pct": float((rel <= 0.05).mean()),
            "within_10pct": float((rel <= 0.10).mean())}


def fit_kind_selected(kind: str, config: np.ndarray, latency_ms: np.ndarray,
                      parallelism_factor: int, folds: int = 5,
                      params: dict[str, Any] | None = None, prior: bool | None = None
                      ) -> tuple[KindModel, dict]:
    """The product recipe: :func:`fit_kind` with or without the work prior, whichever has the
    lower k-fold cross-validated MAPE (with the prior when there are too few rows to tell).
    Returns the model and its cross-validated error. ``prior`` forces the choice and ``params``
    replaces :data:`LGBM_PARAMS` (for ablations)."""
    y = np.asarray(latency_ms, dtype=np.float64)
    p = parallelism_factor
    with_prior, without = (cv_error(kind, config, y, p, folds, use, params)
                           if prior in (None, use) else None for use in (True, False))
    report = select_prior(with_prior, without, prior)
    return fit_kind(kind, config, y, p, prior=report["prior"], params=params), report


def select_prior(with_prior: dict | None, without: dict | None, prior: bool | None = None
                 ) -> dict:
    """The choice :func:`fit_kind_selected` makes from the two :func:`cv_error` figures (one
    is ``None`` where ``prior`` forces it): its report, with ``prior`` the choice."""
    if prior is None:
        prior = with_prior["mape"] is None or not without["mape"] < with_prior["mape"]
    chosen, other = (with_prior, without) if prior else (without, with_prior)
    return {**chosen, "prior": prior, "mape_other": None if other is None else other["mape"]}


@dataclass
class LatencyEstimator:
    """Predicts network latency in ms as the sum of per-block predictions (see module doc)."""

    space: str
    parallelism_factor: int
    backend: str
    profile: str
    models: dict[str, KindModel]
    overhead: tuple[float, float] = (1.0, 0.0)
    per_block_ms: float = 0.0
    """Fixed cost of a block timed on its own that it does not pay inside a network; subtracted
    from every block prediction, so a network's blocks still sum to its latency."""
    meta: dict[str, Any] = field(default_factory=dict)
    members: dict[str, tuple[KindModel, ...]] = field(default_factory=dict)
    """Bootstrap ensemble per kind (same count for every kind), or empty: no interval."""
    interval_floor: float = 0.0
    """Log-latency error the ensemble cannot see, added to its spread (:mod:`.uncertainty`)."""
    _blocks: dict[tuple, float] = field(default_factory=dict, repr=False)
    _stages: dict[tuple, float] = field(default_factory=dict, repr=False)
    _member_views: list[LatencyEstimator] = field(default_factory=list, repr=False)

    # -- prediction --------------------------------------------------------------------------
    def predict_blocks(self, blocks: Sequence[BlockSpec]) -> np.ndarray:
        """Latency in ms of each block inside a network: the model's prediction for the block
        timed on its own, less :attr:`per_block_ms` (cached; one batched model call per kind for
        the misses)."""
        keys = [block_key(b) for b in blocks]
        missing: dict[str, dict[tuple, BlockSpec]] = {}
        for key, block in zip(keys, blocks):
            if key not in self._blocks:
                missing.setdefault(block.kind, {})[key] = block
        for kind, todo in missing.items():
            model = self.models.get(kind)
            if model is None:
                hint = ("; rebuild it with 'hwnas estimator build --head'"
                        if kind in HEAD_BLOCK_KINDS else "")
                raise ValueError(f"estimator has no model for block kind {kind!r}; it knows "
                                 f"{', '.join(self.models)}{hint}")
            pred = model.predict_ms(config_array(list(todo.values())), self.parallelism_factor)
            self._blocks.update(zip(todo.keys(), pred.tolist()))
        return np.array([self._blocks[k] for k in keys], dtype=np.float64) - self.per_block_ms

    # Cache keys. A stage's latency is determined by its genome, the *base* channels of the
    # stage before it (with the width multiplier and divisor they fix its input channels) and
    # its input resolution; the ends (stem, head, pool, classifier) by the remaining fields.
    # A detection or segmentation head reads feature maps from inside the network, so its ends
    # are keyed (and resolved by decompose) per architecture.
    @staticmethod
    def _ends_key(arch: Architecture, prev: int, res: int, num_classes: int,
                  in_channels: int) -> tuple:
        if arch.head_kind != "head":
            return ("tail", arch.to_string(), num_classes, in_channels)
        return (arch.resolution, arch.stem_channels, arch.stem_stride, prev, res,
                arch.head_channels, arch.width_mult, arch.channel_divisor, num_classes,
                in_channels)

    def _fill_stages(self, archs: Sequence[Architecture], num_classes: int,
                     in_channels: int) -> None:
        """Predict every stage and the ends of ``archs`` not in the cache, in one batch."""
        todo: dict[tuple, list[BlockSpec]] = {}
        stages = self._stages
        for arch in archs:
            w, d = arch.width_mult, arch.channel_divisor
            res = conv_out(arch.resolution, arch.stem_stride)
            prev, cin = arch.stem_channels, arch.scaled_stem
            for stage in arch.stages:
                key = (stage, prev, res, w, d)
                cout = arch.scaled(stage.channels)
                if key not in stages and key not in todo:
                    todo[key] = stage_blocks(stage, cin, cout, res)
                prev, cin, res = stage.channels, cout, conv_out(res, stage.stride)
            ends = self._ends_key(arch, prev, res, num_classes, in_channels)
            if ends not in stages and ends not in todo:
                if arch.head_kind == "head":
                    stem, tail = end_blocks(arch, cin, res, num_classes, in_channels)
                else:
                    stem, *rest = decompose(arch, num_classes, in_channels)
                    tail = rest[arch.num_blocks:]
                todo[ends] = [stem, *tail]
        if not todo:
            return
        flat = [b for group in todo.values() for b in group]
        pred = self.predict_blocks(flat)
        start = 0
        for key, group in todo.items():
            stages[key] = float(pred[start:start + len(group)].sum())
            start += len(group)

    def predict_many(self, archs: Iterable[Architecture | str], num_classes: int = 1000,
                     in_channels: int = 3) -> np.ndarray:
        """Latency in ms of each architecture (batched and cached)."""
        archs = [Architecture.from_string(a) if isinstance(a, str) else a for a in archs]
        out = np.empty(len(archs), dtype=np.float64)
        misses = self._sum_cached(archs, range(len(archs)), out, num_classes, in_channels)
        if misses:
            self._fill_stages([archs[i] for i in misses], num_classes, in_channels)
            self._sum_cached(archs, misses, out, num_classes, in_channels)
        scale, offset = self.overhead
        return out * scale + offset if (scale, offset) != (1.0, 0.0) else out

    def _sum_cached(self, archs: list[Architecture], indices: Iterable[int], out: np.ndarray,
                    num_classes: int, in_channels: int) -> list[int]:
        """Sum cached stage latencies into ``out``; returns the indices with a cache miss."""
        stages = self._stages
        misses = []
        for i in indices:
            arch = archs[i]
            w, d, s = arch.width_mult, arch.channel_divisor, arch.stem_stride
            res = (arch.resolution + s - 1) // s
            prev = arch.stem_channels
            total = 0.0
            try:
                for stage in arch.stages:
                    total += stages[(stage, prev, res, w, d)]
                    prev, s = stage.channels, stage.stride
                    res = (res + s - 1) // s
                total += stages[self._ends_key(arch, prev, res, num_classes, in_channels)]
            except KeyError:
                misses.append(i)
                continue
            out[i] = total
        return misses

    def predict(self, arch: Architecture | str, num_classes: int = 1000,
                in_channels: int = 3) -> float:
        return float(self.predict_many([arch], num_classes, in_channels)[0])

    @property
    def has_interval(self) -> bool:
        return bool(self.members)

    def predict_interval(self, archs: Iterable[Architecture | str], num_classes: int = 1000,
                         in_channels: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p10, p50, p90)`` latency in ms of each architecture, ``p50`` the point prediction
        (batched and cached like :meth:`predict_many`); ``ValueError`` without members."""
        from .uncertainty import predict_interval

        return predict_interval(self, archs, num_classes, in_channels)

    def breakdown(self, arch: Architecture, num_classes: int = 1000, in_channels: int = 3
                  ) -> list[tuple[BlockSpec, float]]:
        """Per-block predictions (before the per-network overhead correction)."""
        blocks = decompose(arch, num_classes, in_channels)
        return list(zip(blocks, self.predict_blocks(blocks).tolist()))

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the models and ``manifest.json`` (last, atomically) into ``folder``."""
        import lightgbm as lgb

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {kind: _save_model(folder, f"model_{kind}.txt.gz", model)
                 for kind, model in self.models.items()}
        members = {kind: [_save_model(folder, f"member_{kind}_{i}.txt.gz", m)
                          for i, m in enumerate(models)]
                   for kind, models in self.members.items()}
        interval = ({"members": members, "floor_log_sd": self.interval_floor} if members
                    else None)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "hwnas-latency-estimator",
            "space": self.space,
            "parallelism_factor": self.parallelism_factor,
            "backend": self.backend,
            "profile": self.profile,
            "features": list(FEATURES),
            "config_fields": list(CONFIG_FIELDS),
            "target": "log(latency_ms / prior_ms)",
            "models": files,
            "overhead": {"scale": self.overhead[0], "offset_ms": self.overhead[1],
                         "per_block_ms": self.per_block_ms},
            "interval": interval,
            "lightgbm_params": LGBM_PARAMS,
            "versions": {"lightgbm": lgb.__version__, "numpy": np.__version__},
            **self.meta,
            **(extra or {}),
        }
        atomic_write(folder / MANIFEST, (strict_json.dumps(manifest, indent=2) + "\n").encode())
        self.meta = _meta(manifest)
        return folder

    @classmethod
    def load(cls, folder: str | Path, space: str | None = None,
             parallelism_factor: int | None = None, backend: str | None = None,
             profile: str | None = None, intervals: bool = True) -> LatencyEstimator:
        """Load and check an estimator folder; one-line ``ValueError`` for a missing or damaged
        manifest, a damaged model file, or an estimator built for another space / back end.

        ``intervals=False`` leaves the bootstrap members out (no :meth:`predict_interval`):
        point predictions are the same, and loading takes an eighth of the time (8 members per
        kind), which is what a search, pricing candidates in every trial worker, wants."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        checks = (("space", "space", space),
                  ("parallelism_factor", "parallelism factor", parallelism_factor),
                  ("backend", "back end", backend), ("profile", "profile", profile))
        for key, label, wanted in checks:
            if wanted is not None and manifest[key] != wanted:
                raise ValueError(
                    f"estimator {folder} was built for {label} "
                    f"{manifest[key]!r}, not {wanted!r} (space {manifest['space']}, "
                    f"P={manifest['parallelism_factor']}, profile {manifest['profile']})")
        models = {kind: _load_model(folder, kind, entry)
                  for kind, entry in manifest["models"].items()}
        interval = manifest.get("interval") or {"members": {}, "floor_log_sd": 0.0}
        members = {kind: tuple(_load_model(folder, kind, e) for e in entries)
                   for kind, entries in interval["members"].items()} if intervals else {}
        if members and (set(members) != set(models)
                        or len({len(m) for m in members.values()}) != 1):
            raise ValueError(f"damaged estimator manifest {folder / MANIFEST}: the ensemble "
                             "needs the same number of members for every kind")
        overhead = manifest["overhead"]
        return cls(
            space=manifest["space"],
            parallelism_factor=manifest["parallelism_factor"],
            backend=manifest["backend"],
            profile=manifest["profile"],
            models=models,
            overhead=(float(overhead["scale"]), float(overhead["offset_ms"])),
            per_block_ms=float(overhead.get("per_block_ms", 0.0)),
            meta=_meta(manifest),
            members=members,
            interval_floor=float(interval["floor_log_sd"]),
        )


def _save_model(folder: Path, name: str, model: KindModel) -> dict[str, Any]:
    """Write one model as gzipped LightGBM text; its manifest entry. (gzip level 6: half the
    time of the default 9 for files 1.6% larger; an estimator saves up to a hundred models.)"""
    text = model.booster.model_to_string().encode()
    atomic_write(folder / name, gzip.compress(text, compresslevel=6, mtime=0))
    return {"file": name, "sha256": file_sha256(folder / name), "train_rows": model.train_rows,
            "prior_weights": (None if model.weights is None
                              else dict(zip(BASIS, model.weights)))}


def _load_model(folder: Path, kind: str, entry: dict[str, Any]) -> KindModel:
    """One model of a manifest entry, its checksum checked."""
    import lightgbm as lgb

    file = folder / entry["file"]
    if not file.is_file():
        raise ValueError(f"estimator {folder} lacks its model file {entry['file']}")
    if file_sha256(file) != entry["sha256"]:
        raise ValueError(f"estimator model file {file} is damaged (checksum mismatch)")
    booster = lgb.Booster(model_str=gzip.decompress(file.read_bytes()).decode())
    raw = entry.get("prior_weights")
    weights = None if raw is None else tuple(float(raw[b]) for b in BASIS)
    return KindModel(kind, weights, booster, entry.get("train_rows", 0))


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of an estimator folder, without loading its models;
    one-line ``ValueError`` when it is missing, damaged or of another format."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"{folder} is not an estimator folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"damaged estimator manifest {path}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "hwnas-latency-estimator":
        raise ValueError(f"{path} is not an hwnas latency-estimator manifest")
    missing = [k for k in _CORE_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"damaged estimator manifest {path}: lacks {', '.join(missing)}")
    if manifest["format_version"] not in READ_FORMATS:
        raise ValueError(f"estimator {folder} has format {manifest['format_version']}; this "
                         f"hwnas reads formats {', '.join(map(str, READ_FORMATS))}")
    if manifest["features"] != list(FEATURES):
        raise ValueError(f"estimator {folder} uses another feature schema; rebuild it")
    return manifest


def _meta(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a manifest holds besides the estimator itself (kept and rewritten by ``save``)."""
    return {k: v for k, v in manifest.items() if k not in _CORE_KEYS and k != "interval"}


_CORE_KEYS = ("format_version", "kind", "space", "parallelism_factor", "backend", "profile",
              "features", "config_fields", "target", "models", "overhead")


COMPOSITION_MARGIN = 0.1
"""A composition is kept only if its leave-one-out MAPE is at least this fraction below the plain
sum's: on 16 networks a smaller gain is noise. (On ZigZag npu32 a per-block cost 8% better by
leave-one-out doubled the held-out error, 0.74% -> 1.34%; on an H200 at batch 1 it is 83%
better and cuts the held-out error from 2.6% to 2.1%.)"""


def fit_overhead(block_sums: np.ndarray, measured: np.ndarray, n_blocks: np.ndarray
                 ) -> tuple[tuple[float, float], float, dict]:
    """How whole networks compose from their blocks, from a few measured networks.

    Two forms are fitted, each in relative error: a per-network overhead
    ``measured ~ a * block_sum + b`` (least squares), and a per-block fixed cost
    ``measured ~ block_sum - c * n_blocks`` (one parameter, so sturdier on few networks). The
    form with the lower leave-one-out MAPE is kept if it beats the plain sum of blocks by
    :data:`COMPOSITION_MARGIN`.

    Returns ``(scale, offset)``, the per-block cost in ms and a report of the three MAPEs.
    """
    x, y = np.asarray(block_sums, float), np.asarray(measured, float)
    k = np.asarray(n_blocks, float)
    n = len(x)
    if n < 4:
        return (1.0, 0.0), 0.0, {"networks": n, "used": False, "form": "sum",
                                 "reason": "fewer than 4 networks"}

    def affine(i: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(np.column_stack([x[i], np.ones(len(i))]) / y[i, None],
                               np.ones(len(i)), rcond=None)[0]

    def per_block(i: np.ndarray) -> float:
        return float(np.sum((x[i] - y[i]) * k[i] / y[i] ** 2) / np.sum(k[i] ** 2 / y[i] ** 2))

    loo_affine, loo_block = [], []
    for i in range(n):
        keep = np.flatnonzero(np.arange(n) != i)
        a, b = affine(keep)
        loo_affine.append(abs(a * x[i] + b - y[i]) / y[i])
        loo_block.append(abs(x[i] - per_block(keep) * k[i] - y[i]) / y[i])
    mape = {"sum": float(np.mean(np.abs(x - y) / y)), "scale_offset": float(np.mean(loo_affine)),
            "per_block": float(np.mean(loo_block))}
    a, b = (float(v) for v in affine(np.arange(n)))
    c = per_block(np.arange(n))
    if not (a > 0 and math.isfinite(a)):
        mape["scale_offset"] = math.inf
    form = min(mape, key=lambda f: (mape[f], f != "sum"))
    if mape[form] > (1 - COMPOSITION_MARGIN) * mape["sum"]:
        form = "sum"
    report = {"networks": n, "mape_sum_of_blocks": mape["sum"],
              "mape_loo_with_overhead": mape["scale_offset"],
              "mape_loo_per_block": mape["per_block"], "form": form, "used": form != "sum",
              "scale": a, "offset_ms": b, "per_block_ms": c}
    if form == "scale_offset":
        return (a, b), 0.0, report
    return (1.0, 0.0), (c if form == "per_block" else 0.0), report


SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def list_shipped() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED_DIR.glob(f"*/{MANIFEST}"))


def resolve_estimator(ref: str | Path) -> Path:
    """An estimator folder by path, or a shipped estimator by name (``npu32-mbv2``)."""
    path = Path(ref)
    if path.is_dir():
        return path
    shipped = SHIPPED_DIR / str(ref)
    if shipped.is_dir():
        return shipped
    raise ValueError(f"no estimator folder {str(ref)!r}; shipped estimators: "
                     f"{', '.join(list_shipped()) or 'none'}")


def load_estimator(ref: LatencyEstimator | str | Path) -> tuple[LatencyEstimator, str]:
    """The estimator ``ref`` names and a label for reports: ``ref`` is a loaded estimator
    (labelled ``profile-space``, as the shipped ones are named), a shipped estimator's name
    (labelled by that name) or a folder (labelled by its path)."""
    if isinstance(ref, LatencyEstimator):
        return ref, f"{ref.profile}-{ref.space}"
    if not isinstance(ref, (str, Path)):
        raise ValueError(f"estimator must be a LatencyEstimator or a folder/shipped name, got "
                         f"{type(ref).__name__}")
    folder = resolve_estimator(ref)
    shipped = folder.resolve().parent == SHIPPED_DIR
    return LatencyEstimator.load(folder), folder.name if shipped else str(folder)
