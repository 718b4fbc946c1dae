"""Latency landscape of a search space under a learned estimator: curated against uncurated.

For every stage and block kind it sweeps the stage's output channels one at a time over the
stage's range (the uncurated space) and reads the curated points (multiples of P) off the same
curve, then prints the roughness of both (share of down steps, local minima, share of the rise
on the steps into a new pass of the P-wide array, where the largest rises are) and the local
minima that greedy descent over all channel dimensions meets from random starts. See
:mod:`nas.analysis.landscape` for the definitions.

Run from the repository root::

    python benchmarks/space_landscape.py --space mbv2-small --estimator npu32-mbv2-small \\
        --png landscape.png --json landscape.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.analysis.landscape import (  # noqa: E402
    DEFAULT_KINDS,
    OBJECTIVES,
    landscape_report,
    plot_landscape,
)
from searchspaces.files import atomic_write  # noqa: E402


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv2-small")
    parser.add_argument("--estimator", default="npu32-mbv2-small",
                        help="estimator folder or shipped name")
    parser.add_argument("--parallelism-factor", type=int, default=None,
                        help="P of the curated space (default: the estimator's)")
    parser.add_argument("--stages", type=_ints, default=None, help="e.g. 3,5,6 (default: all)")
    parser.add_argument("--kinds", type=_names, default=list(DEFAULT_KINDS))
    parser.add_argument("--objectives", type=_names, default=list(OBJECTIVES))
    parser.add_argument("--starts", type=int, default=32,
                        help="random starts per descent (0 skips the descents)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None, help="write the plot here")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    try:
        report = landscape_report(args.space, args.estimator, args.parallelism_factor, args.stages,
                                  args.kinds, args.seed, args.starts, args.objectives,
                                  num_classes=args.num_classes)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    print(report.table())
    print(f"\n{len(report.rows)} sweeps, {len(report.descent)} descent runs in {elapsed:.1f} s")
    if args.png is not None:
        print(f"plot: {plot_landscape(report, args.png)}")
    if args.json is not None:
        text = json.dumps(report.to_dict(), indent=1) + "\n"
        atomic_write(args.json, text.encode())
        print(f"report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
