"""Check hwnas's latency-estimator recipe against block latencies measured by others.

Data: the TF-NAS per-block tables (``benchmarks/data/``, see its README): MobileNetV2 inverted
bottleneck blocks on an Intel Xeon 6130 (batch 1) and a Titan RTX (batch 32). Only the measured
rows are used, and the train/test split is *by block key*: every test block shape is unseen in
training, so the score says how well a recipe generalises to new shapes, not how well it
interpolates along the middle width.

Models, per device and seed:

- (a) a FLOPs-only linear fit ``ms ~ a * MACs + b`` (the baseline);
- (b) hwnas's recipe, unchanged: :func:`estimators.latency.fit_kind_selected` with kind
  ``ibn`` (work prior kept or dropped by cross-validation, as the build does), each table row
  mapped to our block config (``expansion = max(1, round(mid / cin))``, the real
  ``mid``) at parallelism factor 8;
- (c) the same recipe with the table-only columns SE width and activation appended to our feature
  matrix. Fitted here, product code unchanged: :func:`hwnas_plus` repeats ``fit_kind``'s steps
  (work prior, ``model_features``, ``LGBM_PARAMS`` / ``NUM_ROUNDS``), so it must follow any
  change to ``fit_kind``; with no extra column it reproduces (b) with the prior kept.

``--ablate`` adds diagnostic variants of (b) and (c). The reference figures quoted from the
shared data README are printed beside ours.

Run from the repository root: ``python benchmarks/estimator_lut_check.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.lut_data import DEVICES, load_lut  # noqa: E402
from estimators.features import FEATURES, block_features, model_features, work_basis  # noqa: E402
from estimators.latency import (  # noqa: E402
    LGBM_PARAMS,
    NUM_ROUNDS,
    fit_kind_selected,
    fit_prior,
)

PARALLELISM_FACTOR = 8
KIND = "ibn"

REFERENCE: dict[str, list[tuple[str, float, float]]] = {
    "cpu": [
        ("FLOPs-only linear fit", 0.17, 24.0),
        ("nn-Meter random forest [res,cin,cout,mid,k,s,FLOPs,params]", 0.46, 15.0),
        ("LightGBM on log(ms), same features", 0.54, 12.0),
        ("LightGBM + SE width, activation, output res, mid/cin", 0.74, 6.6),
    ],
    "gpu": [
        ("FLOPs-only linear fit", 0.16, 37.0),
        ("nn-Meter random forest [res,cin,cout,mid,k,s,FLOPs,params]", 0.80, 7.2),
        ("LightGBM on log(ms), same features", 0.87, 4.8),
        ("LightGBM + SE width, activation, output res, mid/cin", 0.99, 2.1),
    ],
}
"""(model, within +-10%, MAPE %) on measured rows, block-key split, 5 seeds, as quoted in the
shared data README (section ``luts/``); figures from that README, not computed here."""


# -- block mapping and features ---------------------------------------------------------------

def hwnas_config(frame: pd.DataFrame, expand_if_wider: bool = False) -> np.ndarray:
    """Table rows as hwnas ``CONFIG_FIELDS`` rows ``(cin, cout, mid, kernel, stride, in_res,
    expansion)``. ``expansion = max(1, round(mid / cin))``; with ``expand_if_wider`` it is 1
    exactly when ``mid == cin`` (TF-NAS builds the 1x1 expansion conv iff ``mid > cin``)."""
    cin, mid = frame["cin"].to_numpy(), frame["mid"].to_numpy()
    expansion = np.maximum(1, np.round(mid / cin))
    if expand_if_wider:
        expansion = np.where(mid > cin, np.maximum(2, expansion), 1)
    columns = [cin, frame["cout"], mid, frame["kernel"], frame["stride"], frame["res"], expansion]
    return np.column_stack([np.asarray(c) for c in columns]).astype(np.int64)


def tfnas_macs(frame: pd.DataFrame) -> np.ndarray:
    """Multiply-accumulates of a TF-NAS block: 1x1 expansion (iff mid > cin), depthwise k x k,
    squeeze-excitation (two 1x1 on the pooled vector) and 1x1 projection."""
    res, cin, mid = (frame[c].to_numpy(np.float64) for c in ("res", "cin", "mid"))
    cout, k, s, se = (frame[c].to_numpy(np.float64) for c in ("cout", "kernel", "stride", "se"))
    out = np.ceil(res / s)
    expand = np.where(mid > cin, res * res * cin * mid, 0.0)
    return expand + out * out * mid * k * k + 2 * mid * se + out * out * mid * cout


EXTRA_COLUMNS: dict[str, Callable[[pd.DataFrame, Sequence[str]], np.ndarray]] = {
    "se": lambda f, acts: f["se"].to_numpy(np.float64),
    "act": lambda f, acts: f["act"].map({a: i for i, a in enumerate(acts)}).to_numpy(np.float64),
    "mid/cin": lambda f, acts: f["mid"].to_numpy(np.float64) / f["cin"].to_numpy(np.float64),
}
"""Columns not in hwnas's feature set. ``act`` is coded by its index in the table's sorted
activation names."""


def extra_matrix(frame: pd.DataFrame, names: Sequence[str], acts: Sequence[str]) -> np.ndarray:
    return np.column_stack([EXTRA_COLUMNS[n](frame, acts) for n in names])


def tfnas_params(frame: pd.DataFrame) -> np.ndarray:
    """Weights of a TF-NAS block (convolutions and SE, no batch norm)."""
    cin, mid, cout, k, se = (frame[c].to_numpy(np.float64)
                             for c in ("cin", "mid", "cout", "kernel", "se"))
    return np.where(mid > cin, cin * mid, 0.0) + mid * k * k + 2 * mid * se + mid * cout


def readme_features(frame: pd.DataFrame, acts: Sequence[str], extended: bool) -> np.ndarray:
    """The shared README's feature sets: nn-Meter's [res, cin, cout, mid, k, s, FLOPs, params];
    ``extended`` appends SE width, activation, output res and mid/cin."""
    cols = [frame[c].to_numpy(np.float64) for c in ("res", "cin", "cout", "mid", "kernel",
                                                     "stride")]
    cols += [tfnas_macs(frame), tfnas_params(frame)]
    if extended:
        out_res = np.ceil(frame["res"].to_numpy(np.float64) / frame["stride"].to_numpy())
        cols += [extra_matrix(frame, ["se", "act"], acts), out_res,
                 EXTRA_COLUMNS["mid/cin"](frame, acts)]
    return np.column_stack(cols)


# -- models: (train, test, activations) -> predicted ms on test --------------------------------

Fitter = Callable[[pd.DataFrame, pd.DataFrame, Sequence[str]], np.ndarray]


def flops_linear(train: pd.DataFrame, test: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
    slope, offset = np.polyfit(tfnas_macs(train), train["ms"].to_numpy(), 1)
    return np.maximum(slope * tfnas_macs(test) + offset, 1e-6)


def hwnas_recipe(expand_if_wider: bool = False) -> Fitter:
    """(b): the product's ``fit_kind_selected`` (work prior or not, chosen by 5-fold CV on the
    training blocks, as ``hwnas estimator build`` does) / ``KindModel.predict_ms``, untouched."""
    def fit(train: pd.DataFrame, test: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
        model, _ = fit_kind_selected(KIND, hwnas_config(train, expand_if_wider),
                                     train["ms"].to_numpy(), PARALLELISM_FACTOR)
        return model.predict_ms(hwnas_config(test, expand_if_wider), PARALLELISM_FACTOR)
    return fit


def _recipe_inputs(frame: pd.DataFrame, weights: Sequence[float] | None, extras: Sequence[str],
                   acts: Sequence[str], expand_if_wider: bool
                   ) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(features with extras appended, prior ms, prior weights) as ``fit_kind`` builds them."""
    config = hwnas_config(frame, expand_if_wider)
    basis = work_basis(KIND, config, PARALLELISM_FACTOR)
    if weights is None:
        weights = fit_prior(basis, frame["ms"].to_numpy(np.float64))
    base = np.maximum(basis @ np.asarray(weights), 1e-9)
    x = model_features(KIND, config, PARALLELISM_FACTOR, basis, base)
    if extras:
        x = np.column_stack([x, extra_matrix(frame, extras, acts)])
    return x, base, tuple(weights)


