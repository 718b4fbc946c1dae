"""How well does each trainability proxy rank architectures by accuracy? Kendall tau per proxy.

(a) NAS-Bench-201, ``data/nb201/nb201_zero_cost_491.csv.gz``: NASLib's precomputed proxy scores
    of 491 cells with their validation accuracy after full training, per dataset (CIFAR-10,
    CIFAR-100, ImageNet16-120). Published scores, our rank statistics: it checks which proxies
    are worth having, not our implementations (NASLib has no NASWOT or Zen-score column).
(a') The same 491 cells scored by hwnas's own data-free proxies (``synflow``, ``zen``: they need
    an input's shape, not its images) on NAS-Bench-201's untrained network
    (:mod:`benchmarks.nb201_net`), per dataset's input (32x32 with 10 / 100 classes, 16x16 with
    120): their tau against the same accuracies, and how closely our synflow reproduces NASLib's.
    The table's ``arch_str`` has edges ``e21`` and ``e30`` exchanged (:func:`zero_cost_cell`).
    Scores are cached in ``data/nb201/hwnas_proxies_491.csv`` (computed once, ``--jobs``
    processes, a few minutes; delete it after a change to a proxy or the network).
(b) ``mbv2-small`` (curated, P = 32), ``--archs`` architectures sampled uniformly
    (``default_rng(--seed)``): each trained briefly on digits with the quickstart's task and
    optimiser (``configs/quickstart.yaml``, ``nas.tasks.train``) at a shorter budget
    (:class:`Budget`; default one epoch of 480 images in batches of 8, i.e. the 60 optimiser steps
    of one quickstart epoch on half its images, validated on 225 held-out digits), and scored by
    every proxy in :data:`nas.proxies.PROXIES` on one minibatch of 32 training images (the
    minibatch and the initialisation that ``hwnas search --strategy zeroshot`` uses).
    Each architecture's accuracy and proxy scores are appended to
    ``data/proxy_validation_mbv2_small.csv`` as soon as it finishes (``--jobs`` worker
    processes, one thread each), so an interrupted run resumes where it stopped and a larger
    ``--archs`` only measures what is missing. The rows are keyed by the budget; delete the file
    after a change to the model, the training or a proxy, since rows are never recomputed.
    Each tau comes with a bootstrap standard error and 95 % interval (architectures resampled
    with replacement, seeded).

Run from the repository root::

    nohup python benchmarks/proxy_validation.py --archs 100 --jobs 2 &   # resumable
    python benchmarks/proxy_validation.py --archs 100 --no-train --json tau.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.proxies import PROXIES  # noqa: E402

ZERO_COST = ROOT / "benchmarks" / "data" / "nb201" / "nb201_zero_cost_491.csv.gz"
NB201_OURS = ROOT / "benchmarks" / "data" / "nb201" / "hwnas_proxies_491.csv"
NB201_OURS_FIELDS = ("dataset", "index", "synflow", "zen", "synflow_as_written")
ZEN_BATCH = 8  # Zen-score's Gaussian batch; 32 changes the 491 scores by < 1 % and costs 4x
AGREE = 0.5  # synflow is a log of a sum spanning e^14..e^100: within 0.5 is a factor 1.65
CACHE = ROOT / "benchmarks" / "data" / "proxy_validation_mbv2_small.csv"
CONFIG = ROOT / "configs" / "quickstart.yaml"
NB201_SETS = ("cifar10", "cifar100", "ImageNet16-120")
NB201_PROXIES = ("synflow", "snip", "grad_norm", "jacov", "fisher", "grasp", "epe_nas",
                 "l2_norm", "plain", "flops", "params")
COUNTS = ("params", "flops")  # size baselines, as NASLib's columns (flops: MACs here)
SCORED = (*PROXIES, *COUNTS)
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Budget:
    """The brief training of one architecture: what a cached row is keyed by."""

    epochs: int = 1
    max_train: int = 480
    batch_size: int = 8
    max_val: int = 225


BUDGET_FIELDS = tuple(asdict(Budget()))
CACHE_FIELDS = ("arch", *BUDGET_FIELDS, "accuracy", "train_seconds", *SCORED,
                *(f"{p}_seconds" for p in PROXIES))


def tau(x: np.ndarray, y: np.ndarray) -> float:
    return float(kendalltau(x, y).statistic)


def tau_interval(x: np.ndarray, y: np.ndarray, seed: int = 0,
                 resamples: int = BOOTSTRAP) -> dict[str, float]:
    """Kendall tau of ``x`` against ``y`` with its bootstrap standard error and 95 % percentile
    interval: the pairs resampled with replacement ``resamples`` times (``default_rng(seed)``).
    The interval is what says whether a proxy ranks better than chance on so few architectures.
    """
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need >= 3 paired values, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    draws = np.array([tau(x[i], y[i]) for i in rng.integers(0, len(x), (resamples, len(x)))])
    draws = draws[np.isfinite(draws)]  # a resample of one repeated value has no tau
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"tau": tau(x, y), "se": float(draws.std(ddof=1)), "low": float(low),
            "high": float(high)}


def zero_cost_rows(path: Path = ZERO_COST) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))


def zero_cost_cell(arch_str: str) -> dict[str, str]:
    """The cell a row of the zero-cost table was scored and trained as: its ``arch_str`` with
    edges ``e21`` and ``e30`` exchanged. NASLib lists a cell's edges as 1-2, 1-3, 1-4, 2-3, 2-4,
    3-4 (``e10 e20 e30 e21 e31 e32``), NAS-Bench-201's string as ``e10 e20 e21 e30 e31 e32``, and
    the conversion to ``arch_str`` appears to have read one as the other. Evidence (this
    script's second table): hwnas's synflow of the exchanged cell agrees with NASLib's score
    (:func:`agree`) on all 491 rows of each dataset, of the cell as written on 37 %; the table's
    accuracies rank the written cells' 12-epoch accuracies in ``nb201_benchmark.csv.gz`` with
    tau 0.37-0.41 only. Parameter counts cannot tell: the two cells hold the same operations.
    Taus of the table's own columns against each other are unaffected."""
    from benchmarks.nb201_data import parse_arch

    cell = parse_arch(arch_str)
    cell["e21"], cell["e30"] = cell["e30"], cell["e21"]
    return cell


def nb201_taus(path: Path = ZERO_COST) -> dict[str, dict[str, float]]:
    """``{proxy: {dataset: tau}}`` of the precomputed columns against ``val_accuracy``."""
    rows = zero_cost_rows(path)
    out: dict[str, dict[str, float]] = {p: {} for p in NB201_PROXIES}
    for dataset in NB201_SETS:
        part = [r for r in rows if r["dataset"] == dataset]
        accuracy = np.array([float(r["val_accuracy"]) for r in part])
        for proxy in NB201_PROXIES:
            out[proxy][dataset] = tau(np.array([float(r[proxy]) for r in part]), accuracy)
    return out


def score_nb201(job: tuple[str, str]) -> dict[str, float]:
    """hwnas's data-free proxies of one zero-cost row ``(dataset, arch_str)``: synflow and Zen-score
    of the cell as NASLib scored it (:func:`zero_cost_cell`), and synflow of the cell as written.
    Each network is built from ``torch.manual_seed(0)``; the proxies see only the input's shape."""
    import torch

    from benchmarks.nb201_data import parse_arch
    from benchmarks.nb201_net import score_cell

    torch.set_num_threads(1)
    dataset, arch_str = job
    key = dataset.lower().removesuffix("-120")
    return {name: score_cell(proxy, cell, key, ZEN_BATCH)
            for name, proxy, cell in (("synflow", "synflow", zero_cost_cell(arch_str)),
                                      ("zen", "zen", zero_cost_cell(arch_str)),
                                      ("synflow_as_written", "synflow", parse_arch(arch_str)))}


def nb201_ours(jobs: int = 1, path: Path = NB201_OURS,
               zero_cost: Path = ZERO_COST) -> dict[tuple[str, str], dict[str, float]]:
    """``{(dataset, index): scores}`` of :func:`score_nb201` for every zero-cost row, computing
    (in ``jobs`` processes) and appending only the rows ``path`` lacks."""
    done: dict[tuple[str, str], dict[str, float]] = {}
    if path.is_file():
        with path.open() as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != NB201_OURS_FIELDS:
                raise ValueError(f"{path} has columns {reader.fieldnames}, expected "
                                 f"{NB201_OURS_FIELDS}; move it away to score afresh")
            done = {(r["dataset"], r["index"]): {f: float(r[f]) for f in NB201_OURS_FIELDS[2:]}
                    for r in reader}
    missing = [r for r in zero_cost_rows(zero_cost) if (r["dataset"], r["index"]) not in done]
    if not missing:
        return done
    new = not path.is_file()
    with path.open("a", newline="") as handle, ProcessPoolExecutor(
            jobs, get_context("spawn")) as pool:
        writer = csv.DictWriter(handle, fieldnames=NB201_OURS_FIELDS)
        if new:
            writer.writeheader()
        jobs_of = [(r["dataset"], r["arch_str"]) for r in missing]
        for i, (r, scores) in enumerate(zip(missing, pool.map(score_nb201, jobs_of,
                                                              chunksize=8)), 1):
            done[(r["dataset"], r["index"])] = scores
            writer.writerow({"dataset": r["dataset"], "index": r["index"],
                             **{f: f"{v:.10g}" for f, v in scores.items()}})
            if i % 100 == 0 or i == len(missing):
                handle.flush()
                print(f"scored {i}/{len(missing)} NAS-Bench-201 cells", file=sys.stderr,
                      flush=True)
    return done


def agree(ours: np.ndarray, naslib: np.ndarray) -> float:
    """Share of cells where our synflow and NASLib's agree: within :data:`AGREE`, or both say
    nothing flows (ours :data:`~nas.proxies.FLOOR`, NASLib's 0)."""
    from nas.proxies import FLOOR

    dead = (ours == FLOOR) & (naslib == 0.0)
    return float(np.mean(dead | (np.abs(ours - naslib) <= AGREE)))


def nb201_ours_taus(ours: dict[tuple[str, str], dict[str, float]],
                    zero_cost: Path = ZERO_COST) -> dict[str, dict[str, float]]:
    """Per dataset: tau of hwnas's synflow and zen against ``val_accuracy``, tau of our synflow
    against NASLib's, and the share of rows where they agree within :data:`AGREE`, for the
    cell as NASLib scored it and as ``arch_str`` writes it."""
    out: dict[str, dict[str, float]] = {}
    rows = zero_cost_rows(zero_cost)
    for dataset in NB201_SETS:
        part = [r for r in rows if r["dataset"] == dataset]
        accuracy = np.array([float(r["val_accuracy"]) for r in part])
        theirs = np.array([float(r["synflow"]) for r in part])
        mine = {f: np.array([ours[(dataset, r["index"])][f] for r in part])
                for f in NB201_OURS_FIELDS[2:]}
        out[dataset] = {
            "synflow": tau(mine["synflow"], accuracy), "zen": tau(mine["zen"], accuracy),
            "synflow_vs_naslib": tau(mine["synflow"], theirs),
            "agree": agree(mine["synflow"], theirs),
            "synflow_vs_naslib_as_written": tau(mine["synflow_as_written"], theirs),
            "agree_as_written": agree(mine["synflow_as_written"], theirs),
            "cells": len(part)}
    return out


def sample_archs(n: int, seed: int) -> list[str]:
    from nas.config import load_config
    from searchspaces.spaces import get_space

    cfg = load_config(CONFIG)
    space = get_space(cfg.space.name, 32, cfg.space.curated)
    rng = np.random.default_rng(seed)
    return [space.sample(rng).to_string() for _ in range(n)]


def quickstart(budget: Budget) -> Any:
    """The quickstart config with the validation's training budget."""
    from nas.config import load_config

    return load_config(CONFIG).with_overrides(**{
        "training.epochs": budget.epochs, "training.batch_size": budget.batch_size,
        "task.max_train": budget.max_train, "task.max_val": budget.max_val})


def read_cache(budget: Budget, path: Path = CACHE) -> dict[str, dict[str, float]]:
    """Cached measurements (accuracy, train seconds, scores, proxy seconds) at ``budget``."""
    if not path.is_file():
        return {}
    with path.open() as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CACHE_FIELDS:
            raise ValueError(f"{path} has columns {reader.fieldnames}, expected {CACHE_FIELDS}; "
                             "move it away to measure afresh")
        key = asdict(budget)
        return {r["arch"]: {f: float(r[f]) for f in CACHE_FIELDS[1 + len(key):]}
                for r in reader if all(int(r[f]) == v for f, v in key.items())}


_WORKER: dict[str, Any] = {}


def _start_worker(budget: Budget) -> None:
    """Per worker process: one thread, the task built once (its datasets cached per resolution)."""
    import torch

    from nas.tasks import make_task

    torch.set_num_threads(1)
    cfg = quickstart(budget)
    _WORKER.update(cfg=cfg, task=make_task(cfg.task, cfg.seed))


def measure(arch_text: str) -> dict[str, float]:
    """Brief-train one architecture and score it untrained with every proxy (in a worker)."""
    import torch

    from estimators.memory import memory_report
    from nas.proxies import score_model
    from nas.proxies.scorer import BATCH, minibatch
    from nas.tasks import train
    from nas.trial import trial_seed
    from searchspaces.genome import Architecture

    cfg, task = _WORKER["cfg"], _WORKER["task"]
    arch = Architecture.from_string(arch_text)
    reports: list[dict[str, float]] = []
    train(task, arch, cfg.training, trial_seed(cfg.seed, arch_text), torch.device("cpu"),
          lambda _epoch, metrics: reports.append(metrics))
    row = {"accuracy": reports[-1]["accuracy"], "train_seconds": reports[-1]["train_seconds"]}
    data = task.data(arch.resolution)
    counts = memory_report(arch, data.num_classes, data.in_channels)
    row.update(params=counts.params, flops=counts.macs)
    images, labels = minibatch(data.train, BATCH, cfg.seed)
    for proxy in PROXIES:
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = task.model(arch, data)  # the model build is part of a proxy's cost
        row[proxy] = score_model(proxy, model, images, labels, cfg.seed)
        row[f"{proxy}_seconds"] = time.perf_counter() - start
    return row


def measure_missing(archs: list[str], budget: Budget, jobs: int = 1,
                    path: Path = CACHE) -> dict[str, dict[str, float]]:
    """Measure every architecture not cached at ``budget`` in ``jobs`` worker processes, appending
    each row (flushed) as it arrives, so killing the run loses at most the ones in flight."""
    cache = read_cache(budget, path)
    missing = [a for a in dict.fromkeys(archs) if a not in cache]
    if not missing:
        return cache
    new = not path.is_file()
    with path.open("a", newline="") as handle, ProcessPoolExecutor(
            jobs, get_context("spawn"), _start_worker, (budget,)) as pool:
        writer = csv.DictWriter(handle, fieldnames=CACHE_FIELDS)
        if new:
            writer.writeheader()
        futures = {pool.submit(measure, arch): arch for arch in missing}
        for i, future in enumerate(as_completed(futures), 1):
            arch, row = futures[future], future.result()
            cache[arch] = row
            writer.writerow({"arch": arch, **asdict(budget),
                             **{f: f"{v:.10g}" if f in SCORED else f"{v:.6f}"
                                for f, v in row.items()}})
            handle.flush()
            print(f"measured {i}/{len(missing)}: accuracy {row['accuracy']:.3f} in "
                  f"{row['train_seconds']:.1f} s", file=sys.stderr, flush=True)
    return cache


def mbv2_taus(archs: list[str], cache: dict[str, dict[str, float]],
              seed: int = 0) -> dict[str, dict[str, float]]:
    """``{proxy or size count: tau_interval}`` of the cached scores against the accuracies."""
    accuracy = np.array([cache[a]["accuracy"] for a in archs])
    return {p: tau_interval(np.array([cache[a][p] for a in archs]), accuracy, seed)
            for p in SCORED}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Budget()
    parser.add_argument("--archs", type=int, default=100,
                        help="mbv2-small architectures to train and score (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=default.epochs)
    parser.add_argument("--max-train", type=int, default=default.max_train,
                        help=f"training images per epoch (default {default.max_train})")
    parser.add_argument("--batch-size", type=int, default=default.batch_size)
    parser.add_argument("--max-val", type=int, default=default.max_val,
                        help=f"validation images (default {default.max_val})")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--no-train", action="store_true",
                        help="use only the cached measurements among the sampled architectures")
    parser.add_argument("--json", type=Path, help="also write the tau table here")
    args = parser.parse_args(argv)
    if args.archs < 3:
        parser.error(f"--archs must be >= 3, got {args.archs}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    budget = Budget(args.epochs, args.max_train, args.batch_size, args.max_val)

    nb201 = nb201_taus()
    hwnas201 = nb201_ours_taus(nb201_ours(args.jobs))
    archs = sample_archs(args.archs, args.seed)
    cache = (read_cache(budget) if args.no_train
             else measure_missing(archs, budget, args.jobs))
    archs = [a for a in archs if a in cache]
    if len(archs) < 3:
        print(f"only {len(archs)} of the sampled architectures are measured at {budget}",
              file=sys.stderr)
        return 1
    mbv2 = mbv2_taus(archs, cache)
    accuracy = np.array([cache[a]["accuracy"] for a in archs])
    train_s = float(np.mean([cache[a]["train_seconds"] for a in archs]))
    seconds = {p: float(np.mean([cache[a][f"{p}_seconds"] for a in archs])) for p in PROXIES}
    quartiles = np.percentile(accuracy, [0, 25, 50, 75, 100])

    print(f"Kendall tau of proxy score vs accuracy: NAS-Bench-201 (491 cells, NASLib scores, "
          f"full-training validation accuracy) and mbv2-small ({len(archs)} sampled, "
          f"{budget.epochs} epoch(s) of {budget.max_train} digits in batches of "
          f"{budget.batch_size}, validated on {budget.max_val}; mean {train_s:.1f} s each; "
          f"accuracy min/quartiles/max {' / '.join(f'{q:.3f}' for q in quartiles)}; "
          f"{int(np.sum(accuracy <= 0.15))} at chance (<= 0.15)); mbv2-small tau with bootstrap "
          f"standard error and 95 % interval ({BOOTSTRAP} resamples)")
    print("| proxy | NB201 CIFAR-10 | NB201 CIFAR-100 | NB201 ImageNet16 | mbv2-small digits "
          "| 95 % interval | seconds per arch (mbv2-small) |")
    print("|---|---|---|---|---|---|---|")
    for proxy in (*PROXIES, *(p for p in NB201_PROXIES if p not in PROXIES)):
        cells = [f"{nb201[proxy][d]:.3f}" if proxy in nb201 else "-" for d in NB201_SETS]
        t = mbv2.get(proxy)
        ours = f"{t['tau']:.3f} ± {t['se']:.3f}" if t else "-"
        interval = f"[{t['low']:.3f}, {t['high']:.3f}]" if t else "-"
        secs = f"{seconds[proxy]:.2f}" if proxy in seconds else "-"
        print(f"| {proxy} | {' | '.join(cells)} | {ours} | {interval} | {secs} |")
    best = max(PROXIES, key=lambda p: mbv2[p]["tau"])
    print(f"best on mbv2-small: {best} (tau {mbv2[best]['tau']:.3f})")
    print(f"\nhwnas's own data-free proxies on the same 491 NAS-Bench-201 cells (the untrained "
          f"network of benchmarks/nb201_net.py, seed 0; e21 and e30 exchanged, see "
          f"zero_cost_cell), and how our synflow reproduces NASLib's (share within {AGREE} of "
          f"its log; tau)")
    print("| dataset | synflow tau | zen tau | synflow = NASLib's: share, tau | the same for "
          "arch_str as written |")
    print("|---|---|---|---|---|")
    for dataset, t in hwnas201.items():
        print(f"| {dataset} | {t['synflow']:.3f} | {t['zen']:.3f} | {t['agree']:.3f}, "
              f"{t['synflow_vs_naslib']:.3f} | {t['agree_as_written']:.3f}, "
              f"{t['synflow_vs_naslib_as_written']:.3f} |")
    if args.json:
        finite = {p: {d: v for d, v in t.items() if math.isfinite(v)} for p, t in nb201.items()}
        args.json.write_text(json.dumps({
            "nb201": finite, "nb201_hwnas": hwnas201, "mbv2_small": mbv2, "archs": len(archs),
            "budget": asdict(budget),
            "accuracy_quartiles": quartiles.tolist(), "proxy_seconds": seconds,
            "train_seconds_mean": train_s}, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
