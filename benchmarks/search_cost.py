"""What a CIFAR-10 search costs: device-seconds per candidate, and the projected cost of 500
candidates of 3 epochs each on the full training set.

Runs a real search (``configs/cifar10-gpu.yaml``: Ray Tune, ASHA, MLflow in a temporary SQLite
store) on CIFAR-10 read from ``--cifar-dir`` (the folder holding ``cifar-10-batches-py``), or on
50 000 synthetic images written in CIFAR-10's python-pickle batch format
(:func:`nas.synthetic_data.write_cifar10`; learnable, but not CIFAR-10's accuracy). On a GPU the
trials are packed as the config says (``gpus: 0.25``, four per GPU) and train on the whole
training split; on the CPU each trial gets one core and trains on ``--max-train`` images.

Figures, in GPU-seconds on a GPU and CPU-core-seconds on the CPU:

- **per candidate**: the search's wall-clock time x the devices it held (GPUs, or the cores Ray
  was given), divided by the candidates trained. Everything is in it: Ray and MLflow, starting
  workers, loading data, ASHA's early stops.
- **training per candidate-epoch**: a trial's ``train_seconds`` (train and validation passes)
  per epoch x its share of the device.
- **projected 500 x 3 epochs**: 500 x (3 x training per candidate-epoch, scaled to the full
  training split when ``--max-train`` cut it, + the rest of the per-candidate figure, the
  overhead). Every candidate is counted at 3 full epochs, although ASHA stops most of them
  sooner: an upper bound for the config's ``epochs: 3``.

    python benchmarks/search_cost.py                       # CPU here: 6 candidates, small
    python benchmarks/search_cost.py --cifar-dir ~/data/cifar10 --trials 16   # on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "configs" / "cifar10-gpu.yaml"
PROJECTED_CANDIDATES, PROJECTED_EPOCHS = 500, 3


def cost_figures(wall_s: float, devices: float, share: float, points: list[dict[str, Any]],
                 train_images: int, full_images: int) -> dict[str, float]:
    """The figures of the module docstring from a finished search's trained ``points`` (each
    with ``train_seconds`` and ``epochs``)."""
    if not points:
        raise ValueError("no candidate was trained: nothing to cost")
    per_candidate = wall_s * devices / len(points)
    train_s = float(np.mean([p["train_seconds"] for p in points])) * share
    per_epoch = float(np.mean([p["train_seconds"] / p["epochs"] for p in points])) * share
    overhead = max(per_candidate - train_s, 0.0)
    full_epoch = per_epoch * full_images / train_images
    projected = PROJECTED_CANDIDATES * (PROJECTED_EPOCHS * full_epoch + overhead)
    return {"per_candidate_s": per_candidate, "train_per_candidate_epoch_s": per_epoch,
            "overhead_per_candidate_s": overhead, "full_epoch_s": full_epoch,
            "projected_500x3_s": projected, "projected_500x3_h": projected / 3600}


def main(argv: list[str] | None = None) -> int:
    import torch
    import yaml

    from nas.config import validate_config
    from nas.search import run_search
    from nas.synthetic_data import write_cifar10

    gpus = torch.cuda.device_count()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-dir", default=None, help="folder holding cifar-10-batches-py")
    parser.add_argument("--synthetic-images", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=16 if gpus else 6)
    parser.add_argument("--epochs", type=int, default=3 if gpus else 1)
    parser.add_argument("--max-train", type=int, default=None,
                        help="training images per epoch (default: all on a GPU, 256 on a CPU)")
    parser.add_argument("--max-val", type=int, default=None,
                        help="validation images (default: all on a GPU, 128 on a CPU)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the config's on a GPU, 32 on a CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)

    raw = yaml.safe_load(CONFIG.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data_dir = args.cifar_dir
        if data_dir is None:
            data_dir = str(write_cifar10(folder / "cifar10", args.synthetic_images,
                                         np.random.default_rng(args.seed)))
        raw.update(name="search-cost", seed=args.seed, trials=args.trials,
                   storage_path=str(folder / "ray"))
        raw["task"].update(data_dir=data_dir, max_train=args.max_train or (None if gpus else 256),
                           max_val=args.max_val or (None if gpus else 128))
        raw["training"]["epochs"] = args.epochs
        if args.batch_size or not gpus:
            raw["training"]["batch_size"] = args.batch_size or 32
        if not gpus:
            raw["resources"].update(cpus=1, gpus=0)
        raw["tracking"]["uri"] = f"sqlite:///{folder / 'mlflow.db'}"
        config = validate_config(raw, str(CONFIG))
        # MLflow and Tune print to stdout; keep it for the results
        with contextlib.redirect_stdout(io.StringIO()):
            summary = run_search(config, tune_output=io.StringIO())
        from nas.data import make_datasets

        task = config.task
        full = len(make_datasets("cifar10", 32, data_dir=data_dir, val_fraction=task.val_fraction,
                                 seed=config.seed).train)
        used = min(full, task.max_train or full)

    share = config.resources.gpus if gpus else config.resources.cpus
    devices = gpus if gpus else os.cpu_count() or 1
    unit = "GPU" if gpus else "CPU-core"
    figures = cost_figures(summary.seconds, devices, share, summary.points, used, full)
    device = torch.cuda.get_device_name(0) if gpus else "CPU"
    out = {"device": device, "unit": f"{unit}-seconds", "devices": devices, "share": share,
           "data": "CIFAR-10" if args.cifar_dir else "synthetic, CIFAR-10 format",
           "trials": summary.trials, "trained": len(summary.points),
           "rejected": summary.rejected, "failed": summary.failed, "epochs": config.training.epochs,
           "train_images": used, "full_train_images": full,
           "batch_size": config.training.batch_size, "wall_s": summary.seconds, **figures}
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    print(f"device: {device} ({devices} {unit}{'s' if devices != 1 else ''}, "
          f"{share:g} per trial); data: {out['data']}")
    print(f"search: {summary.trials} trials ({len(summary.points)} trained, {summary.rejected} "
          f"rejected, {summary.failed} failed), {config.training.epochs} epochs of {used} of "
          f"{full} training images, batch {config.training.batch_size}, "
          f"{summary.seconds:.1f} s wall")
    print(f"per candidate: {figures['per_candidate_s']:.1f} {unit}-s (training "
          f"{figures['train_per_candidate_epoch_s']:.2f} {unit}-s per epoch, overhead "
          f"{figures['overhead_per_candidate_s']:.1f} {unit}-s)")
    print(f"projected {PROJECTED_CANDIDATES} candidates x {PROJECTED_EPOCHS} epochs of {full} "
          f"images: {figures['projected_500x3_s']:.0f} {unit}-s = "
          f"{figures['projected_500x3_h']:.2f} {unit}-hours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
