"""Score CPU estimators side by side on the same measured held-out networks (issue 12).

``hwnas estimator eval --rows CSV`` writes each held-out network's measured latency (and its
two half timings). This script predicts those networks with every estimator given and prints,
per estimator and per measured set, the metrics of :func:`~estimators.evaluate.accuracy_metrics`,
the median signed error (a systematic bias shows there, not in MAPE) and the set's
repeatability ceiling, plus the network composition each build chose. Scoring two estimators
(e.g. blocks timed ``isolated`` and in ``context``) against one set of timings removes the
machine's drift between their two evaluations from the comparison::

    python benchmarks/cpu_context_timing.py --estimator /tmp/iso --estimator /tmp/ctx \\
        --rows /tmp/iso-eval.csv --rows /tmp/ctx-eval.csv

Times measured against a reference (``reference: network``) are in the unit of the reference's
time as its build took it, which differs from build to build (calibrations of 3.30-5.06 ms on
the project's VM in one day). A set
whose rows carry their ``reference_ms`` (every ``--rows`` CSV written since 2026-12-02) is
rescaled to each estimator's own ``reference_ms`` before it is scored, so any estimator can be
scored on any set; ``--rows CSV=DIR`` names the estimator whose evaluation wrote an older CSV,
to read the scale from. The last lines give each estimator's mean and lowest within ±10% over
all sets.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from estimators.evaluate import accuracy_metrics, repeatability
from estimators.latency import LatencyEstimator, read_manifest
from searchspaces.genome import Architecture


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _composition(folder: Path) -> str:
    manifest = read_manifest(folder)
    ov = manifest.get("build", {}).get("overhead", {})
    form = ov.get("form", "sum")
    text = {"scale_offset": f"{ov.get('scale', 1):.3f}*sum{ov.get('offset_ms', 0):+.3f} ms",
            "per_block": f"sum{1000 * -ov.get('per_block_ms', 0):+.1f} us/block"}.get(form, "sum")
    return (f"{manifest.get('block_timing', 'isolated')}, "
            f"{manifest.get('build', {}).get('block_rows', '?')} blocks, composition {text}")


def _set(arg: str) -> tuple[Path, list[dict[str, str]], float | None]:
    """A ``--rows`` argument: the CSV, its rows, and the reference scale its times are in (its
    ``reference_ms`` column, else that of the estimator named after ``=``, else none)."""
    path, _, built_by = arg.partition("=")
    rows = _rows(Path(path))
    scales = {r.get("reference_ms") or "" for r in rows} - {""}
    if len(scales) > 1:
        raise SystemExit(f"{path}: rows in {len(scales)} different reference scales")
    if scales:
        return Path(path), rows, float(scales.pop())
    if built_by:
        return Path(path), rows, read_manifest(Path(built_by)).get("reference_ms")
    return Path(path), rows, None


def score(folder: Path, rows: list[dict[str, str]], scale: float | None = None
          ) -> dict[str, float]:
    """The metrics of ``folder``'s estimator on measured ``rows``, with the median signed
    error in percent; times in the reference scale ``scale`` are rescaled to the estimator's
    own first (where both are known)."""
    est = LatencyEstimator.load(folder)
    predicted = np.array([est.predict(Architecture.from_string(r["arch"]), int(r["num_classes"]),
                                      int(r["in_channels"])) for r in rows])
    own = est.meta.get("reference_ms")
    factor = own / scale if own and scale else 1.0
    measured = np.array([float(r["measured_ms"]) for r in rows]) * factor
    metrics = accuracy_metrics(predicted, measured,
                               np.array([float(r["spread_ms"]) for r in rows]) * factor)
    metrics["median_signed_pct"] = float(np.median(predicted / measured - 1) * 100)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", type=Path, action="append", required=True)
    parser.add_argument("--rows", action="append", required=True,
                        help="a CSV of 'hwnas estimator eval --rows' (CSV=DIR: written by "
                        "the evaluation of estimator DIR, for a CSV without reference_ms)")
    args = parser.parse_args()
    for folder in args.estimator:
        print(f"{folder}: {_composition(folder)}")
    print("| estimator | measured set | within ±5% | within ±10% | MAPE | Kendall τ | Spearman | "
          "noise floor | median signed error | ceiling ±10% (±5%) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    within: dict[Path, list[float]] = {folder: [] for folder in args.estimator}
    for path, rows, scale in map(_set, args.rows):
        ceiling = repeatability(np.array([float(r["timing_a_ms"]) for r in rows]),
                                np.array([float(r["timing_b_ms"]) for r in rows]))
        for folder in args.estimator:
            m = score(folder, rows, scale)
            within[folder].append(m["within_10pct"])
            print(f"| {folder} | {path.name} ({len(rows)}) | {m['within_5pct']:.3f} | "
                  f"{m['within_10pct']:.3f} | {m['mape']:.2f}% | {m['kendall_tau']:.3f} | "
                  f"{m['spearman']:.3f} | {m['noise_floor']:.3f} | "
                  f"{m['median_signed_pct']:+.1f}% | {ceiling['repeat_within_10pct']:.3f} "
                  f"({ceiling['repeat_within_5pct']:.3f}) |")
    for folder, values in within.items():
        print(f"{folder}: within ±10% over {len(values)} sets: mean {np.mean(values):.3f}, "
              f"lowest {np.min(values):.3f}")


if __name__ == "__main__":
    main()
