"""What the detection and segmentation loaders share: reading an image file safely, turning it
into the model's normalised square input, and the seeded stratified split of ``nas.data``
applied to one stratification key per image.

Trials load data in the training process (no loader workers), so decoding a PNG on every item
of every epoch would cost more than training a small candidate on it. A set whose images, at the
model's resolution, fit in :data:`PRELOAD_BYTES` as uint8 (the synthetic sets, VOC at small
resolutions) is therefore decoded once into one tensor, as ``nas.data`` holds CIFAR-10; a
larger one is decoded per item. Both paths quantise the resized image to uint8, so an item is
the same either way."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import IMAGENET_MEAN, IMAGENET_STD, _cap, _resize, stratified_split

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)
PRELOAD_BYTES = 256 * 2**20


def open_image(path: Path, mode: str | None = None) -> Any:
    """``path`` decoded by PIL (converted to ``mode`` when given); a missing or unreadable file
    is one ``ValueError`` naming it."""
    from PIL import Image

    if not path.is_file():
        raise ValueError(f"image file {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode is not None else image.copy()
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError too
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only."""
    from PIL import Image

    if not path.is_file():
        raise ValueError(f"image file {path} does not exist")
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def image_at(path: Path, resolution: int) -> torch.Tensor:
    """The RGB image at ``path`` as uint8 ``(3, resolution, resolution)``, resized bilinearly
    (antialiased when shrinking; aspect ratio not kept, as for ``imagefolder``)."""
    from torchvision.transforms.functional import pil_to_tensor  # ~2 s to import: only here

    image = pil_to_tensor(open_image(path, "RGB"))
    if image.shape[-2:] == (resolution, resolution):
        return image
    resized = _resize(image.unsqueeze(0).to(torch.float32), resolution).squeeze(0)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """A uint8 image as float32 standardised with the ImageNet statistics."""
    return (image.to(torch.float32).div_(255.0) - _MEAN) / _STD


class Preloaded:
    """Per-item arrays of a dataset, ``load(path)`` for each path: stacked once when their total
    size fits in :data:`PRELOAD_BYTES`, otherwise loaded again on each access."""

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], torch.Tensor],
                 item_bytes: int) -> None:
        self.paths, self.load = list(paths), load
        fits = 0 < len(self.paths) and len(self.paths) * item_bytes <= PRELOAD_BYTES
        self.stacked = torch.stack([load(p) for p in self.paths]) if fits else None

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.stacked[index] if self.stacked is not None else self.load(self.paths[index])


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; unreadable, non-UTF-8 or malformed JSON (NaN and
    Infinity included, which are not JSON) is one ``ValueError`` naming the file."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON (line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg})") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc})") from exc


def split(keys: Sequence[int], val_fraction: float, seed: int, max_train: int | None,
          max_val: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: ``nas.data``'s seeded split and caps, stratified on one
    integer ``key`` per image (its dominant class, or a background key)."""
    labels = np.asarray(keys, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, val_fraction, np.random.default_rng(seed))
    return _cap(labels, train_idx, val_idx, seed, max_train, max_val)
