"""Does the in-memory fast path trade accuracy for speed? Fast path vs the streaming path.

Trains the same candidate with the search's own loop (``nas.tasks.train``) once per seed on
each path, the same epochs, and prints per dataset the median final validation accuracy of
each path, their difference in points, and the training throughput (img/s) of each and its
ratio, all from one run. The goal (issue 13): the fast path within 0.5 points of the
streaming path, median of 3 seeds, on digits and on a CIFAR-10 subset.

Real CIFAR-10 is read from ``--cifar-dir`` (the folder holding ``cifar-10-batches-py``);
without it, a synthetic dataset is written in CIFAR-10's python-pickle batch format (ten
classes of smooth colour patterns, shifted, mirrored and noisy; see :func:`synthetic_cifar`)
and the output says so. Nothing is downloaded.

    python benchmarks/fastpath_accuracy.py                      # digits + synthetic CIFAR-10
    python benchmarks/fastpath_accuracy.py --cifar-dir ~/data --device cuda
    python benchmarks/fastpath_accuracy.py --fast "" --fast augment=auto,label_smoothing=0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import TaskConfig, TrainingConfig  # noqa: E402
from nas.data import write_cifar10  # noqa: E402
from nas.tasks import make_task, train  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402

# A small MobileNetV2-style candidate of the mbv2-small kind (stride-1 stem): big enough to
# learn both datasets in a few epochs, small enough for seconds per epoch on one CPU core.
CANDIDATE = ("r24_w1.0_d8:stem_c16_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e4_c24_r2_s2-"
             "ibn_k3_e4_c32_r2_s2-ibn_k3_e4_c64_r1_s2-head_c128")


def synthetic_cifar(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 ``(3, 32, 32)`` images of ten classes and their labels.

    Each class is a smooth random colour pattern (8x8 noise upsampled); an image is its class
    pattern shifted by up to 4 px, mirrored half of the time, with random contrast and
    per-pixel noise, so a network has to learn shift- and mirror-tolerant features, as on
    photos; no class is learnable from mean colour alone (patterns share their mean).
    """
    coarse = torch.from_numpy(rng.normal(size=(10, 3, 8, 8)).astype(np.float32))
    templates = torch.nn.functional.interpolate(coarse, size=(40, 40), mode="bicubic",
                                                align_corners=False)
    templates = (templates - templates.mean((1, 2, 3), keepdim=True)).numpy()
    labels = rng.integers(0, 10, size=count)
    dy, dx = rng.integers(0, 9, size=(2, count))
    images = np.empty((count, 3, 32, 32), dtype=np.float32)
    for i in range(count):
        image = templates[labels[i], :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        images[i] = image[:, :, ::-1] if rng.random() < 0.5 else image
    images *= rng.uniform(0.5, 1.5, size=(count, 1, 1, 1)).astype(np.float32)
    images += rng.normal(scale=1.0, size=images.shape).astype(np.float32)
    pixels = np.clip(128 + 40 * images, 0, 255).round().astype(np.uint8)
    return pixels, labels


def _overrides(text: str) -> dict[str, Any]:
    """``FIELD=VALUE[,FIELD=VALUE...]`` training overrides (``""``: none)."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in TrainingConfig.model_fields or not value:
            raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with a training field, "
                                             f"got {item!r}")
        try:
            out[key] = json.loads(value)  # numbers, true/false, null
        except ValueError:
            out[key] = value
    return out


def _run(task: Any, arch: Architecture, training: TrainingConfig, seed: int,
         device: torch.device) -> dict[str, float]:
    epochs: list[dict[str, float]] = []
    train(task, arch, training, seed, device, lambda epoch, metrics: epochs.append(metrics))
    # the first epoch of a path includes one-off costs (holding the data, cuDNN autotuning)
    later = epochs[1:] or epochs
    return {"accuracy": epochs[-1]["accuracy"],
            "images_per_second": statistics.median(m["images_per_second"] for m in later)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=CANDIDATE, help="candidate architecture string")
    parser.add_argument("--datasets", default="digits,cifar10")
    parser.add_argument("--cifar-dir", default=None, help="folder holding a real "
                        "cifar-10-batches-py (default: write a synthetic one)")
    parser.add_argument("--synthetic-images", type=int, default=3000)
    parser.add_argument("--max-train", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="the streaming path's batch "
                        "and the base batch of --lr")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fast", type=_overrides, action="append", default=[],
                        help="a fast-path variant: FIELD=VALUE[,FIELD=VALUE] training overrides "
                        "(memory_batch_size=64,augment=crop_flip); repeat to compare several "
                        "variants against one set of streaming runs (default: the defaults)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA GPU")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    arch = Architecture.from_string(args.arch)
    seeds = [int(s) for s in args.seeds.split(",")]
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "asha": False}
    paths = {"stream": TrainingConfig(**common, data_path="stream")}
    for variant in args.fast or [{}]:
        name = "fast" + (f"[{','.join(f'{k}={v}' for k, v in variant.items())}]"
                         if variant else "")
        paths[name] = TrainingConfig(**common, data_path="memory", **variant)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            source, data_dir = "sklearn", None
            if dataset == "cifar10":
                data_dir, source = args.cifar_dir, "real CIFAR-10 from --cifar-dir"
                if data_dir is None:
                    images, labels = synthetic_cifar(args.synthetic_images,
                                                     np.random.default_rng(0))
                    write_cifar10(scratch, images, labels, [f"class{i}" for i in range(10)])
                    data_dir, source = scratch, (f"SYNTHETIC data in CIFAR-10's pickle-batch "
                                                 f"format ({args.synthetic_images} images), "
                                                 "not real CIFAR-10")
            task = make_task(TaskConfig(dataset=dataset, data_dir=data_dir, val_fraction=0.25,
                                        max_train=args.max_train), 0)
            runs = {name: [_run(task, arch, training, seed, device) for seed in seeds]
                    for name, training in paths.items()}
            stream = runs["stream"]
            for name, results in runs.items():
                accuracy = [r["accuracy"] for r in results]
                median = statistics.median(accuracy)
                img_s = statistics.median(r["images_per_second"] for r in results)
                rows.append({
                    "dataset": dataset, "path": name, "source": source, "accuracy": accuracy,
                    "median": median, "img_s": img_s,
                    "points": 100 * (median - statistics.median(r["accuracy"] for r in stream)),
                    "speedup": img_s / statistics.median(r["images_per_second"]
                                                         for r in stream)})
    settings = {"arch": args.arch, "epochs": args.epochs, "seeds": seeds,
                "device": args.device, "threads": args.threads, "max_train": args.max_train,
                "paths": {name: training.model_dump() for name, training in paths.items()}}
    if args.json:
        print(json.dumps({"settings": settings, "rows": rows}))
        return 0
    print(f"candidate {args.arch}\n{args.epochs} epochs, seeds {seeds}, {args.device}"
          f" ({args.threads} thread(s)), stream batch {args.batch_size} lr {args.lr:g}, "
          f"{args.max_train} training images at most")
    print(f"{'dataset':>8} {'path':<40} {'median acc':>10} {'points':>7} {'img/s':>7} "
          f"{'ratio':>6}  per-seed accuracy")
    for r in rows:
        print(f"{r['dataset']:>8} {r['path']:<40} {r['median']:>10.4f} {r['points']:>+7.2f} "
              f"{r['img_s']:>7.0f} {r['speedup']:>6.2f}  "
              f"{' '.join(f'{a:.4f}' for a in r['accuracy'])}")
    for source in dict.fromkeys(r["source"] for r in rows):
        print(f"data: {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
