"""Does a search's brief training teach a detector anything? mAP@0.5 after a quickstart budget.

Writes the synthetic presence set (:data:`nas.datasets.synthetic.PRESENCE`: a 'person'
triangle among circle and square distractors, 64x64, no person in most images) and trains the
detection space's baseline with the search's own loop (``nas.tasks.train``, streaming, AdamW,
cosine decay) for the given epochs, printing each epoch's map50 and losses. Two references
frame the figure: the untrained network, and a data prior that predicts, in every image, one
box of the training set's mean size at the mean centre (what a detector that ignores its input
can score). The first heat-map logits' spread is printed too (``--kaiming-pred`` shows why the
task re-draws the prediction convs).

The defaults (batch 8, lr 0.01) are what a detection quickstart config should use: with the
search's defaults (batch 16, lr 0.002) 3 epochs are 45 steps, too few for a CenterNet head.

    python benchmarks/detection_quickstart.py                          # 300 images, r32, 3 epochs
    python benchmarks/detection_quickstart.py --scales 1 --resolution 24 --batch-size 16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import TaskConfig, TrainingConfig  # noqa: E402
from nas.datasets import detection_collate  # noqa: E402
from nas.datasets.synthetic import PRESENCE, write_detection_dataset  # noqa: E402
from nas.detection import DetectionTask  # noqa: E402
from nas.detection_metrics import mean_average_precision  # noqa: E402
from nas.tasks import train  # noqa: E402
from searchspaces.model import head_predictions  # noqa: E402
from searchspaces.spaces import get_space  # noqa: E402


def prior_map(data: object) -> float:
    """mAP@0.5 of one box per image at the training set's mean box (centre and size)."""
    boxes = torch.cat([data.train[i][1]["boxes"] for i in range(len(data.train))])
    mean = boxes.mean(0)
    truths = [data.val[i][1] for i in range(len(data.val))]
    guesses = [{"boxes": mean[None], "scores": torch.ones(1), "labels": torch.zeros(1,
                                                                                    dtype=torch.int64)}
               for _ in truths]
    return mean_average_precision(guesses, truths, data.num_classes)["map"]


def kaiming_pred(build: Any) -> Any:
    """``build`` (a task's ``model``) with the head's prediction convs re-drawn at the
    backbone's Kaiming scale."""

    def model(arch: Any, data: Any) -> torch.nn.Module:
        net = build(arch, data)
        for conv in head_predictions(net):
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out")
        return net

    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--scales", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kaiming-pred", action="store_true",
                        help="re-draw the heads' prediction convs at the backbone's Kaiming scale "
                        "(build_model draws them near zero, as CenterNet does)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        spec = dataclasses.replace(PRESENCE, num_images=args.images)
        root = write_detection_dataset(Path(tmp) / "presence", spec, seed=args.seed)
        task = DetectionTask(TaskConfig(kind="detection", dataset="coco-detection",
                                        data_dir=str(root)), seed=args.seed)
        arch = dataclasses.replace(get_space("mbv2-small", 8, True, head="det").baseline(),
                                   resolution=args.resolution, head_scales=args.scales)
        data = task.data(args.resolution)
        print(f"{arch.to_string()}\n{len(data.train)} train / {len(data.val)} val images at "
              f"r{args.resolution}; batch {args.batch_size}, lr {args.lr}, {args.epochs} epochs")
        torch.manual_seed(args.seed)
        if args.kaiming_pred:  # the backbone's initialisation instead of PRED_STD
            task.model = kaiming_pred(task.model)
        model = task.model(arch, data)
        loader = DataLoader(data.val, batch_size=128, collate_fn=detection_collate)
        untrained = task.evaluate(model, loader, torch.device("cpu"))
        with torch.no_grad():  # as the first training step sees them (batch statistics)
            heat = torch.cat([o[:, :data.num_classes].flatten() for o in model.train()(
                next(iter(loader))[0])])
        print(f"untrained: first step's heat-map logits {heat.mean():.2f} +- {heat.std():.2f}, "
              f"eval val_loss "
              f"{untrained['val_loss']:.2f}, map50 {untrained['map50']:.3f}; mean-box prior "
              f"map50 {prior_map(data):.3f}")
        training = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
        start = time.perf_counter()

        def report(epoch: int, m: dict[str, float]) -> None:
            print(f"epoch {epoch}: map50 {m['map50']:.3f}  train_loss {m['train_loss']:.3f}  "
                  f"val_loss {m['val_loss']:.3f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)

        train(task, arch, training, args.seed, torch.device("cpu"), report)


if __name__ == "__main__":
    main()
