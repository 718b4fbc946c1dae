"""What the detection and segmentation loaders share: reading an image file safely, turning it
into the model's normalised square input, and the seeded stratified split of ``nas.data``
applied to one stratification key per image."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms.functional import pil_to_tensor

from nas.data import IMAGENET_MEAN, IMAGENET_STD, _cap, _resize, stratified_split

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)


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


def model_input(path: Path, resolution: int) -> torch.Tensor:
    """The RGB image at ``path`` as a float32 ``(3, resolution, resolution)`` tensor, resized
    bilinearly (aspect ratio not kept, as for ``imagefolder``) and standardised with the
    ImageNet statistics."""
    image = pil_to_tensor(open_image(path, "RGB")).to(torch.float32).div_(255.0)
    image = _resize(image.unsqueeze(0), resolution).squeeze(0)
    return (image - _MEAN) / _STD


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
