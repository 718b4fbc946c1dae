"""How long one search trial takes: its training, per device, and what it costs besides training.

Two measurements:

- (default) trains the same sampled architectures of a space with the search's own training
  loop (``nas.tasks.train``) on each device in turn, side by side in one run, and prints one row
  per architecture and device: seconds per epoch and the accuracy reached. Use it to size
  ``training`` and ``resources`` in a search config.
- ``--search``: runs a whole search (the quickstart by default, with a smaller training budget)
  as ``hwnas search`` does, in a fresh Python process on its own local Ray, and splits the wall
  time the user waits into training and per-trial overhead (start and end: interpreter,
  imports, checks, Ray start and stop; inside a trial but not training: pricing the candidate,
  worker imports, data, model build, reports; between trials: worker start or reset, Tune's
  and MLflow's bookkeeping, idle slots); with trials one at a time (``--cpus 1``, the default)
  also the median gap from one trial's end to the next one's start, after a rejected and after
  a trained trial: what each further trial costs. With ``--before REV`` the same search runs on git
  revision REV's tree too, alternating with this tree ``--repeats`` times, so the overheads
  compare within one run on a noisy machine; it also checks that both trees found the same
  candidates with the same accuracies. It also prints the trial workers' resident memory: the
  largest worker's peak, and its size when the search ended (a reused worker that only grows
  is what Ray's memory monitor kills in a long search).

    python benchmarks/trial_speed.py --devices cpu --archs 2 --epochs 2
    python benchmarks/trial_speed.py --devices cpu,cuda --archs 3 --json
    python benchmarks/trial_speed.py --search --before ef86c84     # about 10 min on 2 cores
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.perf_counter()  # the child's clock starts before it imports anything heavy


def train_speed(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import numpy as np
    import torch

    from nas.config import TaskConfig, TrainingConfig
    from nas.tasks import make_task, train
    from searchspaces.spaces import get_space

    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    for d in devices:
        if d not in ("cpu", "cuda"):
            parser.error(f"unknown device {d!r}; use cpu or cuda")
        if d == "cuda" and not torch.cuda.is_available():
            parser.error("cuda asked for, but torch sees no CUDA GPU")
    torch.set_num_threads(args.threads)
    space = get_space(args.space, args.parallelism_factor, True)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs)]
    task = make_task(TaskConfig(dataset=args.dataset, data_dir=args.data_dir,
                                max_train=args.max_train), args.seed)
    training = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, asha=False)
    rows = []
    for i, arch in enumerate(archs):
        for device in devices:
            epochs: list[dict[str, float]] = []
            start = time.perf_counter()
            train(task, arch, training, args.seed, torch.device(device),
                  lambda e, m, out=epochs: out.append(m))
            if device == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            rows.append({"arch": i, "device": device, "resolution": arch.resolution,
                         "width": arch.width_mult, "s_per_epoch": wall / args.epochs,
                         "accuracy": epochs[-1]["accuracy"], "arch_string": arch.to_string()})
    if args.json:
        print(json.dumps({"args": vars(args), "rows": rows}))
        return 0
    gpu = torch.cuda.get_device_name() if "cuda" in devices else "-"
    print(f"{args.space} on {args.dataset}: {args.max_train} images/epoch, batch "
          f"{args.batch_size}, {args.epochs} epochs, {args.threads} CPU thread(s), GPU {gpu}")
    print(f"{'arch':>4} {'device':>6} {'res':>4} {'width':>5} {'s/epoch':>8} {'accuracy':>8}")
    for r in rows:
        print(f"{r['arch']:>4} {r['device']:>6} {r['resolution']:>4} {r['width']:>5} "
              f"{r['s_per_epoch']:>8.2f} {r['accuracy']:>8.3f}")
    return 0


# -- --search: one search in this process (the child), run by the parent per tree -------------

def one_search(args: argparse.Namespace) -> dict[str, Any]:
    """Run the search in this process (``nas`` imported from ``args.tree``) and time its parts.
    Prints nothing but the result: Tune's output goes to a buffer, MLflow to a temp folder."""
    from nas.config import SearchConfig, load_config
    from nas.search import prepare, ray_session, run_search

    data = load_config(args.config).model_dump()
    with tempfile.TemporaryDirectory() as tmp:
        data.update(storage_path=f"{tmp}/ray")
        if args.trials:
            data["trials"] = args.trials
        data["task"].update(max_train=args.max_train)
        data["training"].update(epochs=args.epochs)
        data["tracking"].update(uri=f"sqlite:///{tmp}/mlflow.db")
        config = SearchConfig.model_validate(data)
        checked = time.perf_counter()
        prep = prepare(config)
        prepared = time.perf_counter()
        with ray_session(None, args.cpus):
            ray_ready = time.perf_counter()
            summary = run_search(config, prepared=prep, tune_output=io.StringIO())
            searched = time.perf_counter()
        trials = [_trial_record(p) for p in sorted(Path(summary.tune_path).glob("trial_*"))]
        gaps = _gaps(Path(summary.tune_path)) if args.cpus == config.resources.cpus else {}
    done = time.perf_counter()
    return {
        "imports_and_config": checked - STARTED, "prepare": prepared - checked,
        "ray_start": ray_ready - prepared, "search": searched - ray_ready,
        "ray_stop": done - searched, "trials": summary.trials, "rejected": summary.rejected,
        "slots": int(args.cpus // config.resources.cpus),
        "in_trial": sum(t["seconds"] for t in trials),
        "train": sum(t["train_seconds"] for t in trials),
        "workers": len({t["pid"] for t in trials}),
        "hypervolume": summary.hypervolume, **gaps,
        "points": sorted([p["arch"], p["accuracy"], p["latency_ms"]] for p in summary.points)}


def _trial_record(folder: Path) -> dict[str, Any]:
    """Seconds from the trial's start in its worker to its last report, its training seconds
    and its worker's process id, from Tune's ``result.json``."""
    lines = (folder / "result.json").read_text().splitlines()
    if not lines:
        return {"seconds": 0.0, "train_seconds": 0.0, "pid": None}
    last = json.loads(lines[-1])
    return {"seconds": float(last["time_total_s"]),
            "train_seconds": float(last.get("train_seconds") or 0.0), "pid": last.get("pid")}


def _gaps(folder: Path) -> dict[str, float]:
    """Trials one at a time: the median seconds from a trial's last report to the next trial's
    start, after a rejected and after a trained trial (what every further trial costs, unlike
    the search's start). Read from Tune's experiment state (its ``start_time`` per trial)."""
    state = json.loads(sorted(folder.glob("experiment_state-*.json"))[-1].read_text())
    meta = sorted((json.loads(m) for _, m in state["trial_data"]), key=lambda m: m["start_time"])
    gaps: dict[str, list[float]] = {"gap_after_rejected": [], "gap_after_trained": []}
    for this, after in zip(meta, meta[1:]):
        result = this["last_result"]
        key = "gap_after_rejected" if result.get("rejected") else "gap_after_trained"
        gaps[key].append(after["start_time"] - this["start_time"] - result["time_total_s"])
    return {k: statistics.median(v) for k, v in gaps.items() if v}


def breakdown(run: dict[str, Any]) -> dict[str, float]:
    """Per-trial seconds of a child's run. With ``slots`` trials at a time, the search holds
    ``slots x wall`` slot-seconds; what training did not use of them is overhead."""
    n, slots = run["trials"], run["slots"]
    outside = run["wall"] - run["search"]
    parts = {"training": run["train"] / n,
             "start_and_end": slots * outside / n,
             "in_trial_not_training": (run["in_trial"] - run["train"]) / n,
             "between_trials": (slots * run["search"] - run["in_trial"]) / n}
    parts["overhead"] = parts["start_and_end"] + parts["in_trial_not_training"] + \
        parts["between_trials"]
    parts.update({k: run[k] for k in ("gap_after_rejected", "gap_after_trained") if k in run})
    return parts


class WorkerMemory(threading.Thread):
    """Samples, every ``interval`` seconds, the resident memory of the trial workers (Ray
    processes named ``ray::ImplicitFunc``) that descend from process ``pid``: each worker's
    peak and its last sample, in MB."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.wait(self.interval):
            try:
                children = psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                return
            for child in children:
                try:
                    if not child.name().startswith("ray::ImplicitFunc"):
                        continue
                    mb = child.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak[child.pid] = max(mb, self.peak.get(child.pid, 0.0))
                self.last[child.pid] = mb

    def summary(self) -> dict[str, float]:
        """The largest worker's peak and the largest last sample (0 when none was seen)."""
        return {"worker_peak_mb": max(self.peak.values(), default=0.0),
                "worker_end_mb": max(self.last.values(), default=0.0)}


def _child(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--search", "--child",
           "--tree", str(tree), "--config", args.config, "--epochs", str(args.epochs),
           "--max-train", str(args.max_train), "--cpus", str(args.cpus),
           "--trials", str(args.trials or 0)]
    env = {**os.environ, "PYTHONPATH": str(tree)}  # Ray workers import nas from there too
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    memory = WorkerMemory(proc.pid)
    memory.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    memory.done.set()
    memory.join()
    if proc.returncode != 0:
        raise SystemExit(f"search on {tree} failed:\n{stderr[-3000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "wall": wall, **memory.summary()}


def compare(args: argparse.Namespace) -> int:
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            trees = {f"before ({args.before})": before, **trees}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
        for repeat in range(args.repeats):
            for label, tree in trees.items():
                run = _child(tree, args)
                runs[label].append(run)
                print(f"repeat {repeat} {label}: {run['trials']} trials in {run['wall']:.1f} s",
                      file=sys.stderr, flush=True)
    table = {label: {key: statistics.median(breakdown(r)[key] for r in rs)
                     for key in breakdown(rs[0])} for label, rs in runs.items()}
    same = len({json.dumps([r["points"], r["hypervolume"]]) for rs in runs.values()
                for r in rs}) == 1
    result = {"config": args.config, "trials": runs["this tree"][0]["trials"],
              "rejected": runs["this tree"][0]["rejected"], "epochs": args.epochs,
              "max_train": args.max_train, "cpus": args.cpus, "repeats": args.repeats,
              "seconds_per_trial": table, "same_results": same, "runs": runs}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    first = runs["this tree"][0]
    print(f"{Path(args.config).name}: {first['trials']} trials ({first['rejected']} rejected "
          f"before training), {args.epochs} epoch(s) of {args.max_train} images, Ray with "
          f"{args.cpus} CPU(s); seconds per trial, median of {args.repeats}")
    labels = list(table)
    print(f"{'':>24}" + "".join(f"{label:>22}" for label in labels))
    for key in table[labels[0]]:
        print(f"{key:>24}" + "".join(f"{table[label][key]:>22.2f}" for label in labels))
    for key, name in (("worker_peak_mb", "worker peak MB"), ("worker_end_mb", "worker end MB")):
        print(f"{name:>24}" + "".join(
            f"{statistics.median(r[key] for r in runs[label]):>22.0f}" for label in labels))
    if len(labels) == 2:
        ratio = table[labels[1]]["overhead"] / table[labels[0]]["overhead"]
        print(f"overhead after / before = {ratio:.2f}; same candidates and accuracies: "
              f"{'yes' if same else 'NO'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv2-small")
    parser.add_argument("--parallelism-factor", type=int, default=32)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-train", type=int, default=None,
                        help="images per epoch (default 960; 256 with --search)")
    parser.add_argument("--archs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="(default 2; 1 with --search)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    search = parser.add_argument_group("--search: per-trial overhead of a whole search")
    search.add_argument("--search", action="store_true")
    search.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    search.add_argument("--trials", type=int, default=None, help="(default: the config's)")
    search.add_argument("--cpus", type=int, default=1,
                        help="CPUs of the local Ray (1: trials one at a time, so wall time is "
                             "training plus overhead exactly)")
    search.add_argument("--repeats", type=int, default=2)
    search.add_argument("--before", default=None, metavar="REV",
                        help="also run the search on this git revision's tree, alternating")
    search.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    search.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.config = str(Path(args.config).resolve())
    sys.path.insert(0, args.tree if args.child else str(ROOT))
    if not args.search:
        args.epochs = 2 if args.epochs is None else args.epochs
        args.max_train = 960 if args.max_train is None else args.max_train
        return train_speed(args, parser)
    args.epochs = 1 if args.epochs is None else args.epochs
    args.max_train = 256 if args.max_train is None else args.max_train
    if args.child:
        print(json.dumps(one_search(args)))
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
