"""How far does perfect knowledge of a cell's merit get on NAS-Bench-201? A ceiling for 0.99.

``nb201_strategies.py`` scores a search by the hypervolume of the validation accuracies it has
seen (``<dataset>_val_12ep``) against the true front of that column. Part of a cell's validation
accuracy is the split it was measured on: the same table holds a second measurement of each
trained cell, ``<dataset>_test_12ep``. A model of accuracy, however good, predicts what a cell is
worth, not the luck of one split.

This benchmark gives an oracle the second measurement of *every* cell. It evaluates cells in the
order of their non-dominated rank under (test accuracy, latency), front by front (each front
spread over latency), and is scored exactly as a search is: by the validation accuracies of what
it evaluated. Printed per pair: the oracle's hypervolume ratio after 50 and 200 evaluations and
how many evaluations it needs for 0.99, with Kendall tau between the two accuracy columns. Where
the oracle needs more than 200, reaching 0.99 by 200 means finding cells that were lucky on the
validation split, which no model of accuracy can predict.

    python benchmarks/nb201_noise_ceiling.py            # every pair, about 3 minutes
    python benchmarks/nb201_noise_ceiling.py --json     # per pair, strict JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.nb201_strategies import (  # noqa: E402
    ACCURACIES,
    GOAL,
    hypervolume_ratios,
    latency_columns,
    objectives_of,
)
from nas.pareto import nondominated_ranks  # noqa: E402

BUDGETS = (50, 200)


def spread(n: int) -> list[int]:
    """0..n-1 in an order whose every prefix is spread over the range (bit reversal)."""
    bits = max(1, (n - 1).bit_length())
    keys = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)]
    return sorted(range(n), key=lambda i: keys[i])


def oracle_order(accuracy: np.ndarray, latency: np.ndarray) -> list[int]:
    """Rows front by front; each front, sorted by latency, in the order of :func:`spread`."""
    ranks = nondominated_ranks(np.column_stack([accuracy, latency]), (True, False))
    rows: list[int] = []
    for rank in range(int(ranks.max()) + 1):
        front = np.flatnonzero(ranks == rank)
        front = front[np.argsort(latency[front], kind="stable")]
        rows.extend(int(front[j]) for j in spread(len(front)))
    return rows


def evaluations_to(goal: float, rows: list[int], pair: tuple[str, str], limit: int = 5000) -> int:
    """The fewest first evaluations of ``rows`` whose hypervolume ratio is >= ``goal``, by
    bisection (the ratio only grows with more points); ``limit + 1`` when even ``limit`` miss."""
    if hypervolume_ratios(rows, pair, [limit])[0] < goal:
        return limit + 1
    low, high = 1, limit
    while low < high:
        mid = (low + high) // 2
        if hypervolume_ratios(rows, pair, [mid])[0] >= goal:
            high = mid
        else:
            low = mid + 1
    return low


def ceiling(accuracy_column: str, latency_column: str) -> dict[str, object]:
    twin_column = accuracy_column.replace("_val_", "_test_")
    twin, latency = objectives_of(twin_column, latency_column)
    seen, _ = objectives_of(accuracy_column, latency_column)
    rows = oracle_order(twin, latency)
    pair = (accuracy_column, latency_column)
    ratios = hypervolume_ratios(rows, pair, list(BUDGETS))
    return {"accuracy": accuracy_column, "twin": twin_column, "latency": latency_column,
            "kendall_tau": float(kendalltau(seen, twin).statistic),
            "hypervolume_ratio": dict(zip(map(str, BUDGETS), map(float, ratios))),
            "evaluations_to_goal": evaluations_to(GOAL, rows, pair)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accuracy-columns", nargs="+", default=list(ACCURACIES))
    parser.add_argument("--latency-columns", nargs="+", default=None)
    parser.add_argument("--json", action="store_true", help="per pair, strict JSON")
    args = parser.parse_args()
    pairs = [(a, lat) for a in args.accuracy_columns
             for lat in (args.latency_columns or latency_columns())]
    results = [ceiling(a, lat) for a, lat in pairs]
    if args.json:
        print(json.dumps({"goal": GOAL, "budgets": list(BUDGETS), "pairs": results}, indent=1,
                         allow_nan=False))
        return
    print(f"oracle told every cell's test accuracy, scored on validation accuracy (goal {GOAL})")
    print("| accuracy | latency | tau(val, test) | at 50 | at 200 | evaluations to 0.99 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        hv = r["hypervolume_ratio"]
        print(f"| {r['accuracy']} | {r['latency']} | {r['kendall_tau']:.3f} | {hv['50']:.3f} | "
              f"{hv['200']:.3f} | {r['evaluations_to_goal']} |")
    for accuracy in args.accuracy_columns:
        mine = [r for r in results if r["accuracy"] == accuracy]
        at200 = [r["hypervolume_ratio"]["200"] for r in mine]
        need = [r["evaluations_to_goal"] for r in mine]
        print(f"{accuracy}: {len(mine)} pairs; oracle >= {GOAL} by 200 on "
              f"{sum(n <= 200 for n in need)}; at 200 median {np.median(at200):.3f} "
              f"(lowest {min(at200):.3f}); evaluations to {GOAL}: median {np.median(need):.0f}, "
              f"most {max(need)}")


if __name__ == "__main__":
    main()
