"""Image-classification datasets for the NAS trial trainer.

One entry point, :func:`make_datasets`, returns a :class:`DataSplit` (train and validation
``torch.utils.data.Dataset`` plus class metadata) for one of :data:`DATASETS`:

- ``digits`` (the default in configs): scikit-learn's bundled ``load_digits`` (1797 8x8
  grayscale images, values 0..16; no download). Pixels are scaled to [0, 1] and standardised
  with the scalar mean/std of the *train split's* pixels (about 0.31/0.38; the validation
  images use the same numbers, so nothing about them leaks into training), after they are
  resized to ``resolution`` x ``resolution`` with bilinear interpolation
  (``align_corners=False``; antialiased when shrinking) and rounded to 8-bit levels, like every
  other dataset's images. One input channel. Everything is held as a ``TensorDataset`` (under
  2 MB at 32x32); labels are 0-d int64 tensors.
- ``cifar10``: the CIFAR-10 "python version" layout under ``data_dir``
  (``cifar-10-batches-py/data_batch_1..5`` and ``batches.meta``), read by a small reader of our
  own because torchvision's ``CIFAR10`` insists on the official md5 sums. All five training
  batches and the meta file are required (a partial set is more likely a broken download than
  a choice); ``test_batch`` is never read, so it stays untouched for final evaluation, and the
  validation split is carved out of the training batches. ``download=True`` fetches missing
  files once with ``torchvision.datasets.CIFAR10``. Images stay uint8 in memory (150 MB for
  the full set) and are resized (back to 8-bit levels) and normalised per item with the usual
  CIFAR-10 statistics.
- ``imagefolder``: one sub-folder per class, as for ``torchvision.datasets.ImageFolder``.
  If both ``data_dir/train`` and ``data_dir/val`` exist they are the split; otherwise one
  seeded stratified split is made. Images are loaded lazily, converted to RGB, resized to
  ``resolution`` x ``resolution`` and normalised with the ImageNet statistics.

Splits are stratified and seeded (:func:`stratified_split`): each class with ``n >= 2`` items
puts ``round(val_fraction * n)`` of them, clamped to ``[1, n - 1]``, into validation, so every
class appears in both splits; a class with a single item goes to training. ``max_train`` and
``max_val`` keep a seeded, class-proportional subset (:func:`stratified_subset`) to bound epoch
time. The generators are ``numpy.random.default_rng(seed)`` for the split and independent
streams derived from ``seed`` for the two subsets, so capping one split never changes the
split itself nor the other subset.
"""

from __future__ import annotations

import functools
import math
import numbers
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from nas.config import DATASETS

# Per-channel statistics of the 50 000 CIFAR-10 training images (pixels scaled to [0, 1]).
# The often-copied std (0.2023, 0.1994, 0.2010) is the mean of per-image stds; this is the
# std over all pixels, which is what standardisation needs.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
# The ImageNet statistics torchvision's pretrained models use.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_CIFAR10_DIRNAME = "cifar-10-batches-py"
_CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_META = "batches.meta"
_CIFAR10_SIDE = 32
_DIGITS_SIDE = 8
_MIN_RESOLUTION = 4
# Suffixes PIL reads; the same list as torchvision.datasets.folder.IMG_EXTENSIONS.
_IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DataSplit:
    """Train and validation datasets of one image-classification task.

    Items of both datasets are ``(image, label)``: ``image`` a normalised float32 tensor of shape
    ``(in_channels, resolution, resolution)``, ``label`` an int in ``[0, num_classes)`` (a 0-d
    int64 tensor for ``digits``; ``default_collate`` batches both into an int64 tensor).
    """

    train: Dataset
    val: Dataset
    num_classes: int
    in_channels: int
    classes: tuple[str, ...]
    # The per-channel standardisation the images carry (pixels in [0, 1] -> (x - mean) / std),
    # so :mod:`nas.fastdata` can turn them back into uint8 pixels held on the device.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


# --------------------------------------------------------------------------- splitting


