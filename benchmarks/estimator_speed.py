"""How fast the learned estimator scores architectures, and how that compares with measuring.

For a curated space (the one a search runs in), it times, on the estimator's space and P:

- ``cold``: the first ``--archs`` random architectures, every stage a cache miss at first;
- ``new``: another ``--archs`` fresh architectures once the cache is warm — the steady state of
  a long search, where candidates are new but their stages have been seen;
- ``repeat``: the same architectures again (a searcher re-scoring its population);

and the back end's own time to measure one whole network (``--measure`` networks, no cache), so
the ratio says how many architectures the estimator scores in the time one is measured.

Run from the repository root: ``python benchmarks/estimator_speed.py [--estimator npu32-mbv2]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimators.backends import create_backend  # noqa: E402
from estimators.latency import LatencyEstimator, list_shipped, resolve_estimator  # noqa: E402
from estimators.profiles import load_profile  # noqa: E402
from searchspaces.spaces import get_space  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", default=None,
                        help="estimator folder or shipped name (default: the first shipped one)")
    parser.add_argument("--archs", type=int, default=100_000)
    parser.add_argument("--measure", type=int, default=3,
                        help="networks to measure on the back end for the ratio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    ref = args.estimator or (list_shipped() or [None])[0]
    if ref is None:
        raise SystemExit("no estimator given and none shipped")
    folder = resolve_estimator(ref)
    est = LatencyEstimator.load(folder)
    space = get_space(est.space, est.parallelism_factor, curated=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    first = [space.sample(rng) for _ in range(args.archs)]
    second = [space.sample(rng) for _ in range(args.archs)]
    sample_s = (time.perf_counter() - t0) / 2

    def rate(archs: list) -> float:
        t = time.perf_counter()
        est.predict_many(archs)
        return len(archs) / (time.perf_counter() - t)

    cold, new, repeat = rate(first), rate(second), rate(second)
    profile = load_profile(est.meta.get("profile_path") or est.profile)
    with tempfile.TemporaryDirectory() as empty_cache:
        backend = create_backend(profile, cache_dir=empty_cache)
        times = []
        for arch in first[: args.measure]:
            t = time.perf_counter()
            backend.measure_network(arch)
            times.append(time.perf_counter() - t)
    measure_s = float(np.median(times))
    result = {
        "estimator": str(ref), "space": space.label, "backend": est.backend,
        "archs": args.archs, "sampling_archs_per_s": args.archs / sample_s,
        "cold_archs_per_s": cold, "new_archs_per_s": new, "repeat_archs_per_s": repeat,
        "cached_stages": len(est._stages), "cached_blocks": len(est._blocks),
        "measure_s_per_network": measure_s,
        "speedup_vs_measuring": new * measure_s,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"estimator {ref} on {space.label}, back end {est.backend}, {args.archs:,} archs")
    print(f"  {'sampling the space':<40} {result['sampling_archs_per_s']:>12,.0f} archs/s")
    print(f"  {'cold (empty cache)':<40} {cold:>12,.0f} archs/s")
    print(f"  {'new archs, warm cache (steady state)':<40} {new:>12,.0f} archs/s")
    print(f"  {'repeated archs':<40} {repeat:>12,.0f} archs/s")
    print(f"  cache: {len(est._stages):,} stages, {len(est._blocks):,} blocks")
    print(f"  measuring one network on {est.backend}: {measure_s:.2f} s (median of "
          f"{len(times)}, no cache) -> the estimator is {result['speedup_vs_measuring']:,.0f}x "
          "faster per architecture")


if __name__ == "__main__":
    main()
