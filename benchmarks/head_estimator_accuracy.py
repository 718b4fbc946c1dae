"""Accuracy of a latency estimator on held-out detection and segmentation networks (issue 15).

For each task head (``det``, ``seg``) this scores the estimator as ``hwnas estimator eval --head``
does (:func:`estimators.evaluate.evaluate_estimator`: held-out networks of the space with that
head, measured end to end on the estimator's back end), then looks at the head alone: the head
blocks of the same networks measured one by one on the back end against their prediction, and
their share of the network's measured latency. A network-level figure is mostly the trunk's
where the head is a small part of the network, so the head-part error is what says whether the
head models are right.

Run from the repository root:
``python benchmarks/head_estimator_accuracy.py --estimator npu32-mbv2-small [--archs 20]
[--json]`` (on ZigZag a few minutes a head; the estimator's ``cache/`` keeps the layers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimators.backends import Backend, create_backend  # noqa: E402
from estimators.evaluate import evaluate_estimator  # noqa: E402
from estimators.latency import LatencyEstimator, resolve_estimator  # noqa: E402
from estimators.profiles import load_profile  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402
from searchspaces.layers import HEAD_BLOCK_KINDS, decompose  # noqa: E402


def head_part(estimator: LatencyEstimator, backend: Backend, rows: list[dict]
              ) -> dict[str, float]:
    """The head blocks of the evaluated networks: measured alone against predicted, and their
    share of the measured network."""
    share, error = [], []
    for row in rows:
        blocks = [b for b in decompose(Architecture.from_string(str(row["arch"])),
                                       int(row["num_classes"]), int(row["in_channels"]))
                  if b.kind in HEAD_BLOCK_KINDS]
        measured = sum(m.latency_ms for m in backend.measure_blocks(blocks))
        predicted = float(estimator.predict_blocks(blocks).sum())
        share.append(measured / float(row["measured_ms"]))
        error.append(abs(predicted - measured) / measured)
    return {"head_share_median": float(np.median(share)), "head_share_max": float(max(share)),
            "head_mape": float(100 * np.mean(error)), "head_max_error_pct": float(100 * max(error))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", default="npu32-mbv2-small")
    parser.add_argument("--archs", type=int, default=20, help="held-out networks per head")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = resolve_estimator(args.estimator)
    estimator = LatencyEstimator.load(folder, intervals=False)
    profile = load_profile(estimator.meta.get("profile_path") or estimator.profile)
    cache = folder / "cache" if os.access(folder, os.W_OK) else None
    backend = create_backend(profile, cache_dir=cache)
    results = {}
    for head in ("det", "seg"):
        print(f"{head}: {args.archs} held-out networks on {profile.name} ...", file=sys.stderr,
              flush=True)
        metrics, rows = evaluate_estimator(folder, args.archs, args.seed, workers=args.workers,
                                           cache_dir=cache, head=head)
        results[head] = {**metrics, **head_part(estimator, backend, rows)}
    if args.json:
        print(json.dumps(results, allow_nan=False))
        return
    print(f"{args.estimator}: {args.archs} held-out networks per head, seed {args.seed}")
    print("| head | within ±5% | within ±10% | MAPE | Kendall tau | head share of latency "
          "(median, max) | head blocks alone: MAPE, max error |")
    print("|---|---|---|---|---|---|---|")
    for head, r in results.items():
        print(f"| {head} | {r['within_5pct']:.3f} | {r['within_10pct']:.3f} | {r['mape']:.2f}% "
              f"| {r['kendall_tau']:.3f} | {100 * r['head_share_median']:.1f}%, "
              f"{100 * r['head_share_max']:.1f}% | {r['head_mape']:.2f}%, "
              f"{r['head_max_error_pct']:.2f}% |")


if __name__ == "__main__":
    main()