def stratified_split(labels: np.ndarray | Sequence[int], val_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices into disjoint, sorted ``(train, val)`` index arrays, class by class.

    A class with ``n >= 2`` items sends ``round(val_fraction * n)`` of them, clamped to
    ``[1, n - 1]``, to validation, chosen by a permutation drawn from ``rng``; a class with a
    single item stays in training. Classes are visited in ascending label order, so the result
    depends only on ``labels``, ``val_fraction`` and the state of ``rng``.
    """
    y = np.asarray(labels)
    val_parts: list[np.ndarray] = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        n = members.size
        n_val = 0 if n < 2 else min(max(round(val_fraction * n), 1), n - 1)
        val_parts.append(members[rng.permutation(n)[:n_val]])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    is_val = np.zeros(y.size, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), val


def stratified_subset(labels: np.ndarray | Sequence[int], size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded, class-proportional subset of ``size`` items (all if fewer).

    Each class is shuffled, and its ``k``-th item gets the key ``k / n_class``; the ``size``
    smallest keys win (ties broken by a random order). Every class thus keeps about
    ``size * n_class / n`` items, and every class is present once ``size >= number of classes``.
    """
    y = np.asarray(labels)
    if size >= y.size:
        return np.arange(y.size)
    order = rng.permutation(y.size)
    shuffled = y[order]
    key = np.empty(y.size, dtype=np.float64)
    for label in np.unique(shuffled):
        where = np.flatnonzero(shuffled == label)
        key[where] = np.arange(where.size) / where.size
    # lexsort sorts by the last key first: fractional rank, then position in the random order.
    chosen = np.lexsort((np.arange(y.size), key))[:size]
    return np.sort(order[chosen])


# --------------------------------------------------------------------------- datasets


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of a ``(N, C, H, W)`` float batch to a square ``resolution``."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    shrinking = resolution < min(images.shape[-2:])
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear",
                         align_corners=False, antialias=shrinking)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1] to the nearest of 256 levels, as uint8: a resized image is an
    8-bit image again (as PIL's resize of an ImageFolder's files gives), so the in-memory path
    (:mod:`nas.fastdata`), which holds uint8, and the streaming path see the same pixels."""
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class _Uint8ImageDataset(Dataset):
    """uint8 ``(N, C, H, W)`` images, resized and normalised one item at a time."""

    def __init__(self, images: torch.Tensor, targets: np.ndarray, resolution: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        self.images = images
        self.targets = [int(t) for t in targets]
        self.resolution = resolution
        self._mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def pixels(self, chunk: int = 4096) -> torch.Tensor:
        """All images resized to ``resolution`` as uint8 ``(N, C, H, W)``, ``chunk`` at a time
        (what the in-memory training path of :mod:`nas.fastdata` holds on the device)."""
        out = torch.empty((len(self), self.images.shape[1], self.resolution, self.resolution),
                          dtype=torch.uint8)
        for start in range(0, len(self), chunk):
            part = self.images[start:start + chunk].to(torch.float32).div_(255.0)
            out[start:start + chunk] = to_uint8(_resize(part, self.resolution))
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].to(torch.float32).div_(255.0)
        pixels = to_uint8(_resize(image.unsqueeze(0), self.resolution).squeeze(0))
        image = pixels.to(torch.float32).div_(255.0)
        return (image - self._mean) / self._std, self.targets[index]


class _ImageFileDataset(Dataset):
    """Image files on disk, opened with PIL, converted to RGB and passed through ``transform``."""

    def __init__(self, samples: Sequence[tuple[Path, int]],
                 transform: Callable[[Any], torch.Tensor]) -> None:
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except OSError as exc:  # PIL.UnidentifiedImageError is an OSError too
            raise ValueError(f"cannot read image {path}: {exc}") from exc
        return self.transform(rgb), label


# --------------------------------------------------------------------------- digits


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """sklearn's digits as read-only ``(1797, 8, 8)`` float32 in [0, 1], on the 8-bit levels
    (0..16 scaled to 0..255 and rounded), and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.round(bunch.images * (255.0 / 16.0)) / 255.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, tuple(str(name) for name in bunch.target_names)


