"""CenterNet targets, loss and decoding (Zhou et al., "Objects as Points", 2019).

The detection head (``searchspaces.model``, head kind ``det``) returns one map per output scale,
coarsest first, each ``(N, C + 4, H, W)``: ``C`` heat-map logits and four regression channels.
An input of ``R`` pixels and a map of ``W`` columns give the cell size ``s = R / W`` (the stride;
a fraction when ``R`` is not a multiple of the backbone's stride). A box ``(x1, y1, x2, y2)`` in
input pixels, centre ``(cx, cy)`` and size ``(w, h)``, is encoded at its scale as:

- heat map: channel ``label`` peaks at 1 in the centre cell ``(floor(cx / s), floor(cy / s))``
  with a Gaussian around it whose radius is CenterNet's :func:`gaussian_radius` (in cells,
  truncated to an integer; sigma = diameter / 6), overlapping
  Gaussians of one class combined by their maximum;
- regression, at the centre cell only: ``(cx / s - floor(cx / s), cy / s - floor(cy / s),
  log(w / s), log(h / s))``: the sub-cell offset of the centre in [0, 1) and the log of the size
  in cells (log sizes make one L1 weight fit boxes of any size and any stride).

Each box goes to one scale: the one where its size ``sqrt(w h)`` is nearest, on a log scale, to
:data:`IDEAL_CELLS` cells (with two scales of strides ``s`` and ``s/2`` boxes above about
``2.8 s`` pixels go to the coarse map); with one scale, there.

The loss is CenterNet's penalty-reduced focal loss on the heat maps (alpha 2, beta 4) plus the
L1 loss of the four regression channels at the centre cells, each normalised by the number of
boxes in the batch. Decoding takes the sigmoid heat map, keeps the cells that are the maximum of
their 3x3 neighbourhood (CenterNet's max-pool "NMS"), the ``top_k`` best over all scales, and
inverts the encoding; boxes predicted on both scales for one object are then merged by
``torchvision.ops.batched_nms``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

IDEAL_CELLS = 4.0
MIN_OVERLAP = 0.7
ALPHA, BETA = 2.0, 4.0
REG_WEIGHT = 1.0
TOP_K = 50
SCORE_THRESHOLD = 0.01
NMS_IOU = 0.6
_MAX_LOG_SIZE = 8.0  # exp(8) ~ 3000 cells: keeps an untrained head's boxes finite


def gaussian_radius(h: float, w: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CenterNet's Gaussian radius in cells for an ``h x w`` box, exactly as its code (from
    CornerNet's) computes it: the smallest root of three quadratics, one per way two corners can
    shift (both in, both out, one each) while IoU stays >= ``min_overlap``. That code halves
    each root where the formula divides by ``2a``, so the radii are larger than the IoU bound
    (about 0.27 of the side for a square); CenterNet's results were obtained with them."""
    b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3, c3 = -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def strides(outputs: Sequence[torch.Tensor], resolution: int) -> list[float]:
    """The cell size in input pixels of each output map."""
    return [resolution / out.shape[-1] for out in outputs]


def assign_scale(sizes: torch.Tensor, cell_sizes: Sequence[float]) -> torch.Tensor:
    """Index of the scale each box (``sizes`` = its ``sqrt(w h)``) is encoded at."""
    ideal = torch.tensor([math.log(IDEAL_CELLS * s) for s in cell_sizes])
    return (sizes.clamp_min(1e-6).log()[:, None] - ideal).abs().argmin(1)


