"""Learnable synthetic datasets written in the on-disk formats :mod:`nas.data` reads, for tests,
benchmarks and trying a config before the real data is at hand.

- :func:`write_cifar10`: CIFAR-10's "python version" layout (``cifar-10-batches-py/data_batch_1
  ..5``, ``batches.meta``, ``test_batch``: pickled dicts of bytes keys, uint8 ``(N, 3072)``
  images and label lists), the files the safe reader in :mod:`nas.data` accepts.
- :func:`write_imagefolder`: one sub-folder of PNG files per class.

Each class is a colour and a stripe direction, plus noise, so a candidate can learn it in an
epoch and accuracies mean something; the images are not CIFAR-10's and say nothing about real
accuracy. Everything is drawn from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def class_images(labels: np.ndarray, side: int, rng: np.random.Generator,
                 num_classes: int = 10) -> np.ndarray:
    """uint8 ``(N, 3, side, side)`` images of ``labels``: a colour per class, horizontal or
    vertical stripes by class parity, and uniform noise of a third of the range."""
    colours = np.random.default_rng(num_classes).integers(40, 216, size=(num_classes, 3))
    stripes = (np.arange(side) // 4 % 2 * 40 - 20).astype(np.int16)
    base = colours[labels][:, :, None, None].astype(np.int16)
    pattern = np.where((labels % 2 == 0)[:, None, None, None], stripes[None, None, :, None],
                       stripes[None, None, None, :])
    noise = rng.integers(-42, 43, size=(len(labels), 3, side, side), dtype=np.int16)
    return np.clip(base + pattern + noise, 0, 255).astype(np.uint8)


def write_cifar10(root: str | Path, train_images: int, rng: np.random.Generator,
                  test_images: int = 100) -> Path:
    """``root/cifar-10-batches-py`` with ``train_images`` training images (balanced classes,
    shuffled) in the five ``data_batch_*`` files, ``test_images`` in ``test_batch``, and
    ``batches.meta``; returns ``root``. 50 000 gives a CIFAR-10-size set (150 MB)."""
    if train_images < 5:
        raise ValueError(f"CIFAR-10's format has 5 training batches; need train_images >= 5, "
                         f"got {train_images}")
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = rng.permutation(np.arange(train_images) % 10)
    parts = np.array_split(np.arange(train_images), 5)
    for i, idx in enumerate(parts, start=1):
        _dump(folder / f"data_batch_{i}", f"training batch {i} of 5", labels[idx], rng)
    _dump(folder / "test_batch", "testing batch 1 of 1", rng.permutation(
        np.arange(test_images) % 10), rng)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR10_CLASSES],
                     b"num_cases_per_batch": len(parts[0]), b"num_vis": 3072}, f)
    return root


def _dump(path: Path, name: str, labels: np.ndarray, rng: np.random.Generator) -> None:
    images = class_images(labels, 32, rng).reshape(len(labels), 3072)
    with path.open("wb") as f:
        pickle.dump({b"batch_label": name.encode(), b"data": images,
                     b"labels": [int(y) for y in labels],
                     b"filenames": [f"synthetic_{j}.png".encode() for j in range(len(labels))]},
                    f)


def write_imagefolder(root: str | Path, classes: tuple[str, ...], per_class: int,
                      rng: np.random.Generator, side: int = 48) -> Path:
    """``root/<class>/<i>.png``: ``per_class`` RGB images of ``side`` pixels per class (the
    trial resizes them to the candidate's resolution); returns ``root``."""
    from PIL import Image

    root = Path(root)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        images = class_images(np.full(per_class, k), side, rng, num_classes=len(classes))
        for i, image in enumerate(images):
            Image.fromarray(image.transpose(1, 2, 0)).save(root / name / f"{i}.png")
    return root
