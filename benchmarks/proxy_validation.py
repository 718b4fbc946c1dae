"""How well does each trainability proxy rank architectures by accuracy? Kendall tau per proxy.

(a) NAS-Bench-201, ``data/nb201/nb201_zero_cost_491.csv.gz``: NASLib's precomputed proxy scores
    of 491 cells with their validation accuracy after full training, per dataset (CIFAR-10,
    CIFAR-100, ImageNet16-120). Published scores, our rank statistics: it checks which proxies
    are worth having, not our implementations (NASLib has no NASWOT or Zen-score column).
(b) ``mbv2-small`` (curated, P = 32), ``--archs`` architectures sampled uniformly: each trained
    briefly on digits the way the quickstart's trials are (``configs/quickstart.yaml``,
    ``nas.tasks.train``), but shorter by default (``--epochs 1``: one epoch of 960 images, where the
    quickstart has 3 epochs of 960 images: at the quickstart's length one network took
    150-240 s on this project's shared 2-core machine), and scored by every proxy in
    :data:`nas.proxies.PROXIES` on one minibatch of 32 training images (the minibatch and the
    initialisation that ``hwnas search --strategy zeroshot`` uses). Trained accuracies are
    cached in ``data/proxy_validation_mbv2_small.csv`` (one row per architecture and training
    length, appended as they finish), so a rerun or a larger ``--archs`` only trains what is
    missing.

Run from the repository root::

    python benchmarks/proxy_validation.py --archs 100          # trains what is not cached
    python benchmarks/proxy_validation.py --archs 100 --json tau.json
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
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.proxies import PROXIES  # noqa: E402

ZERO_COST = ROOT / "benchmarks" / "data" / "nb201" / "nb201_zero_cost_491.csv.gz"
CACHE = ROOT / "benchmarks" / "data" / "proxy_validation_mbv2_small.csv"
CONFIG = ROOT / "configs" / "quickstart.yaml"
NB201_SETS = ("cifar10", "cifar100", "ImageNet16-120")
NB201_PROXIES = ("synflow", "snip", "grad_norm", "jacov", "fisher", "grasp", "epe_nas",
                 "l2_norm", "plain", "flops", "params")
COUNTS = ("params", "flops")  # size baselines, as NASLib's columns (flops: MACs here)
CACHE_FIELDS = ("arch", "epochs", "max_train", "accuracy", "train_seconds")


def tau(x: np.ndarray, y: np.ndarray) -> float:
    return float(kendalltau(x, y).statistic)


def nb201_taus(path: Path = ZERO_COST) -> dict[str, dict[str, float]]:
    """``{proxy: {dataset: tau}}`` of the precomputed columns against ``val_accuracy``."""
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))
    out: dict[str, dict[str, float]] = {p: {} for p in NB201_PROXIES}
    for dataset in NB201_SETS:
        part = [r for r in rows if r["dataset"] == dataset]
        accuracy = np.array([float(r["val_accuracy"]) for r in part])
        for proxy in NB201_PROXIES:
            out[proxy][dataset] = tau(np.array([float(r[proxy]) for r in part]), accuracy)
    return out


def sample_archs(n: int, seed: int) -> list[str]:
    from nas.config import load_config
    from searchspaces.spaces import get_space

    cfg = load_config(CONFIG)
    space = get_space(cfg.space.name, 32, cfg.space.curated)
    rng = np.random.default_rng(seed)
    return [space.sample(rng).to_string() for _ in range(n)]


def quickstart(epochs: int, max_train: int) -> Any:
    """The quickstart config with the validation's training length."""
    from nas.config import load_config

    return load_config(CONFIG).with_overrides(**{"training.epochs": epochs,
                                                 "task.max_train": max_train})


def read_cache(epochs: int, max_train: int, path: Path = CACHE) -> dict[str, dict[str, float]]:
    """Cached accuracies of one training length."""
    if not path.is_file():
        return {}
    with path.open() as handle:
        return {r["arch"]: {"accuracy": float(r["accuracy"]),
                            "train_seconds": float(r["train_seconds"])}
                for r in csv.DictReader(handle)
                if int(r["epochs"]) == epochs and int(r["max_train"]) == max_train}


