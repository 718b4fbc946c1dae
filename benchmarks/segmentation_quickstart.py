"""What mean IoU a brief search-style training reaches on the synthetic segmentation scenes.

Writes the synthetic VOC-layout set (``--images`` scenes of 64x64, seed 0) to a temporary
folder, then trains one candidate with the search's own loop (``nas.tasks.train``, streaming
path, AdamW under a cosine decay over all epochs) at ``--resolution`` and prints every epoch's
validation ``miou``, pixel accuracy and losses, and the seconds taken. For scale it also prints
the mIoU of predicting background everywhere on the same validation split. The default
candidate is the ``mbv2-small`` space's baseline with its LR-ASPP head, at the resolution asked.

The defaults (batch 8, lr 0.005) are what a segmentation quickstart config should use: with the
search's defaults (batch 16, lr 0.002) 3 epochs are 45 steps and the baseline still predicts
background everywhere (mIoU 0.221, the floor); at batch 8, lr 0.005 it reaches 0.250 after 3
epochs and 0.416 after 6 (0.292 with ``--kaiming-pred``), on one core in ~25 s and ~45 s.

    python benchmarks/segmentation_quickstart.py                    # 3 epochs, r32, 300 images
    python benchmarks/segmentation_quickstart.py --epochs 6 --resolution 24 --json
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
from detection_quickstart import kaiming_pred  # noqa: E402  (this folder is on sys.path)

from nas.config import TaskConfig, TrainingConfig  # noqa: E402
from nas.datasets.synthetic import SceneSpec, write_segmentation_dataset  # noqa: E402
from nas.segmentation import SegmentationTask, confusion_matrix, scores  # noqa: E402
from nas.tasks import train  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402
from searchspaces.spaces import get_space  # noqa: E402


def background_miou(task: SegmentationTask, resolution: int) -> float:
    """mIoU of a prediction of background (class 0) at every pixel of the validation split."""
    data = task.data(resolution)
    masks = torch.stack([data.val[i][1] for i in range(len(data.val))])
    return scores(confusion_matrix(torch.zeros_like(masks), masks, data.num_classes))["miou"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="scenes written (train + val)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--arch", help="architecture string (default: the mbv2-small seg "
                        "baseline at --resolution)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kaiming-pred", action="store_true",
                        help="keep build_model's Kaiming init of the head's prediction convs "
                        "(the task re-draws them near zero)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.arch:
        arch = Architecture.from_string(args.arch)
    else:
        baseline = get_space("mbv2-small", 8, True, head="seg").baseline()
        arch = dataclasses.replace(baseline, resolution=args.resolution)
    training = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              data_path="stream")
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_segmentation_dataset(Path(tmp) / "voc", SceneSpec(num_images=args.images))
        task = SegmentationTask(TaskConfig(kind="segmentation", dataset="voc-segmentation",
                                           data_dir=str(root)), seed=args.seed)
        if args.kaiming_pred:  # the backbone's initialisation instead of PRED_STD
            task.model = kaiming_pred(task.model)
        start = time.perf_counter()
        train(task, arch, training, args.seed, torch.device(args.device),
              lambda epoch, m: rows.append({"epoch": epoch, **m}))
        seconds = time.perf_counter() - start
        data = task.data(arch.resolution)
        floor = background_miou(task, arch.resolution)
    result = {"arch": arch.to_string(), "kaiming_pred": args.kaiming_pred, "images": args.images,
              "train": len(data.train), "val": len(data.val), "classes": data.num_classes,
              "resolution": arch.resolution, "epochs": args.epochs, "seconds": round(seconds, 2),
              "background_miou": round(floor, 4),
              "history": [{k: round(v, 4) for k, v in r.items()} for r in rows]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{arch.to_string()}\n{len(data.train)} train / {len(data.val)} val scenes, "
          f"{data.num_classes} classes, resolution {arch.resolution}, device {args.device}, "
          f"{args.threads} thread(s)")
    print(f"{'epoch':>5}{'train_loss':>12}{'val_loss':>10}{'miou':>8}{'pix_acc':>9}{'s':>8}")
    for r in rows:
        print(f"{r['epoch']:>5}{r['train_loss']:>12.4f}{r['val_loss']:>10.4f}{r['miou']:>8.4f}"
              f"{r['pixel_accuracy']:>9.4f}{r['train_seconds']:>8.1f}")
    print(f"background everywhere: miou {floor:.4f}; total {seconds:.1f} s (data included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
