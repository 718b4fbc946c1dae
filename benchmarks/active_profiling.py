"""Active vs random profiling: held-out accuracy against the number of measured blocks, and how
well the estimator's 80% intervals cover held-out networks.

Offline, by choosing rows from an already-measured pool (no hardware needed):

- ``h200-b1`` / ``h200-b32``: pool = the 366 graph-timed H200 blocks of
  ``benchmarks/data/gpu_h200/b1|b32/measurements.csv``; the 16 build networks fit the overhead
  and calibrate the interval; scored on the 15 held-out networks of ``heldout.csv``;
- ``npu32``: pool = the 628 ZigZag blocks of ``estimators/shipped/npu32-mbv2``; scored on the
  ZigZag-measured held-out networks of ``benchmarks/data/npu32_mbv2_heldout.csv``;
- ``roofline``: the instant ``roofline-npu32`` model, pool and networks measured on the spot.

For each seed, *random* adds pool rows in a random order; *active* starts from the same first
random share and then adds rows as :func:`estimators.active.choose_from_pool` ranks them (a
bootstrap ensemble fitted on the rows so far; the module doc says how the offline pool differs
from online candidates). At each budget the product recipe
(:func:`estimators.build.fit_from_tables`) is fitted on the chosen rows and scored on the held-out
networks: within +-10% and MAPE. Figures print as a table; the plot goes to
``docs/results/active_profiling.png``.

Run from the repository root: ``python benchmarks/active_profiling.py [--targets h200-b1,npu32]
[--seeds 3] [--acquisition usage]``. A few minutes per target and seed on one core.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from estimators.active import (  # noqa: E402
    ACQUISITIONS,
    candidate_networks,
    choose_from_pool,
    config_of_rows,
    fit_ensemble,
)
from estimators.backends import create_backend  # noqa: E402
from estimators.build import (  # noqa: E402
    BLOCK_COLUMNS,
    BLOCK_TABLE,
    NETWORK_COLUMNS,
    NETWORK_TABLE,
    fit_from_tables,
    load_rows,
    sample_blocks,
    sample_networks,
)
from estimators.evaluate import accuracy_metrics  # noqa: E402
from estimators.features import CONFIG_FIELDS, block_key  # noqa: E402
from estimators.latency import SHIPPED_DIR, LatencyEstimator  # noqa: E402
from estimators.profiles import HardwareProfile, load_profile  # noqa: E402
from estimators.uncertainty import coverage, half_width, spread_and_point  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
CANDIDATES = 300
NPU32_HELDOUT = "npu32_mbv2_heldout.csv"


@dataclass(frozen=True)
class Target:
    name: str
    space: str
    profile: HardwareProfile
    pool: list[dict[str, str]]
    build_nets: list[dict[str, str]]
    heldout: list[dict[str, str]]


def _table(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_target(name: str) -> Target:
    if name in ("h200-b1", "h200-b32"):
        folder = DATA / "gpu_h200" / name.split("-")[1]
        rows = load_rows(folder)
        profile = load_profile("h200-fp16" if name == "h200-b1" else "h200-fp16-b32")
        return Target(name, "mbv2", profile, rows["blocks"], rows["networks"],
                      _table(folder, "heldout.csv"))
    if name == "npu32":
        rows = load_rows(SHIPPED_DIR / "npu32-mbv2")
        return Target(name, "mbv2", load_profile("npu32"), rows["blocks"], rows["networks"],
                      _table(DATA, NPU32_HELDOUT))
    if name == "roofline":
        return roofline_target()
    raise ValueError(f"unknown target {name!r}")


def roofline_target() -> Target:
    """Pool of 600 blocks, 16 build and 40 held-out networks, measured now (instant)."""
    profile = load_profile("roofline-npu32")
    backend = create_backend(profile)
    blocks = sample_blocks("mbv2", 32, 600, np.random.default_rng([0, 0]))
    pool = [{"kind": b.kind, **dict(zip(CONFIG_FIELDS, map(str, block_key(b)[1:]))),
             "latency_ms": str(m.latency_ms), "spread_ms": "0"}
            for b, m in zip(blocks, backend.measure_blocks(blocks))]

    def nets(n: int, stream: int) -> list[dict[str, str]]:
        out = []
        for s in sample_networks("mbv2", 32, n, np.random.default_rng([0, stream])):
            ms = backend.measure_network(s.arch, s.num_classes, s.in_channels).latency_ms
            out.append({"arch": s.arch.to_string(), "num_classes": str(s.num_classes),
                        "in_channels": str(s.in_channels), "latency_ms": str(ms),
                        "spread_ms": "0"})
        return out

    return Target("roofline", "mbv2", profile, pool, nets(16, 2), nets(40, 1))


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _nets(rows: list[dict[str, str]]) -> list[tuple[Architecture, int, int]]:
    return [(Architecture.from_string(r["arch"]), int(r["num_classes"]), int(r["in_channels"]))
            for r in rows]


def fit_and_score(target: Target, chosen: list[int], folder: Path, members: int = 0
                  ) -> tuple[dict[str, float], LatencyEstimator, dict]:
    """Fit the product recipe on the chosen pool rows and score it on the held-out networks."""
    _write(folder / BLOCK_TABLE, BLOCK_COLUMNS, [target.pool[i] for i in chosen])
    _write(folder / NETWORK_TABLE, NETWORK_COLUMNS, target.build_nets)
    est, report = fit_from_tables(folder, target.space, target.profile, members=members)
    nets = _nets(target.heldout)
    pred = np.array([est.predict(a, nc, ic) for a, nc, ic in nets])
    measured = np.array([float(r["latency_ms"]) for r in target.heldout])
    spread = np.array([float(r["spread_ms"]) for r in target.heldout])
    return accuracy_metrics(pred, measured, spread), est, report


def curves(target: Target, seed: int, acquisition: str, folder: Path,
           fractions: tuple[float, ...] = FRACTIONS) -> dict[str, list[dict[str, float]]]:
    """Random and active accuracy at each budget (fraction of the pool) for one seed."""
    sizes = sorted({max(10, round(f * len(target.pool))) for f in fractions})
    order = np.random.default_rng([seed, 7]).permutation(len(target.pool)).tolist()
    kinds = [target.pool[i]["kind"] for i in order]
    firsts = [order[kinds.index(k)] for k in dict.fromkeys(kinds)]
    order = np.array(firsts + [i for i in order if i not in firsts])  # every kind in every fit
    blocks = config_of_rows(target.pool)
    latency = np.array([float(r["latency_ms"]) for r in target.pool])
    p = target.profile.parallelism_factor
    out: dict[str, list[dict[str, float]]] = {"random": [], "active": []}
    for n in sizes:
        metrics, _, _ = fit_and_score(target, order[:n].tolist(), folder)
        out["random"].append({"blocks": n, **metrics})
    chosen = order[:sizes[0]].tolist()
    out["active"].append(out["random"][0])
    for r, n in enumerate(sizes[1:], start=1):
        est = fit_ensemble([blocks[i] for i in chosen], latency[chosen], target.space, p,
                           seed=seed)
        nets = candidate_networks(target.space, p, CANDIDATES,
                                  np.random.default_rng([seed, 3, r]))
        taken = np.zeros(len(blocks), dtype=bool)
        taken[chosen] = True
        chosen += choose_from_pool(est, blocks, taken, nets, n - len(chosen), acquisition)
        metrics, _, _ = fit_and_score(target, chosen, folder)
        out["active"].append({"blocks": len(chosen), **metrics})
    return out


def calibration(target: Target, folder: Path) -> dict[str, float]:
    """Fit on the whole pool with the ensemble; interval coverage on the held-out networks."""
    metrics, est, report = fit_and_score(target, list(range(len(target.pool))), folder, members=8)
    spread, point = spread_and_point(est, _nets(target.heldout))
    measured = np.array([float(r["latency_ms"]) for r in target.heldout])

    def inside(half: np.ndarray) -> float:
        return coverage(point * np.exp(-half), point * np.exp(half), measured)

    half = half_width(spread, est.interval_floor)
    return {"networks": len(measured), "floor": est.interval_floor, "coverage": inside(half),
            "coverage_ensemble_only": inside(half_width(spread, 0.0)),
            "median_halfwidth_pct": float(np.median(np.expm1(half)) * 100),
            "mape": metrics["mape"],
            "build_coverage": report["interval"]["coverage"]}


def plot(results: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 6.4), squeeze=False)
    for col, (name, res) in enumerate(results.items()):
        for row, (metric, label) in enumerate((("within_10pct", "within ±10%"),
                                               ("mape", "MAPE %"))):
            ax = axes[row][col]
            for method, color in (("random", "tab:gray"), ("active", "tab:red")):
                x = res["blocks"]
                y = res[f"{method}_{metric}"]
                ax.plot(x, y.mean(axis=0), color=color, marker="o", label=method)
                ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=color, alpha=0.15)
            ax.set_xlabel("measured blocks")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(name)
                ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="h200-b1,h200-b32,npu32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--acquisition", choices=ACQUISITIONS, default="usage")
    parser.add_argument("--png", type=Path, default=ROOT / "docs/results/active_profiling.png")
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)),
                        help="budgets as fractions of the pool")
    parser.add_argument("--no-curves", action="store_true", help="calibration only")
    args = parser.parse_args()
    fractions = tuple(float(f) for f in args.fractions.split(","))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.targets.split(","):
            target = load_target(name)
            cal = calibration(target, Path(tmp))
            print(f"{name}: {cal['networks']} held-out networks inside [p10, p90]: "
                  f"{cal['coverage']:.2f} (ensemble spread alone: "
                  f"{cal['coverage_ensemble_only']:.2f}; build networks "
                  f"{cal['build_coverage']:.2f}), floor {cal['floor']:.3f}, median half-width "
                  f"{cal['median_halfwidth_pct']:.1f}%, point MAPE {cal['mape']:.2f}%", flush=True)
            if args.no_curves:
                continue
            per_seed = []
            for seed in range(args.seeds):
                t = time.perf_counter()
                per_seed.append(curves(target, seed, args.acquisition, Path(tmp), fractions))
                print(f"  seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr,
                      flush=True)
            res = {"blocks": np.array([r["blocks"] for r in per_seed[0]["random"]])}
            for method in ("random", "active"):
                for metric in ("within_10pct", "mape"):
                    res[f"{method}_{metric}"] = np.array(
                        [[r[metric] for r in s[method]] for s in per_seed])
            results[name] = res
            print(f"{name} (pool {len(target.pool)}, {args.seeds} seeds, acquisition "
                  f"{args.acquisition}; mean over seeds)")
            print(f"{'blocks':>7} {'random ±10%':>12} {'active ±10%':>12} "
                  f"{'random MAPE':>12} {'active MAPE':>12}")
            for i, n in enumerate(res["blocks"]):
                print(f"{n:>7} {res['random_within_10pct'][:, i].mean():>12.3f} "
                      f"{res['active_within_10pct'][:, i].mean():>12.3f} "
                      f"{res['random_mape'][:, i].mean():>12.2f} "
                      f"{res['active_mape'][:, i].mean():>12.2f}", flush=True)
            for metric, better in (("mape", np.less_equal), ("within_10pct", np.greater_equal)):
                act = res[f"active_{metric}"].mean(axis=0)
                for n, goal in zip(res["blocks"][1:], res[f"random_{metric}"].mean(axis=0)[1:]):
                    reach = [m for m, v in zip(res["blocks"], act) if better(v, goal)]
                    where = f"{reach[0]} blocks ({reach[0] / n:.0%})" if reach else "never"
                    print(f"  random's {metric} at {n} blocks ({goal:.3f}): active at {where}")
    if results:
        plot(results, args.png)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
