"""Object detection data in the COCO layout, read without pycocotools.

On disk, one set is an ``annotations.json`` beside an ``images/`` folder; ``data_dir`` holds
either one set (split here, seeded and stratified) or a ``train/`` and a ``val/`` set. The JSON
is COCO's detection subset::

    {"images":      [{"id": 1, "file_name": "000001.png", "width": 96, "height": 96}],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [x, y, w, h]}],
     "categories":  [{"id": 3, "name": "person"}]}

``bbox`` is COCO's ``[x, y, width, height]`` in pixels of the stored image. Category ids may be
any integers; labels are their rank (categories sorted by id), so ``0 .. C-1`` with no
background label. Images without annotations are kept: they are the negatives of a presence
detector ("no person here"). Annotations with a true ``iscrowd`` are checked and then dropped,
as COCO's own evaluation ignores them.

Everything is checked when the set is read, before any training: a bad entry is one
``ValueError`` naming the file and the entry (``annotations[12] (id 40, image '000003.png')``).
A box may overhang the image by at most :data:`EDGE_TOLERANCE` pixel (COCO's boxes are the
extents of polygons and a few exceed the image by a fraction of a pixel) and is clipped; one
further out, or with a width or height that is not positive, is refused.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.data import DataSplit, _cap_one, _is_int, check_split_args
from nas.datasets._common import Preloaded, image_at, image_size, normalise, read_json, split

ANNOTATIONS = "annotations.json"
IMAGES = "images"
EDGE_TOLERANCE = 1.0


@dataclass(frozen=True)
class DetectionSample:
    """One image of a set: its file, stored size, and boxes (``xyxy`` in stored pixels, float32
    ``(N, 4)``) with contiguous labels (int64 ``(N,)``)."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


def _entry(container: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(container, dict) or key not in container:
        raise ValueError(f"{where} lacks {key!r}")
    value = container[key]
    if kind is int and not _is_int(value):
        raise ValueError(f"{where}: {key!r} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise ValueError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, "
                         f"got {value!r}")
    return value


def _categories(doc: dict[str, Any], ann_file: Path) -> tuple[dict[int, int], tuple[str, ...]]:
    entries = _entry(doc, "categories", list, str(ann_file))
    if not entries:
        raise ValueError(f"{ann_file}: 'categories' is empty")
    names: dict[int, str] = {}
    for k, cat in enumerate(entries):
        where = f"{ann_file}: categories[{k}]"
        cat_id = _entry(cat, "id", int, where)
        name = _entry(cat, "name", str, where)
        if cat_id in names:
            raise ValueError(f"{where}: duplicate category id {cat_id}")
        names[cat_id] = name
    ids = sorted(names)
    return {cat_id: label for label, cat_id in enumerate(ids)}, tuple(names[i] for i in ids)


def _box(ann: dict[str, Any], where: str, width: int, height: int) -> list[float]:
    bbox = _entry(ann, "bbox", list, where)
    if len(bbox) != 4 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                 and math.isfinite(v) for v in bbox):
        raise ValueError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise ValueError(f"{where}: bbox {bbox!r} has a width or height that is not positive")
    tol = EDGE_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise ValueError(f"{where}: bbox {bbox!r} lies outside the {width}x{height} image")
    return [x, y, w, h]


def read_coco(ann_file: Path, image_dir: Path) -> tuple[tuple[str, ...], list[DetectionSample]]:
    """Class names and the checked samples of one COCO-style set, in the JSON's image order.

    Raises:
        ValueError: on malformed JSON, a missing key, a duplicate id, an unknown image or
            category id, a box outside its image or with no area, a missing image file, or a
            file whose size differs from its entry; the message names the file and the entry.
    """
    doc = read_json(ann_file)
    if not isinstance(doc, dict):
        raise ValueError(f"{ann_file}: expected a JSON object with 'images', 'annotations' and "
                         f"'categories', got {type(doc).__name__}")
    label_of, classes = _categories(doc, ann_file)
    images: dict[int, dict[str, Any]] = {}
    for k, img in enumerate(_entry(doc, "images", list, str(ann_file))):
        where = f"{ann_file}: images[{k}]"
        img_id = _entry(img, "id", int, where)
        file_name = _entry(img, "file_name", str, where)
        width, height = _entry(img, "width", int, where), _entry(img, "height", int, where)
        if img_id in images:
            raise ValueError(f"{where}: duplicate image id {img_id}")
        if width < 1 or height < 1:
            raise ValueError(f"{where} ({file_name!r}): width and height must be >= 1")
        path = image_dir / file_name
        if not path.is_file():
            raise ValueError(f"{where}: image file {path} does not exist")
        actual = image_size(path)
        if actual != (width, height):
            raise ValueError(f"{where}: {path} is {actual[0]}x{actual[1]}, "
                             f"the entry says {width}x{height}")
        images[img_id] = {"path": path, "width": width, "height": height, "boxes": [],
                          "labels": []}
    for k, ann in enumerate(_entry(doc, "annotations", list, str(ann_file))):
        ident = [f"id {ann['id']!r}"] if isinstance(ann, dict) and "id" in ann else []
        where = f"{ann_file}: annotations[{k}]" + "".join(f" ({i})" for i in ident)
        img_id = _entry(ann, "image_id", int, where)
        if img_id not in images:
            raise ValueError(f"{where}: unknown image id {img_id}")
        img = images[img_id]
        ident.append(f"image {img['path'].name!r}")
        where = f"{ann_file}: annotations[{k}] ({', '.join(ident)})"
        cat_id = _entry(ann, "category_id", int, where)
        if cat_id not in label_of:
            raise ValueError(f"{where}: unknown category id {cat_id}; known: "
                             f"{', '.join(map(str, sorted(label_of)))}")
        box = _box(ann, where, img["width"], img["height"])
        if ann.get("iscrowd"):
            continue
        img["boxes"].append(box)
        img["labels"].append(label_of[cat_id])
    from torchvision.ops import box_convert, clip_boxes_to_image  # ~2 s to import: only here

    samples = []
    for img in images.values():
        xywh = torch.tensor(img["boxes"], dtype=torch.float32).reshape(-1, 4)
        xyxy = clip_boxes_to_image(box_convert(xywh, "xywh", "xyxy"),
                                   (img["height"], img["width"]))
        samples.append(DetectionSample(img["path"], img["width"], img["height"], xyxy.numpy(),
                                       np.asarray(img["labels"], dtype=np.int64)))
    return classes, samples


