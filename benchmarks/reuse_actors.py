"""What reusing trial workers saves: a search with ``resources.reuse_actors`` on and off.

A search on a joined Ray cluster gives every trial a fresh worker process (a lost node must not
take a reused worker's next trial with it: see docs/operations.md, "Failures"); a local search
reuses the worker of a finished trial. This prints what the fresh workers cost: the same search
(config, seed, trials) run with each setting, alternating, ``--repeats`` times, on one local Ray,
with the wall time per trial side by side. MLflow goes to a temporary folder.

    python benchmarks/reuse_actors.py                       # about 3 min on 2 cores
    python benchmarks/reuse_actors.py --trials 8 --repeats 3 --json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import SearchConfig, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import ray

    from nas.search import prepare, run_search

    base = load_config(args.config).model_dump()
    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                 log_to_driver=False)
        try:
            for repeat in range(args.repeats):
                for reuse in (True, False):
                    data = json.loads(json.dumps(base))
                    data.update(name=f"reuse-{reuse}-{repeat}", trials=args.trials,
                                storage_path=f"{tmp}/ray")
                    data["task"].update(max_train=args.max_train)
                    data["training"].update(epochs=args.epochs, asha=False)
                    data["budgets"] = {}
                    data["resources"].update(reuse_actors=reuse)
                    data["tracking"].update(uri=f"sqlite:///{tmp}/mlflow.db",
                                            experiment="reuse-actors")
                    config = SearchConfig.model_validate(data)
                    prep = prepare(config)
                    start = time.perf_counter()
                    summary = run_search(config, prepared=prep, tune_output=io.StringIO())
                    wall = time.perf_counter() - start
                    seconds[reuse].append(wall / summary.trials)
                    print(f"repeat {repeat} reuse={reuse}: {summary.trials} trials in "
                          f"{wall:.1f} s", file=sys.stderr, flush=True)
        finally:
            ray.shutdown()
    reused, fresh = (statistics.median(seconds[k]) for k in (True, False))
    result = {"trials": args.trials, "repeats": args.repeats, "epochs": args.epochs,
              "max_train": args.max_train, "seconds_per_trial_reused": reused,
              "seconds_per_trial_fresh": fresh, "fresh_over_reused": fresh / reused}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"seconds per trial (median of {args.repeats}): reused workers {reused:.2f}, "
              f"fresh workers {fresh:.2f}; fresh / reused = {fresh / reused:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