def train_missing(archs: list[str], epochs: int, max_train: int,
                  path: Path = CACHE) -> dict[str, dict[str, float]]:
    """Brief-train every architecture not in the cache, appending each as it finishes."""
    import torch

    from nas.tasks import make_task, train
    from nas.trial import trial_seed
    from searchspaces.genome import Architecture

    cache = read_cache(epochs, max_train, path)
    missing = [a for a in archs if a not in cache]
    if not missing:
        return cache
    cfg = quickstart(epochs, max_train)
    task = make_task(cfg.task, cfg.seed)
    torch.set_num_threads(1)
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CACHE_FIELDS)
        if new:
            writer.writeheader()
        for i, arch in enumerate(missing, 1):
            reports: list[dict[str, float]] = []
            train(task, Architecture.from_string(arch), cfg.training,
                  trial_seed(cfg.seed, arch), torch.device("cpu"),
                  lambda _epoch, metrics, out=reports: out.append(metrics))
            last = reports[-1]
            cache[arch] = {"accuracy": last["accuracy"], "train_seconds": last["train_seconds"]}
            writer.writerow({"arch": arch, "epochs": epochs, "max_train": max_train,
                             "accuracy": f"{last['accuracy']:.6f}",
                             "train_seconds": f"{last['train_seconds']:.3f}"})
            handle.flush()
            print(f"trained {i}/{len(missing)}: accuracy {last['accuracy']:.3f} in "
                  f"{last['train_seconds']:.1f} s", file=sys.stderr)
    return cache


def proxy_scores(archs: list[str], cfg: Any) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every proxy's score of every architecture (``{proxy: scores}``, with the parameter and
    MAC counts as the size baselines every proxy should beat) and its mean seconds per
    architecture (model build included)."""
    import torch

    from estimators.memory import memory_report
    from nas.proxies import score_model
    from nas.proxies.scorer import BATCH, minibatch
    from nas.tasks import make_task
    from searchspaces.genome import Architecture

    task = make_task(cfg.task, cfg.seed)
    torch.set_num_threads(1)
    scores: dict[str, list[float]] = {p: [] for p in (*PROXIES, *COUNTS)}
    seconds = dict.fromkeys(PROXIES, 0.0)
    for arch_text in archs:
        arch = Architecture.from_string(arch_text)
        data = task.data(arch.resolution)
        counts = memory_report(arch, data.num_classes, data.in_channels)
        scores["params"].append(counts.params)
        scores["flops"].append(counts.macs)
        images, labels = minibatch(data.train, BATCH, cfg.seed)
        for proxy in PROXIES:
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = task.model(arch, data)
            scores[proxy].append(score_model(proxy, model, images, labels, cfg.seed))
            seconds[proxy] += time.perf_counter() - start
    return ({p: np.array(v) for p, v in scores.items()},
            {p: s / max(len(archs), 1) for p, s in seconds.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=100,
                        help="mbv2-small architectures to train and score (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    parser.add_argument("--max-train", type=int, default=960,
                        help="training images per epoch (default 960)")
    parser.add_argument("--no-train", action="store_true",
                        help="use only the cached accuracies among the sampled architectures")
    parser.add_argument("--json", type=Path, help="also write the tau table here")
    args = parser.parse_args(argv)
    if args.archs < 3:
        parser.error(f"--archs must be >= 3, got {args.archs}")

    nb201 = nb201_taus()
    archs = sample_archs(args.archs, args.seed)
    cache = (read_cache(args.epochs, args.max_train) if args.no_train
             else train_missing(archs, args.epochs, args.max_train))
    archs = [a for a in archs if a in cache]
    accuracy = np.array([cache[a]["accuracy"] for a in archs])
    scores, seconds = proxy_scores(archs, quickstart(args.epochs, args.max_train))
    mbv2 = {p: tau(s, accuracy) for p, s in scores.items()}
    train_s = float(np.mean([cache[a]["train_seconds"] for a in archs]))

    print(f"Kendall tau of proxy score vs accuracy: NAS-Bench-201 (491 cells, NASLib scores, "
          f"full-training validation accuracy) and mbv2-small ({len(archs)} sampled, trained "
          f"{args.epochs} epoch(s) of {args.max_train} digits, mean {train_s:.1f} s each; accuracy "
          f"{accuracy.min():.3f}-{accuracy.max():.3f})")
    print("| proxy | NB201 CIFAR-10 | NB201 CIFAR-100 | NB201 ImageNet16 | mbv2-small digits "
          "| seconds per arch (mbv2-small) |")
    print("|---|---|---|---|---|---|")
    for proxy in (*PROXIES, *(p for p in NB201_PROXIES if p not in PROXIES)):
        cells = [f"{nb201[proxy][d]:.3f}" if proxy in nb201 else "-" for d in NB201_SETS]
        ours = f"{mbv2[proxy]:.3f}" if proxy in mbv2 else "-"
        secs = f"{seconds[proxy]:.2f}" if proxy in seconds else "-"
        print(f"| {proxy} | {' | '.join(cells)} | {ours} | {secs} |")
    best = max(PROXIES, key=lambda p: mbv2[p])
    print(f"best on mbv2-small: {best} (tau {mbv2[best]:.3f})")
    if args.json:
        finite = {p: {d: v for d, v in t.items() if math.isfinite(v)} for p, t in nb201.items()}
        args.json.write_text(json.dumps({
            "nb201": finite, "mbv2_small": mbv2, "archs": len(archs),
            "proxy_seconds": seconds, "train_seconds_mean": train_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
