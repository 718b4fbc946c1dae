"""How long one search trial trains, per device: seconds per epoch and the accuracy reached.

Trains the same sampled architectures of a space with the search's own training loop
(``nas.tasks.train``) on each device in turn, side by side in one run, and prints one row per
architecture and device. Use it to size ``training`` and ``resources`` in a search config.

    python benchmarks/trial_speed.py --devices cpu --archs 2 --epochs 2
    python benchmarks/trial_speed.py --devices cpu,cuda --archs 3 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import TaskConfig, TrainingConfig  # noqa: E402
from nas.tasks import make_task, train  # noqa: E402
from searchspaces.spaces import get_space  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv2-small")
    parser.add_argument("--parallelism-factor", type=int, default=32)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-train", type=int, default=960)
    parser.add_argument("--archs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