def hwnas_plus(extras: Sequence[str], expand_if_wider: bool = False) -> Fitter:
    """(c): ``fit_kind``'s recipe (work prior, then LightGBM with ``LGBM_PARAMS`` for
    ``NUM_ROUNDS`` on ``log(ms / prior)``) with ``extras`` appended to the feature matrix."""
    def fit(train: pd.DataFrame, test: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
        import lightgbm as lgb

        x, base, weights = _recipe_inputs(train, None, extras, acts, expand_if_wider)
        names = [*FEATURES, *(f"extra_{n.replace('/', '_per_')}" for n in extras)]
        data = lgb.Dataset(x, np.log(train["ms"].to_numpy() / base), feature_name=names,
                           params={"verbosity": -1}, free_raw_data=False)
        booster = lgb.train(LGBM_PARAMS, data, num_boost_round=NUM_ROUNDS)
        x_test, base_test, _ = _recipe_inputs(test, weights, extras, acts, expand_if_wider)
        return base_test * np.exp(booster.predict(x_test, num_threads=1))
    return fit


def no_prior(extras: Sequence[str]) -> Fitter:
    """Our configuration features (``block_features``) plus ``extras``, LightGBM straight on
    ``log(ms)`` without the work prior: separates the prior's effect from the features'."""
    def matrix(frame: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
        x = block_features(KIND, hwnas_config(frame), PARALLELISM_FACTOR)
        return np.column_stack([x, extra_matrix(frame, extras, acts)]) if extras else x

    def fit(train: pd.DataFrame, test: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
        import lightgbm as lgb

        data = lgb.Dataset(matrix(train, acts), np.log(train["ms"].to_numpy()),
                           params={"verbosity": -1}, free_raw_data=False)
        booster = lgb.train(LGBM_PARAMS, data, num_boost_round=NUM_ROUNDS)
        return np.exp(booster.predict(matrix(test, acts), num_threads=1))
    return fit


def readme_lightgbm(extended: bool) -> Fitter:
    """LightGBM on ``log(ms)`` with the README's features (our ``LGBM_PARAMS`` / ``NUM_ROUNDS``),
    to tell a difference of features from a difference of split or protocol."""
    def fit(train: pd.DataFrame, test: pd.DataFrame, acts: Sequence[str]) -> np.ndarray:
        import lightgbm as lgb

        data = lgb.Dataset(readme_features(train, acts, extended), np.log(train["ms"].to_numpy()),
                           params={"verbosity": -1}, free_raw_data=False)
        booster = lgb.train(LGBM_PARAMS, data, num_boost_round=NUM_ROUNDS)
        return np.exp(booster.predict(readme_features(test, acts, extended), num_threads=1))
    return fit


def se_free(frame: pd.DataFrame) -> np.ndarray:
    return frame["se"].to_numpy() == 0


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    fit: Fitter
    rows: Callable[[pd.DataFrame], np.ndarray] | None = None
    """Optional row filter applied to both train and test (scores then cover those rows)."""
    diagnostic: bool = False


def _diagnostic(key: str, label: str, fit: Fitter,
                rows: Callable[[pd.DataFrame], np.ndarray] | None = None) -> Model:
    return Model(key, label, fit, rows, diagnostic=True)


def models(ablate: bool) -> list[Model]:
    core = [
        Model("flops_linear", "(a) FLOPs-only linear fit", flops_linear),
        Model("hwnas", f"(b) hwnas recipe: fit_kind_selected('ibn'), P={PARALLELISM_FACTOR}",
              hwnas_recipe()),
        Model("hwnas_se_act", "(c) (b) + SE width, activation", hwnas_plus(["se", "act"])),
    ]
    if not ablate:
        return core
    return core + [
        _diagnostic("hwnas_expand_if_wider", "(b), expansion 1 iff mid == cin",
                    hwnas_recipe(expand_if_wider=True)),
        _diagnostic("hwnas_se", "(b) + SE width", hwnas_plus(["se"])),
        _diagnostic("hwnas_act", "(b) + activation", hwnas_plus(["act"])),
        _diagnostic("hwnas_ratio", "(b) + mid/cin", hwnas_plus(["mid/cin"])),
        _diagnostic("hwnas_se_act_ratio", "(b) + SE width, activation, mid/cin",
                    hwnas_plus(["se", "act", "mid/cin"])),
        _diagnostic("hwnas_se_act_expand_if_wider", "(c), expansion 1 iff mid == cin",
                    hwnas_plus(["se", "act"], expand_if_wider=True)),
        _diagnostic("hwnas_se_free", "(b) on SE-free blocks only (train and test)",
                    hwnas_recipe(), se_free),
        _diagnostic("no_prior_se_free", "(b) features without work prior, SE-free",
                    no_prior([]), se_free),
        _diagnostic("no_prior_se_act", "(c) features without work prior", no_prior(["se", "act"])),
        _diagnostic("readme_lgbm_se_free", "README-style LightGBM, nn-Meter features, SE-free",
                    readme_lightgbm(False), se_free),
        _diagnostic("readme_lgbm", "README-style LightGBM, nn-Meter features",
                    readme_lightgbm(False)),
        _diagnostic("readme_lgbm_extended", "README-style LightGBM + SE, act, out res, mid/cin",
                    readme_lightgbm(True)),
    ]


# -- evaluation ---------------------------------------------------------------------------------

def test_mask(blocks: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Rows whose block key falls in the seed's random ``test_fraction`` of distinct keys."""
    keys = np.array(sorted(set(blocks.tolist())))
    n_test = min(len(keys) - 1, max(1, round(test_fraction * len(keys))))
    test_keys = np.random.default_rng(seed).permutation(keys)[:n_test]
    return np.isin(blocks, test_keys)


def scores(pred_ms: np.ndarray, true_ms: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred_ms / true_ms - 1.0)
    return {"within10": float(np.mean(rel <= 0.10)), "within5": float(np.mean(rel <= 0.05)),
            "mape": float(np.mean(rel))}


def summarise(per_seed: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean, min and max over seeds of each metric (``None`` where no seed had rows)."""
    out: dict[str, dict[str, Any]] = {}
    for metric in ("within10", "within5", "mape"):
        values = [s[metric] for s in per_seed]
        stats = (np.mean, np.min, np.max)
        mean, low, high = (float(f(values)) if values else None for f in stats)
        out[metric] = {"mean": mean, "min": low, "max": high, "per_seed": values}
    return out


def evaluate_device(device: str, seeds: int, test_fraction: float, ablate: bool,
                    log: Callable[[str], None]) -> dict[str, Any]:
    frame = load_lut(device)
    blocks = frame["block"].to_numpy(dtype=str)
    acts = sorted(frame["act"].unique().tolist())
    runs = models(ablate)
    per_seed: dict[str, list[dict[str, float]]] = {m.key: [] for m in runs}
    n_test_blocks = []
    for seed in range(seeds):
        mask = test_mask(blocks, test_fraction, seed)
        train, test = frame[~mask], frame[mask]
        n_test_blocks.append(int(test["block"].nunique()))
        for model in runs:
            start = time.perf_counter()
            fit_rows, test_rows = train, test
            if model.rows is not None:
                fit_rows, test_rows = train[model.rows(train)], test[model.rows(test)]
            if len(test_rows) == 0 or len(fit_rows) == 0:
                log(f"[{device} seed {seed + 1}/{seeds}] {model.label}: no rows, skipped")
                continue
            pred = model.fit(fit_rows, test_rows, acts)
            per_seed[model.key].append(scores(pred, test_rows["ms"].to_numpy()))
            log(f"[{device} seed {seed + 1}/{seeds}] {model.label}: "
                f"MAPE {per_seed[model.key][-1]['mape']:.1%} "
                f"({time.perf_counter() - start:.1f} s)")
    return {
        "hardware": DEVICES[device], "rows": len(frame), "blocks": int(frame["block"].nunique()),
        "test_blocks_per_seed": n_test_blocks,
        "models": {m.key: {"label": m.label, "diagnostic": m.diagnostic,
                           **summarise(per_seed[m.key])} for m in runs},
        "reference": [{"model": name, "within10": w10, "mape_percent": mape}
                      for name, w10, mape in REFERENCE[device]],
    }


# -- report -------------------------------------------------------------------------------------

def _cell(stat: dict[str, Any], percent: bool) -> str:
    if stat["mean"] is None:
        return "n/a"
    if percent:
        return f"{stat['mean']:.1%} ({stat['min']:.1%}-{stat['max']:.1%})"
    return f"{stat['mean']:.2f} ({stat['min']:.2f}-{stat['max']:.2f})"


def format_device(device: str, result: dict[str, Any], seeds: int) -> str:
    width = 62
    tests = result["test_blocks_per_seed"]
    lines = [
        f"== {device}: {result['hardware']} - {result['rows']} measured rows, "
        f"{result['blocks']} blocks; {min(tests)} unseen test blocks per seed, {seeds} seeds",
        f"{'model':<{width}} {'within 10%':<18} {'within 5%':<18} MAPE",
    ]
    for entry in result["models"].values():
        label = ("  diag: " if entry["diagnostic"] else "") + entry["label"]
        lines.append(f"{label:<{width}} {_cell(entry['within10'], False):<18} "
                     f"{_cell(entry['within5'], False):<18} {_cell(entry['mape'], True)}")
    lines.append(f"{'shared README reference (block-key split, 5 seeds)':<{width}} "
                 f"{'within 10%':<18} {'':<18} MAPE")
    for ref in result["reference"]:
        lines.append(f"  {ref['model']:<{width - 2}} {ref['within10']:<18.2f} {'':<18} "
                     f"{ref['mape_percent']:.1f}%")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="random block-key splits")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="fraction of block keys held out per split")
    parser.add_argument("--devices", nargs="+", default=list(DEVICES), choices=list(DEVICES))
    parser.add_argument("--ablate", action="store_true",
                        help="also fit diagnostic variants (extra columns one by one, expansion)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if not 0.0 < args.test_fraction < 1.0:
        parser.error("--test-fraction must be between 0 and 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = {device: evaluate_device(device, args.seeds, args.test_fraction, args.ablate, log)
               for device in args.devices}
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"seeds": args.seeds, "test_fraction": args.test_fraction,
                          "parallelism_factor": PARALLELISM_FACTOR, "seconds": round(seconds, 1),
                          "devices": results}))
    else:
        for device, result in results.items():
            print(format_device(device, result, args.seeds) + "\n")
        print(f"{seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