def encode(targets: Sequence[dict[str, torch.Tensor]], outputs: Sequence[torch.Tensor],
           resolution: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per scale ``(heat (N, C, H, W), regression (N, 4, H, W), centres (N, H, W) bool)`` of a
    batch's targets (torchvision convention: ``boxes`` xyxy in input pixels, ``labels``)."""
    shapes = [out.shape for out in outputs]
    num_classes = shapes[0][1] - 4
    cells = strides(outputs, resolution)
    device = outputs[0].device
    encoded = [(torch.zeros(n, num_classes, h, w), torch.zeros(n, 4, h, w),
                torch.zeros(n, h, w, dtype=torch.bool)) for n, _, h, w in shapes]
    from torchvision.ops import box_convert  # torchvision costs ~2 s to import: only here

    for i, target in enumerate(targets):
        boxes = box_convert(target["boxes"].detach().cpu().float(), "xyxy", "cxcywh")
        labels = target["labels"].cpu()
        scale_of = assign_scale((boxes[:, 2] * boxes[:, 3]).sqrt(), cells)
        for (cx, cy, bw, bh), label, k in zip(boxes.tolist(), labels.tolist(), scale_of.tolist()):
            heat, reg, centre = encoded[k]
            s, (_, _, h, w) = cells[k], shapes[k]
            u, v = min(cx / s, w - 1e-4), min(cy / s, h - 1e-4)
            col, row = int(u), int(v)
            r = int(max(0.0, gaussian_radius(bh / s, bw / s)))
            sigma = (2 * r + 1) / 6
            ys = torch.arange(max(0, row - r), min(h, row + r + 1))
            xs = torch.arange(max(0, col - r), min(w, col + r + 1))
            blob = torch.exp(-((ys[:, None] - row) ** 2 + (xs[None, :] - col) ** 2)
                             / (2 * sigma ** 2))
            window = heat[i, label, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            torch.maximum(window, blob, out=window)
            reg[i, :, row, col] = torch.tensor([u - col, v - row, math.log(max(bw / s, 1e-3)),
                                                math.log(max(bh / s, 1e-3))])
            centre[i, row, col] = True
    return [(heat.to(device), reg.to(device), centre.to(device))
            for heat, reg, centre in encoded]


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, summed (not yet normalised): cells at
    1 are positives, the others negatives down-weighted by ``(1 - heat) ** BETA`` near a
    centre."""
    pos = heat.eq(1).to(logits.dtype)
    p = torch.sigmoid(logits)
    log_p, log_not_p = nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits)
    pos_loss = (1 - p) ** ALPHA * log_p * pos
    neg_loss = (1 - heat) ** BETA * p ** ALPHA * log_not_p * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum())


def detection_loss(outputs: Sequence[torch.Tensor], targets: Sequence[dict[str, torch.Tensor]],
                   resolution: int) -> torch.Tensor:
    """Focal heat-map loss plus ``REG_WEIGHT`` times the regression L1, per box of the batch."""
    total = outputs[0].new_zeros(())
    num_boxes = 0
    for out, (heat, reg, centre) in zip(outputs, encode(targets, outputs, resolution)):
        num_classes = out.shape[1] - 4
        total = total + focal_loss(out[:, :num_classes], heat)
        if centre.any():
            pred = out[:, num_classes:].permute(0, 2, 3, 1)[centre]
            want = reg.permute(0, 2, 3, 1)[centre]
            total = total + REG_WEIGHT * nn.functional.l1_loss(pred, want, reduction="sum") / 4
        num_boxes += int(centre.sum())
    return total / max(num_boxes, 1)


@torch.no_grad()
def decode(outputs: Sequence[torch.Tensor], resolution: int, top_k: int = TOP_K,
           score_threshold: float = SCORE_THRESHOLD) -> list[dict[str, torch.Tensor]]:
    """Per image ``{"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels" (K,)}``."""
    num_classes = outputs[0].shape[1] - 4
    candidates = []
    for out, s in zip(outputs, strides(outputs, resolution)):
        n, _, h, w = out.shape
        heat = torch.sigmoid(out[:, :num_classes].float())
        peak = nn.functional.max_pool2d(heat, 3, stride=1, padding=1) == heat
        reg = out[:, num_classes:].float()
        rows = torch.arange(h, device=out.device).view(1, h, 1)
        cols = torch.arange(w, device=out.device).view(1, 1, w)
        size = reg[:, 2:].clamp(max=_MAX_LOG_SIZE).exp() * s
        boxes = torch.stack([(cols + reg[:, 0]) * s, (rows + reg[:, 1]) * s,
                             size[:, 0], size[:, 1]], -1)  # (N, H, W, 4) cxcywh
        candidates.append((torch.where(peak, heat, 0).flatten(1),  # (N, C*H*W)
                           boxes.flatten(1, 2).repeat(1, num_classes, 1),
                           torch.arange(num_classes, device=out.device).repeat_interleave(h * w)))
    scores = torch.cat([c[0] for c in candidates], 1)
    boxes = torch.cat([c[1] for c in candidates], 1)
    labels = torch.cat([c[2] for c in candidates])
    top = scores.topk(min(top_k, scores.shape[1]), dim=1)
    from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image  # only here

    results = []
    for i in range(len(scores)):
        keep = top.values[i] >= score_threshold
        idx = top.indices[i][keep]
        xyxy = clip_boxes_to_image(box_convert(boxes[i, idx], "cxcywh", "xyxy"),
                                   (resolution, resolution))
        kept = batched_nms(xyxy, top.values[i][keep], labels[idx], NMS_IOU)
        results.append({"boxes": xyxy[kept], "scores": top.values[i][keep][kept],
                        "labels": labels[idx][kept]})
    return results
