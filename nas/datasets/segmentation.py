"""Semantic segmentation data in the Pascal VOC layout.

``data_dir`` holds ``JPEGImages/`` (the images, any suffix PIL reads) and
``SegmentationClass/`` (one mask per image, ``<name>.png`` for ``JPEGImages/<name>.*``). A mask
is a paletted (mode ``P``) or grayscale (``L``) PNG whose pixel *index* is the class id, as in
VOC: ``0`` background, ``1 .. C-1`` the classes, ``255`` "ignore" (VOC's object outlines); the
palette's colours are for viewing only. The class names come from ``classes.txt`` (one per
line, background first) or, without that file, ``num_classes`` names ``"0" .. "C-1"``.
``ImageSets/Segmentation/train.txt`` and ``val.txt`` (one name per line), when both exist, are
the split; otherwise every mask is used and split here, seeded and stratified on each mask's
most frequent non-background class.

Every mask is read and checked when the set is read, before any training; a bad entry is one
``ValueError`` naming the file and the entry: an image missing or unreadable, a mask in RGB,
a mask whose size differs from its image, or a pixel value that is neither a class id nor 255.
Items are resized to the requested square side: the image bilinearly, the mask by nearest
neighbour (``nearest-exact``: each output pixel takes the source pixel under its centre, the
same geometry as the bilinear image resize), so no new class ids appear.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nas.data import _IMG_EXTENSIONS, DataSplit, _cap_one, _is_int, check_split_args
from nas.datasets._common import Preloaded, image_at, image_size, normalise, open_image, split

IMAGES = "JPEGImages"
MASKS = "SegmentationClass"
SPLITS = Path("ImageSets") / "Segmentation"
CLASSES = "classes.txt"
IGNORE_INDEX = 255


@dataclass(frozen=True)
class SegmentationSample:
    """One image file and its mask file."""

    image: Path
    mask: Path


def read_mask(path: Path) -> np.ndarray:
    """The class ids of a mask file as a uint8 ``(H, W)`` array (its palette indices)."""
    mask = open_image(path)
    if mask.mode not in ("P", "L"):
        raise ValueError(f"mask {path} is mode {mask.mode}; class ids need a paletted (P) or "
                         "grayscale (L) PNG")
    return np.array(mask, dtype=np.uint8)


def check_mask(sample: SegmentationSample, num_classes: int) -> int:
    """Check one sample; returns its stratum (most frequent class other than background and
    ignore, the smallest on a tie; 0 when only those)."""
    mask = read_mask(sample.mask)
    width, height = image_size(sample.image)
    if mask.shape != (height, width):
        raise ValueError(f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]}, its image "
                         f"{sample.image} is {width}x{height}")
    counts = np.bincount(mask.reshape(-1), minlength=256)
    bad = np.flatnonzero(counts[num_classes:IGNORE_INDEX])
    if bad.size:
        value = int(bad[0]) + num_classes
        y, x = (int(v[0]) for v in np.nonzero(mask == value))
        raise ValueError(f"mask {sample.mask}: value {value} at (x={x}, y={y}) is neither a "
                         f"class id (0..{num_classes - 1}) nor {IGNORE_INDEX} (ignore)")
    counts[0] = counts[IGNORE_INDEX] = 0
    return int(counts.argmax())


class SegmentationDataset(Dataset):
    """Items ``(image, mask)``: ``image`` a normalised float32 ``(3, R, R)`` tensor, ``mask`` an
    int64 ``(R, R)`` tensor of class ids with 255 for "ignore" (``cross_entropy``'s
    ``ignore_index=255``). Files are decoded once up front when they fit in ``PRELOAD_BYTES``
    at this resolution, else per item."""

    def __init__(self, samples: list[SegmentationSample], resolution: int) -> None:
        self.samples = samples
        self.resolution = resolution
        self.images = Preloaded([s.image for s in samples],
                                functools.partial(image_at, resolution=resolution),
                                3 * resolution ** 2)
        self.masks = Preloaded([s.mask for s in samples],
                               functools.partial(mask_at, resolution=resolution), resolution ** 2)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return normalise(self.images[index]), self.masks[index].to(torch.int64)


def mask_at(path: Path, resolution: int) -> torch.Tensor:
    """The mask at ``path`` as uint8 ``(resolution, resolution)`` class ids, resized by
    nearest neighbour."""
    mask = torch.from_numpy(read_mask(path))[None, None]
    if mask.shape[-2:] != (resolution, resolution):
        mask = F.interpolate(mask, size=(resolution, resolution), mode="nearest-exact")
    return mask[0, 0]


def _classes(root: Path, num_classes: int | None) -> tuple[str, ...]:
    path = root / CLASSES
    if path.is_file():
        try:
            names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                          if line.strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"{path} names {len(names)} classes, num_classes is {num_classes}")
    elif num_classes is None:
        raise ValueError(f"no {CLASSES} in {root}; write one (a class name per line, "
                         "background first) or pass num_classes")
    else:
        names = tuple(str(i) for i in range(num_classes))
    if not 2 <= len(names) <= IGNORE_INDEX:
        raise ValueError(f"segmentation needs 2..{IGNORE_INDEX} classes (background included), "
                         f"got {len(names)}")
    return names


def _sample(root: Path, name: str, where: str) -> SegmentationSample:
    mask = root / MASKS / f"{name}.png"
    if not mask.is_file():
        raise ValueError(f"{where}: mask {mask} does not exist")
    for suffix in _IMG_EXTENSIONS:
        image = root / IMAGES / f"{name}{suffix}"
        if image.is_file():
            return SegmentationSample(image, mask)
    raise ValueError(f"{where}: no image {root / IMAGES / name}.* for mask {mask}")


def _names(path: Path) -> list[str]:
    try:
        return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def make_segmentation_datasets(resolution: int, *, data_dir: str | Path, val_fraction: float = 0.2,
                               seed: int = 0, max_train: int | None = None,
                               max_val: int | None = None,
                               num_classes: int | None = None) -> DataSplit:
    """Train and validation :class:`SegmentationDataset` of the VOC-style data in ``data_dir``.

    The arguments are those of :func:`nas.data.make_datasets`, plus ``num_classes`` (background
    included) for a folder without ``classes.txt``.
    """
    check_split_args(resolution, val_fraction, seed, max_train, max_val)
    if num_classes is not None and not _is_int(num_classes):
        raise ValueError(f"num_classes must be None or an int, got {num_classes!r}")
    root = Path(data_dir).expanduser()
    if not (root / MASKS).is_dir():
        raise ValueError(f"no {MASKS}/ folder in {root}")
    classes = _classes(root, num_classes)
    n = len(classes)
    lists = [root / SPLITS / "train.txt", root / SPLITS / "val.txt"]
    if all(path.is_file() for path in lists):
        train, val = ([_sample(root, name, f"{path}: line {k + 1}")
                       for k, name in enumerate(_names(path))] for path in lists)
        train_idx = _cap_one(np.array([check_mask(s, n) for s in train]),
                             np.arange(len(train)), seed, 1, max_train)
        val_idx = _cap_one(np.array([check_mask(s, n) for s in val]), np.arange(len(val)),
                           seed, 2, max_val)
    else:
        masks = sorted(p for p in (root / MASKS).glob("*.png") if not p.name.startswith("."))
        if not masks:
            raise ValueError(f"no masks (*.png) in {root / MASKS}")
        train = val = [_sample(root, p.stem, str(p)) for p in masks]
        train_idx, val_idx = split([check_mask(s, n) for s in train], val_fraction, seed,
                                   max_train, max_val)
    return DataSplit(SegmentationDataset([train[i] for i in train_idx], resolution),
                     SegmentationDataset([val[i] for i in val_idx], resolution), n, 3, classes)
