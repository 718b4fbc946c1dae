"""Training throughput of packed trials: img/s summed over 1, 2, 4 and 8 trials sharing one
device, in one run, so the figures are ratios on the same machine.

Each trial is its own process (as Ray runs them), on the device every process shares, with its
memory capped at its share (``nas.packing.limit_memory``: 1/N of the GPU for N trials). Each
trains the space's baseline at width 0.5 and 32 px (MobileNetV2-0.5 on the mbv2-small skeleton,
channels rounded to 8) with the search's own training function (``nas.tasks.train``) on
learnable synthetic 32 px images held in memory. Every process first trains a few batches
untimed (CUDA context, cuDNN autotuning), waits for the others, then trains ``--epochs`` epochs
timed; a trial's images are its epochs x its full batches, and the sum over trials is divided
by the time from the first start to the last finish. The validation pass after each epoch is
one batch (it is in the time). Without a GPU it runs small on the CPU, one thread per process,
and says CPU.

    python benchmarks/gpu_throughput.py                       # CPU here: small sizes
    python benchmarks/gpu_throughput.py --batch-size 512      # on a GPU
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Job:
    device: str
    share: float  # of the device: 1 / packed trials
    train_images: int
    batch_size: int
    epochs: int
    seed: int


def candidate() -> Any:
    """MobileNetV2-0.5 at 32 px: the mbv2-small baseline, width 0.5, channels rounded to 8."""
    from searchspaces.spaces import get_space

    space = get_space("mbv2-small", 8, True)
    return space.from_choices({**space.to_choices(space.baseline()), "width_mult": 0.5,
                               "resolution": 32})


def in_memory_task(train_images: int, val_images: int, seed: int) -> Any:
    """A classification task whose data is synthetic 32 px CIFAR-like images in memory."""
    from dataclasses import dataclass as dc

    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    from nas.config import TaskConfig
    from nas.data import CIFAR10_MEAN, CIFAR10_STD, DataSplit
    from nas.synthetic_data import CIFAR10_CLASSES, class_images
    from nas.tasks import ClassificationTask

    rng = np.random.default_rng(seed)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def dataset(n: int) -> TensorDataset:
        labels = rng.permutation(np.arange(n) % 10)
        images = torch.from_numpy(class_images(labels, 32, rng)).float() / 255
        return TensorDataset((images - mean) / std, torch.from_numpy(labels))

    split = DataSplit(dataset(train_images), dataset(val_images), 10, 3, CIFAR10_CLASSES)

    @dc
    class InMemoryTask(ClassificationTask):
        def data(self, resolution: int) -> DataSplit:
            return split

    return InMemoryTask(TaskConfig(dataset="cifar10"), seed)


def _trial(job: Job, barrier: Any, results: Any) -> None:
    """One packed trial: warm up, wait for the others, train timed, send (images, start, end)."""
    import torch

    from nas.config import TrainingConfig
    from nas.packing import limit_memory
    from nas.tasks import train

    device = torch.device(job.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    limit_memory(job.share, device)
    arch = candidate()
    task = in_memory_task(job.train_images, job.batch_size, job.seed)
    warm = in_memory_task(4 * job.batch_size, job.batch_size, job.seed)
    train(warm, arch, TrainingConfig(epochs=1, batch_size=job.batch_size), job.seed, device,
          lambda epoch, metrics: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    barrier.wait()
    start = time.time()
    train(task, arch, TrainingConfig(epochs=job.epochs, batch_size=job.batch_size), job.seed,
          device, lambda epoch, metrics: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.time()
    images = job.epochs * (job.train_images // job.batch_size) * job.batch_size
    results.put((images, start, end))


def packed(n: int, job: Job) -> dict[str, float]:
    """Run ``n`` trials at once; their summed img/s and each one's."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_trial, args=(job, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    rows = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a packed trial exited with {p.exitcode}")
    wall = max(end for _, _, end in rows) - min(start for _, start, _ in rows)
    per = [images / (end - start) for images, start, end in rows]
    return {"trials": n, "img_per_s": sum(images for images, _, _ in rows) / wall,
            "per_trial_img_per_s": sum(per) / n, "seconds": wall}


def main(argv: list[str] | None = None) -> int:
    import torch

    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if cuda else "cpu")
    parser.add_argument("--train-images", type=int, default=None,
                        help="per trial (default 25600 on a GPU, 256 on the CPU)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 512 on a GPU, 32 on the CPU")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (2 GPU, 1 CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not cuda:
        parser.error("--device cuda, but torch sees no CUDA GPU")
    gpu = args.device == "cuda"
    batch = args.batch_size or (512 if gpu else 32)
    images = args.train_images or (25_600 if gpu else 256)
    epochs = args.epochs or (2 if gpu else 1)
    if images < batch or min(args.packs) < 1:
        parser.error("need --train-images >= --batch-size and packs >= 1")
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    arch = candidate()
    from estimators.memory import memory_report

    report = memory_report(arch, 10, 3)
    print(f"gpu_throughput on {name}: {arch.to_string()} ({report.params / 1e6:.2f} M params, "
          f"{report.macs / 1e6:.1f} M MACs), {images} images x {epochs} epochs per trial, batch "
          f"{batch}", file=sys.stderr)
    rows = []
    for n in args.packs:
        job = Job(args.device, 1.0 / n, images, batch, epochs, args.seed)
        rows.append(packed(n, job))
        print(f"  {n} packed: {rows[-1]['img_per_s']:.0f} img/s", file=sys.stderr)
    one = next((r["img_per_s"] for r in rows if r["trials"] == 1), None)
    for r in rows:
        r["vs_one"] = r["img_per_s"] / one if one else None
    out = {"device": name, "arch": arch.to_string(), "params": report.params,
           "macs": report.macs, "batch_size": batch, "train_images": images, "epochs": epochs,
           "rows": rows}
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    print(f"device: {name}{'' if gpu else ' (CPU: one thread per trial, small sizes)'}")
    print("packed trials | img/s in all | img/s per trial | x one trial")
    for r in rows:
        ratio = f"{r['vs_one']:.2f}" if r["vs_one"] is not None else "-"
        print(f"{r['trials']:>13} | {r['img_per_s']:>12.0f} | {r['per_trial_img_per_s']:>15.0f}"
              f" | {ratio:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
