"""What one ``ask`` of the default ``evolution`` costs in a hwnas space, before and after its
late phase starts (``LATE_AFTER`` told trials, 25; 100 until 2026-12-07: where the GP, the late
climb and the estimator's latency take over). No proxy: synflow's time is on top of it.

Builds what ``hwnas search`` builds from a config (``prepare``: the space, the estimator and the
``prior``, each candidate's parameter count and predicted latency) and drives ``Evolution``'s
ask/tell directly, without Ray or training: each asked candidate is told a synthetic accuracy (a
rising function of its parameter count plus a term hashed from its choices, so the model has
something to fit) and the estimator's latency. Only the asks are timed, by phase; a real search
adds a trial's training to each. Prints one line per phase (``--json``: strict JSON):

    python benchmarks/evolution_ask_cost.py                       # quickstart config, 140 asks
    python benchmarks/evolution_ask_cost.py --trials 200 --seed 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import load_config  # noqa: E402
from nas.search import OBJECTIVES, prepare, strategy_inputs  # noqa: E402
from nas.strategies import Evolution  # noqa: E402
from nas.strategies.evolution import LATE_AFTER  # noqa: E402


def synthetic_accuracy(config: dict[str, Any], params: float) -> float:
    """In (0.5, 0.9): grows with log parameters, plus up to 0.05 from a hash of the choices."""
    jitter = (zlib.crc32(json.dumps(config, sort_keys=True).encode()) % 1000) / 1000
    return 0.5 + 0.3 * np.log10(max(params, 1.0)) / 7 + 0.05 * jitter


def run(config_path: str, trials: int, seed: int) -> dict[str, Any]:
    config = load_config(config_path)
    prep = prepare(config)
    prior = strategy_inputs(config.with_overrides(**{"strategy.name": "evolution"}),
                            prep.trial_context())["prior"]  # what hwnas search gives evolution
    calls = [0]

    def counted(candidate: dict[str, Any]) -> Any:  # evolution prices each config once
        calls[0] += 1
        return prior(candidate)

    search = Evolution(prep.search_space, OBJECTIVES, seed=seed, prior=counted)
    seconds = []
    for _ in range(trials):
        start = time.perf_counter()
        config_ = search.ask()
        seconds.append(time.perf_counter() - start)
        priced = prior(config_)
        result = None if priced is None else {
            "accuracy": synthetic_accuracy(config_, priced[0]), "latency_ms": priced[1]}
        search.tell(config_, result)
    phases = {f"asks 1-{LATE_AFTER}": seconds[:LATE_AFTER],
              f"asks {LATE_AFTER + 1}-{trials}": seconds[LATE_AFTER:]}
    return {"config": config_path, "trials": trials, "seed": seed,
            "phases": {name: {"asks": len(s), "mean_s": round(float(np.mean(s)), 4),
                              "max_s": round(float(np.max(s)), 4)}
                       for name, s in phases.items() if s},
            "configs_priced": calls[0], "archive": len(search.archive)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--trials", type=int, default=140)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials must be >= 1, got {args.trials}")
    try:
        report = run(args.config, args.trials, args.seed)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return
    for name, phase in report["phases"].items():
        print(f"{name}: mean {phase['mean_s']:.3f} s, max {phase['max_s']:.3f} s per ask")
    print(f"configs priced by the estimator: {report['configs_priced']}; "
          f"archive: {report['archive']} points")


if __name__ == "__main__":
    main()
