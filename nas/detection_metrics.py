"""mAP@0.5 of a detector: PASCAL VOC's all-point interpolated average precision, no COCO tools.

Per class, every detection of every image is ranked by score (ties keep their order), and each
is a true positive when its IoU (``torchvision.ops.box_iou``) with the best-overlapping
ground-truth box of that class in its image is at least ``iou_threshold`` and that box has not
been claimed by a higher-ranked detection; otherwise it is a false positive (a duplicate or a
miss of the box). The area under the precision-recall curve, with precision made monotonic
from the right, is the class's AP (Everingham et al., "The PASCAL Visual Object Classes
Challenge", IJCV 2010, as in VOC 2010 and later). mAP is the mean over the classes that have at
least one ground-truth box: a class absent from the data says nothing about the detector, and
its false positives are not counted anywhere (as in VOC's devkit).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Boxes = dict[str, torch.Tensor]  # "boxes" (N, 4) xyxy, "labels" (N,), and "scores" (N,) for dets


def _check(items: Sequence[Boxes], what: str, keys: tuple[str, ...]) -> None:
    for i, item in enumerate(items):
        n = len(item["boxes"])
        if item["boxes"].shape != (n, 4) or any(item[k].shape != (n,) for k in keys):
            raise ValueError(f"{what}[{i}]: need boxes (N, 4) and {', '.join(keys)} (N,), got "
                             f"{', '.join(f'{k} {tuple(item[k].shape)}' for k in item)}")


def average_precision(tp: torch.Tensor, num_gt: int) -> float:
    """All-point interpolated AP of detections already ranked by score, ``tp`` a bool per
    detection, out of ``num_gt`` ground-truth boxes (> 0)."""
    if len(tp) == 0:
        return 0.0
    hits = tp.to(torch.float64).cumsum(0)
    recall = hits / num_gt
    precision = hits / torch.arange(1, len(tp) + 1, dtype=torch.float64)
    # precision envelope: at each rank, the best precision at this recall or any higher one
    envelope = precision.flip(0).cummax(0).values.flip(0)
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * envelope).sum())


def mean_average_precision(detections: Sequence[Boxes], targets: Sequence[Boxes],
                           num_classes: int, iou_threshold: float = 0.5) -> dict[str, float]:
    """``{"map": mean AP, "ap_<k>": AP of class k}`` over the classes with ground truth.

    ``detections[i]`` and ``targets[i]`` are image ``i``'s predictions (``boxes``, ``scores``,
    ``labels``) and ground truth (``boxes``, ``labels``), boxes ``xyxy`` in the same pixels.
    With no ground-truth box at all, ``map`` is 0.0 (nothing can be found).
    """
    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detection lists for {len(targets)} images")
    _check(detections, "detections", ("scores", "labels"))
    _check(targets, "targets", ("labels",))
    from torchvision.ops import box_iou  # ~2 s to import: only when used

    result: dict[str, float] = {}
    for k in range(num_classes):
        num_gt = sum(int((t["labels"] == k).sum()) for t in targets)
        if num_gt == 0:
            continue
        scores, hits = [], []
        for det, gt in zip(detections, targets):
            mine = det["labels"] == k
            if not bool(mine.any()):
                continue
            d_boxes, d_scores = det["boxes"][mine], det["scores"][mine]
            order = torch.argsort(d_scores, descending=True, stable=True)
            d_boxes, d_scores = d_boxes[order], d_scores[order]
            g_boxes = gt["boxes"][gt["labels"] == k]
            hit = torch.zeros(len(d_boxes), dtype=torch.bool)
            if len(g_boxes):
                # greedy matching within an image in score order is the same as over the whole
                # ranking: detections of other images never claim this image's boxes
                iou = box_iou(d_boxes.double(), g_boxes.double())
                claimed = torch.zeros(len(g_boxes), dtype=torch.bool)
                for j in range(len(d_boxes)):
                    best, g = iou[j].max(0)
                    if best >= iou_threshold and not claimed[g]:
                        claimed[g] = hit[j] = True
            scores.append(d_scores)
            hits.append(hit)
        if scores:
            order = torch.argsort(torch.cat(scores), descending=True, stable=True)
            result[f"ap_{k}"] = average_precision(torch.cat(hits)[order], num_gt)
        else:
            result[f"ap_{k}"] = 0.0
    aps = list(result.values())
    return {"map": sum(aps) / len(aps) if aps else 0.0, **result}
