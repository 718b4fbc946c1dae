"""What the synthetic detection and segmentation sets cost: writing them, reading and checking
them, and one pass over the training split, with images decoded once up front (the default for
sets that fit in ``PRELOAD_BYTES``) and per item.

Trials load data in the training process, so the per-item time is paid on every item of every
epoch of every trial. Everything is written to a temporary folder; one torch thread.

    python benchmarks/dataset_speed.py                      # about 15 s on 2 busy cores
    python benchmarks/dataset_speed.py --images 600 --size 96 --resolution 64 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nas.datasets import _common, make_detection_datasets, make_segmentation_datasets  # noqa: E402
from nas.datasets.synthetic import (  # noqa: E402
    SceneSpec,
    write_detection_dataset,
    write_segmentation_dataset,
)


def _seconds(call: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()  # type: ignore[operator]
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64, help="side of the written images")
    parser.add_argument("--resolution", type=int, default=64, help="side handed to the model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = dataclasses.replace(SceneSpec(), num_images=args.images, image_size=args.size)
    rows, default_budget = [], _common.PRELOAD_BYTES
    with tempfile.TemporaryDirectory() as tmp:
        for task, write, make in (("detection", write_detection_dataset, make_detection_datasets),
                                  ("segmentation", write_segmentation_dataset,
                                   make_segmentation_datasets)):
            write_s, root = _seconds(lambda: write(Path(tmp) / task, spec, seed=0))  # noqa: B023
            mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
            for mode, budget in (("preloaded", default_budget), ("per item", 0)):
                _common.PRELOAD_BYTES = budget
                read_s, split = _seconds(lambda: make(args.resolution, data_dir=root))  # noqa: B023
                train = split.train
                epoch_s, _ = _seconds(lambda: [train[i] for i in range(len(train))])  # noqa: B023
                _common.PRELOAD_BYTES = default_budget
                rows.append({"task": task, "mode": mode, "write_s": round(write_s, 3),
                             "disk_mb": round(mb, 2), "read_s": round(read_s, 3),
                             "items": len(train), "epoch_s": round(epoch_s, 3),
                             "ms_per_item": round(1e3 * epoch_s / len(train), 3)})
    if args.json:
        print(json.dumps({"images": args.images, "size": args.size,
                          "resolution": args.resolution, "rows": rows}))
        return 0
    print(f"{args.images} scenes of {args.size}x{args.size}, model resolution {args.resolution}")
    print(f"{'task':<13}{'decode':<11}{'write s':>8}{'MB':>7}{'read s':>8}{'epoch s':>9}"
          f"{'ms/item':>9}")
    for r in rows:
        print(f"{r['task']:<13}{r['mode']:<11}{r['write_s']:>8.2f}{r['disk_mb']:>7.2f}"
              f"{r['read_s']:>8.2f}{r['epoch_s']:>9.3f}{r['ms_per_item']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