class DetectionDataset(Dataset):
    """Items ``(image, target)``: ``image`` a normalised float32 ``(3, R, R)`` tensor, ``target``
    ``{"boxes": float32 (N, 4) xyxy in resized pixels, "labels": int64 (N,)}`` (torchvision's
    detection convention; ``N`` may be 0). Images are decoded once up front when they fit in
    ``PRELOAD_BYTES`` at this resolution, else per item."""

    def __init__(self, samples: list[DetectionSample], resolution: int) -> None:
        self.samples = samples
        self.resolution = resolution
        self.images = Preloaded([s.path for s in samples],
                                functools.partial(image_at, resolution=resolution),
                                3 * resolution ** 2)
        from torchvision.ops import clip_boxes_to_image

        r = resolution
        self.boxes = [clip_boxes_to_image(torch.from_numpy(s.boxes) * torch.tensor(
            [r / s.width, r / s.height] * 2, dtype=torch.float32), (r, r)) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = {"boxes": self.boxes[index].clone(),
                  "labels": torch.from_numpy(self.samples[index].labels.copy())}
        return normalise(self.images[index]), target


def detection_collate(batch: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]
                      ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack the images of a batch and keep the targets as a list: the number of boxes varies
    from image to image, so they cannot be stacked (pass as a ``DataLoader``'s ``collate_fn``)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def _stratum(sample: DetectionSample, num_classes: int) -> int:
    """The most frequent label of an image (the smallest on a tie), ``num_classes`` if none."""
    if sample.labels.size == 0:
        return num_classes
    return int(np.bincount(sample.labels).argmax())


def make_detection_datasets(resolution: int, *, data_dir: str | Path, val_fraction: float = 0.2,
                            seed: int = 0, max_train: int | None = None,
                            max_val: int | None = None) -> DataSplit:
    """Train and validation :class:`DetectionDataset` of the COCO-style data under ``data_dir``.

    ``data_dir`` holds ``annotations.json`` and ``images/`` (split here: seeded, stratified on
    each image's most frequent label, images without boxes a stratum of their own) or
    ``train/`` and ``val/`` with one such set each (both must name the same categories).
    The arguments are those of :func:`nas.data.make_datasets`; ``num_classes`` of the result
    counts the categories (no background class).
    """
    check_split_args(resolution, val_fraction, seed, max_train, max_val)
    root = Path(data_dir).expanduser()
    train_dir, val_dir = root / "train", root / "val"
    if (train_dir / ANNOTATIONS).is_file() and (val_dir / ANNOTATIONS).is_file():
        classes, train = read_coco(train_dir / ANNOTATIONS, train_dir / IMAGES)
        val_classes, val = read_coco(val_dir / ANNOTATIONS, val_dir / IMAGES)
        if val_classes != classes:
            raise ValueError(f"categories differ between {train_dir / ANNOTATIONS} "
                             f"{list(classes)} and {val_dir / ANNOTATIONS} {list(val_classes)}")
        n = len(classes)
        train_idx = _cap_one(np.array([_stratum(s, n) for s in train]), np.arange(len(train)),
                             seed, 1, max_train)
        val_idx = _cap_one(np.array([_stratum(s, n) for s in val]), np.arange(len(val)), seed,
                           2, max_val)
    elif (root / ANNOTATIONS).is_file():
        classes, train = read_coco(root / ANNOTATIONS, root / IMAGES)
        val = train
        train_idx, val_idx = split([_stratum(s, len(classes)) for s in train], val_fraction,
                                   seed, max_train, max_val)
    else:
        raise ValueError(f"no {ANNOTATIONS} in {root} (nor in {train_dir} and {val_dir})")
    return DataSplit(DetectionDataset([train[i] for i in train_idx], resolution),
                     DetectionDataset([val[i] for i in val_idx], resolution),
                     len(classes), 3, classes)
