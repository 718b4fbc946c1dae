"""How often two timings of the same whole network agree on this CPU: old method against new.

Issue 12's ceiling: a network timed twice a few minutes apart agreed within +-10% only 55% of the
time on this shared 2-core machine. This times ``--networks`` random ``mbv2-small`` networks
(the held-out sampler of ``hwnas estimator eval``) in ``2 * --passes`` sweeps; in every sweep each
network is timed by both methods back to back, in alternating order, so both see the same load:

- **old**: ``torch-cpu`` as before issue 12, unpinned; one pass's median is a timing. Agreement
  is over the pairs of consecutive sweeps (1 with 2, 3 with 4, ...);
- **new**: pinned to one core (``pin_core: auto``); a timing is the fastest of ``--passes``
  passes (:func:`~estimators.build.robust_timing`), timing A over the odd sweeps and B over the
  even ones, as ``hwnas estimator eval --passes 2K`` does.

Two more rows separate the two changes: pinned with one pass, and unpinned with the fastest of
K. Each row gives the fraction of networks whose two timings agree within +-10% and +-5% (the
larger over the smaller, :func:`~estimators.evaluate.repeatability`) and the median
disagreement. On a machine other processes load, the figures move from run to run: compare rows
of one run, not runs.

Run from the repository root: ``python benchmarks/cpu_repeatability.py [--networks 20]
[--passes 2] [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from estimators.backends import Measurement  # noqa: E402
from estimators.backends.torch_backends import TorchCPUBackend  # noqa: E402
from estimators.build import robust_timing, sample_networks  # noqa: E402
from estimators.evaluate import repeatability, split_timings  # noqa: E402
from estimators.profiles import load_profile  # noqa: E402

METHODS = ("unpinned", "pinned")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def agreement(first: list[float], second: list[float]) -> dict[str, float]:
    """:func:`repeatability` plus the median disagreement (larger over smaller, minus 1)."""
    a, b = np.asarray(first), np.asarray(second)
    return {**repeatability(a, b),
            "median_disagreement": float(np.median(np.maximum(a, b) / np.minimum(a, b) - 1))}


def single_pass_agreement(sweeps: list[list[Measurement]]) -> dict[str, float]:
    """Agreement of one pass with the next, over the pairs (1, 2), (3, 4), ... of sweeps;
    ``sweeps[i][n]`` is network ``n`` in sweep ``i``."""
    first = [m.latency_ms for s in sweeps[0::2] for m in s]
    second = [m.latency_ms for s in sweeps[1::2] for m in s]
    return agreement(first, second)


def fastest_of_k_agreement(sweeps: list[list[Measurement]]) -> dict[str, float]:
    """Agreement of timing A (fastest of the odd sweeps) with B (fastest of the even ones)."""
    split = [split_timings([s[n] for s in sweeps]) for n in range(len(sweeps[0]))]
    return agreement([a.latency_ms for a, _ in split], [b.latency_ms for _, b in split])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2,
                        help="passes per timing of the new method (K; 2K sweeps are run)")
    parser.add_argument("--space", default="mbv2-small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.networks < 1 or args.passes < 1:
        parser.error("--networks and --passes must be >= 1")

    profile = load_profile("torch-cpu")
    backends = {method: TorchCPUBackend(dataclasses.replace(
        profile, settings={**profile.settings, "pin_core": "auto" if method == "pinned"
                           else "none"})) for method in METHODS}
    nets = sample_networks(args.space, profile.parallelism_factor, args.networks,
                           np.random.default_rng([args.seed, 1]))
    sweeps: dict[str, list[list[Measurement]]] = {m: [] for m in METHODS}
    started = time.perf_counter()
    for s in range(2 * args.passes):
        for method in METHODS:
            sweeps[method].append([])
        for i, net in enumerate(nets):
            order = METHODS if (i + s) % 2 == 0 else METHODS[::-1]
            for method in order:
                sweeps[method][-1].append(backends[method].measure_network(
                    net.arch, net.num_classes, net.in_channels))
        _log(f"sweep {s + 1}/{2 * args.passes} done at {time.perf_counter() - started:.0f} s")

    rows = [
        {"method": "old: unpinned, one pass", **single_pass_agreement(sweeps["unpinned"])},
        {"method": "pinned, one pass", **single_pass_agreement(sweeps["pinned"])},
        {"method": f"unpinned, fastest of {args.passes}",
         **fastest_of_k_agreement(sweeps["unpinned"])},
        {"method": f"new: pinned, fastest of {args.passes}",
         **fastest_of_k_agreement(sweeps["pinned"])},
    ]
    speed = {m: float(np.median([robust_timing([s[n] for s in sweeps[m]]).latency_ms
                                 for n in range(len(nets))])) for m in METHODS}
    summary = {"networks": len(nets), "passes": args.passes, "space": args.space,
               "cpu": backends["pinned"].environment()["cpu"],
               "pinned_core": backends["pinned"].core,
               "median_network_ms": speed, "elapsed_s": round(time.perf_counter() - started, 1),
               "rows": rows}
    if args.json:
        print(json.dumps(summary, allow_nan=False))
        return
    head = f"{'method':<28} {'agree ±10%':>10} {'agree ±5%':>10} {'median diff':>12}"
    print(f"{len(nets)} {args.space} networks, {2 * args.passes} sweeps, {summary['cpu']}, "
          f"pinned to core {summary['pinned_core']}; {summary['elapsed_s']:.0f} s")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['method']:<28} {r['repeat_within_10pct']:>10.2f} "
              f"{r['repeat_within_5pct']:>10.2f} {r['median_disagreement'] * 100:>11.1f}%")
    print(f"median network latency (fastest pass): unpinned {speed['unpinned']:.2f} ms, "
          f"pinned {speed['pinned']:.2f} ms")


if __name__ == "__main__":
    main()