def _make_digits(resolution: int, val_fraction: float, seed: int, max_train: int | None,
                 max_val: int | None) -> DataSplit:
    images, labels, classes = _digits_raw()
    train_idx, val_idx = stratified_split(labels, val_fraction, np.random.default_rng(seed))
    train_pixels = images[train_idx]
    mean, std = float(train_pixels.mean()), float(train_pixels.std())
    train_idx, val_idx = _cap(labels, train_idx, val_idx, seed, max_train, max_val)

    def build(idx: np.ndarray) -> TensorDataset:
        x = to_uint8(_resize(torch.from_numpy(images[idx]).unsqueeze(1), resolution))
        x = (x.to(torch.float32).div_(255.0) - mean) / std
        return TensorDataset(x.contiguous(), torch.from_numpy(labels[idx]))

    return DataSplit(build(train_idx), build(val_idx), len(classes), 1, classes, (mean,), (std,))


# --------------------------------------------------------------------------- cifar10


class _ArraysOnly(pickle.Unpickler):
    """CIFAR-10's own format is a pickle of dicts, lists, bytes and numpy arrays: only the
    globals a numpy array needs are resolved, so a file that would run code is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with path.open("rb") as f:
            obj = _ArraysOnly(f, encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"malformed CIFAR-10 file {path}: cannot unpickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"malformed CIFAR-10 file {path}: expected a dict, "
                         f"got {type(obj).__name__}")
    return obj


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3, 32, 32)`` uint8 images and int64 labels of one ``data_batch_*`` file."""
    obj = _unpickle(path)
    if b"data" not in obj or b"labels" not in obj:
        raise ValueError(f"malformed CIFAR-10 file {path}: needs b'data' and b'labels'")
    data = np.asarray(obj[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _CIFAR10_SIDE ** 2:
        raise ValueError(f"malformed CIFAR-10 file {path}: b'data' must be uint8 (N, 3072), "
                         f"got {data.dtype} {data.shape}")
    try:
        labels = np.asarray(obj[b"labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed CIFAR-10 file {path}: b'labels' are not integers") from exc
    if labels.size != data.shape[0] or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"malformed CIFAR-10 file {path}: need {data.shape[0]} labels in 0..9, "
                         f"got {labels.size} in {labels.min(initial=0)}..{labels.max(initial=0)}")
    return data.reshape(-1, 3, _CIFAR10_SIDE, _CIFAR10_SIDE), labels


def write_cifar10(root: str | Path, images: np.ndarray, labels: np.ndarray,
                  classes: Sequence[str],
                  test: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write ``(N, 3, 32, 32)`` uint8 ``images`` with labels in 0..9 as a CIFAR-10 "python
    version" folder ``root/cifar-10-batches-py`` (five ``data_batch_*`` files and
    ``batches.meta``, as the official archive has them; ``test``, images and labels, becomes
    its ``test_batch``) that :func:`make_datasets` reads; for tests and benchmarks that need the
    format without the real data. Returns the folder."""
    images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    side = _CIFAR10_SIDE
    if images.dtype != np.uint8 or images.shape[1:] != (3, side, side):
        raise ValueError(f"images must be uint8 (N, 3, {side}, {side}), got {images.dtype} "
                         f"{images.shape}")
    if labels.shape != images.shape[:1] or len(classes) != 10:
        raise ValueError(f"need one label per image and 10 class names, got {labels.shape} "
                         f"labels for {len(images)} images and {len(classes)} names")
    folder = Path(root) / _CIFAR10_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(images)), len(_CIFAR10_TRAIN_FILES))):
        with (folder / _CIFAR10_TRAIN_FILES[i]).open("wb") as f:
            pickle.dump({b"batch_label": f"training batch {i + 1} of 5".encode(),
                         b"data": images[part].reshape(len(part), -1),
                         b"labels": labels[part].tolist(),
                         b"filenames": [f"{j}.png".encode() for j in part]}, f)
    if test is not None:
        test_images, test_labels = np.asarray(test[0]), np.asarray(test[1], dtype=np.int64)
        with (folder / "test_batch").open("wb") as f:
            pickle.dump({b"batch_label": b"testing batch 1 of 1",
                         b"data": test_images.reshape(len(test_images), -1),
                         b"labels": test_labels.tolist(),
                         b"filenames": [f"test_{j}.png".encode() for j in
                                        range(len(test_images))]}, f)
    with (folder / _CIFAR10_META).open("wb") as f:
        pickle.dump({b"label_names": [str(c).encode() for c in classes],
                     b"num_cases_per_batch": -(-len(images) // 5), b"num_vis": 3 * side * side},
                    f)
    return folder


def _cifar10_files(root: Path) -> list[Path]:
    return [root / _CIFAR10_DIRNAME / name for name in (*_CIFAR10_TRAIN_FILES, _CIFAR10_META)]


@functools.lru_cache(maxsize=2)
def _cifar10_raw(root: str, stamp: tuple[tuple[int, int], ...]
                 ) -> tuple[torch.Tensor, np.ndarray, tuple[str, ...]]:
    """All training images (uint8 tensor), labels and class names; ``stamp`` (sizes and
    mtimes of the files) is part of the cache key so rewritten files are read again."""
    del stamp
    *batches, meta_path = _cifar10_files(Path(root))
    parts = [_read_cifar10_batch(path) for path in batches]
    meta = _unpickle(meta_path)
    names = meta.get(b"label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 10:
        raise ValueError(f"malformed CIFAR-10 file {meta_path}: b'label_names' must list "
                         "10 class names")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    images = torch.from_numpy(np.concatenate([images for images, _ in parts]))
    labels = np.concatenate([labels for _, labels in parts])
    labels.setflags(write=False)
    return images, labels, classes


def _make_cifar10(data_dir: Path, resolution: int, val_fraction: float, seed: int,
                  max_train: int | None, max_val: int | None, download: bool) -> DataSplit:
    files = _cifar10_files(data_dir)
    missing = [path.name for path in files if not path.is_file()]
    if missing and download:
        from torchvision.datasets import CIFAR10

        CIFAR10(root=str(data_dir), train=True, download=True)
        missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise ValueError(f"CIFAR-10 not found in {data_dir / _CIFAR10_DIRNAME} (missing "
                         f"{', '.join(missing)}); set `download: true` when online")
    stamp = tuple((path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    images, labels, classes = _cifar10_raw(str(data_dir.resolve()), stamp)
    train_idx, val_idx = stratified_split(labels, val_fraction, np.random.default_rng(seed))
    train_idx, val_idx = _cap(labels, train_idx, val_idx, seed, max_train, max_val)

    def build(idx: np.ndarray) -> _Uint8ImageDataset:
        return _Uint8ImageDataset(images[torch.from_numpy(idx)], labels[idx], resolution,
                                  CIFAR10_MEAN, CIFAR10_STD)

    return DataSplit(build(train_idx), build(val_idx), len(classes), 3, classes, CIFAR10_MEAN,
                     CIFAR10_STD)


# --------------------------------------------------------------------------- imagefolder


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a directory")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ValueError(f"image folder {root} has no class sub-folders")
    return dirs


def _scan(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """``(path, label)`` of every image under ``root/<class>/`` (recursively), sorted."""
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = root / name
        files = sorted(p for p in class_dir.rglob("*")
                       if p.is_file() and p.suffix.lower() in _IMG_EXTENSIONS
                       and not p.name.startswith("."))
        if not files:
            raise ValueError(f"class folder {class_dir} has no images "
                             f"({', '.join(_IMG_EXTENSIONS)})")
        samples.extend((path, label) for path in files)
    return samples


def _make_imagefolder(data_dir: Path, resolution: int, val_fraction: float, seed: int,
                      max_train: int | None, max_val: int | None) -> DataSplit:
    from torchvision import transforms

    train_dir, val_dir = data_dir / "train", data_dir / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        classes = tuple(p.name for p in _class_dirs(train_dir))
        val_classes = tuple(p.name for p in _class_dirs(val_dir))
        if val_classes != classes:
            raise ValueError(f"class folders differ between {train_dir} {list(classes)} "
                             f"and {val_dir} {list(val_classes)}")
        train_samples, val_samples = _scan(train_dir, classes), _scan(val_dir, classes)
        train_labels = np.array([label for _, label in train_samples], dtype=np.int64)
        val_labels = np.array([label for _, label in val_samples], dtype=np.int64)
        train_idx, val_idx = np.arange(len(train_samples)), np.arange(len(val_samples))
    else:
        classes = tuple(p.name for p in _class_dirs(data_dir))
        samples = _scan(data_dir, classes)
        labels = np.array([label for _, label in samples], dtype=np.int64)
        train_idx, val_idx = stratified_split(labels, val_fraction, np.random.default_rng(seed))
        train_samples = val_samples = samples
        train_labels = val_labels = labels
    train_idx = _cap_one(train_labels, train_idx, seed, 1, max_train)
    val_idx = _cap_one(val_labels, val_idx, seed, 2, max_val)
    transform = transforms.Compose([
        transforms.Resize((resolution, resolution),
                          interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    train = _ImageFileDataset([train_samples[i] for i in train_idx], transform)
    val = _ImageFileDataset([val_samples[i] for i in val_idx], transform)
    return DataSplit(train, val, len(classes), 3, classes, IMAGENET_MEAN, IMAGENET_STD)


# --------------------------------------------------------------------------- entry point


def _cap_one(labels: np.ndarray, idx: np.ndarray, seed: int, stream: int,
             limit: int | None) -> np.ndarray:
    """``idx`` cut to a stratified subset of ``limit`` items, drawn from stream ``stream``."""
    if limit is None or limit >= idx.size:
        return idx
    rng = np.random.default_rng((seed, stream))
    return idx[stratified_subset(labels[idx], limit, rng)]


def _cap(labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, seed: int,
         max_train: int | None, max_val: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (_cap_one(labels, train_idx, seed, 1, max_train),
            _cap_one(labels, val_idx, seed, 2, max_val))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_split_args(resolution: object, val_fraction: object, seed: object,
                     max_train: object, max_val: object) -> None:
    """Refuse, with one line, the arguments every ``make_*datasets`` entry point shares."""
    if not _is_int(resolution) or resolution < _MIN_RESOLUTION:
        raise ValueError(f"resolution must be an int >= {_MIN_RESOLUTION}, got {resolution!r}")
    if (not isinstance(val_fraction, numbers.Real) or isinstance(val_fraction, bool)
            or not math.isfinite(val_fraction) or not 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for arg, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{arg} must be None or an int >= 1, got {value!r}")


def make_datasets(name: str, resolution: int, *, data_dir: str | Path | None = None,
                  val_fraction: float = 0.2, seed: int = 0, max_train: int | None = None,
                  max_val: int | None = None, download: bool = False) -> DataSplit:
    """Build the train/validation datasets ``name`` (one of :data:`DATASETS`).

    Args:
        name: ``"digits"``, ``"cifar10"`` or ``"imagefolder"``; or ``"coco-detection"`` and
            ``"voc-segmentation"``, read by :mod:`nas.datasets`.
        resolution: side of the square images handed to the model, at least 4.
        data_dir: root of the data; required by ``cifar10`` (the folder that holds, or will
            hold, ``cifar-10-batches-py``) and ``imagefolder``; ignored by ``digits``.
        val_fraction: share of each class that goes to validation, in (0, 1); ignored by an
            ``imagefolder`` with its own ``train/`` and ``val/`` folders.
        seed: non-negative seed of the split and of the ``max_train``/``max_val`` subsets.
        max_train: keep at most this many training items (seeded, class-proportional subset).
        max_val: the same for validation.
        download: ``cifar10`` only: fetch missing files with torchvision (needs internet).

    Raises:
        ValueError: on an unknown ``name``, a bad argument, or missing or malformed data; the
            message names the bad value, file or folder.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in ("coco-detection", "voc-segmentation"):  # the formats of nas.datasets
        from nas.datasets import TASK_DATASETS

        if data_dir is None:
            raise ValueError(f"dataset {name!r} needs data_dir")
        return TASK_DATASETS[name](resolution, data_dir=data_dir, val_fraction=val_fraction,
                                   seed=seed, max_train=max_train, max_val=max_val)
    check_split_args(resolution, val_fraction, seed, max_train, max_val)
    resolution, seed = int(resolution), int(seed)
    val_fraction = float(val_fraction)
    if name == "digits":
        return _make_digits(resolution, val_fraction, seed, max_train, max_val)
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs data_dir")
    root = Path(data_dir).expanduser()
    if name == "cifar10":
        return _make_cifar10(root, resolution, val_fraction, seed, max_train, max_val, download)
    return _make_imagefolder(root, resolution, val_fraction, seed, max_train, max_val)
