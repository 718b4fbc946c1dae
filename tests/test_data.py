from __future__ import annotations

import hashlib
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from nas import data
from nas.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataSplit,
    make_datasets,
    stratified_split,
    stratified_subset,
)

# --------------------------------------------------------------------------- helpers


def _images(dataset: torch.utils.data.Dataset) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _labels(dataset: torch.utils.data.Dataset) -> list[int]:
    return [int(dataset[i][1]) for i in range(len(dataset))]


def _hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in images}


@pytest.fixture(scope="module")
def sk_digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


# --------------------------------------------------------------------------- split helpers


def test_stratified_split_is_disjoint_complete_and_stratified() -> None:
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    train, val = stratified_split(labels, 0.3, np.random.default_rng(0))
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(labels.size))
    # round(0.3 * n) clamped to [1, n - 1]; a singleton class stays in training.
    assert Counter(labels[val].tolist()) == {0: 3, 1: 2, 2: 1}
    assert Counter(labels[train].tolist()) == {0: 7, 1: 3, 2: 1, 3: 1}
    again = stratified_split(labels, 0.3, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))


def test_stratified_subset_is_proportional_and_seeded() -> None:
    labels = np.repeat(np.arange(3), [60, 30, 10])
    sub = stratified_subset(labels, 10, np.random.default_rng(1))
    assert sub.size == 10 and np.unique(sub).size == 10
    assert Counter(labels[sub].tolist()) == {0: 6, 1: 3, 2: 1}
    assert np.array_equal(sub, stratified_subset(labels, 10, np.random.default_rng(1)))
    assert not np.array_equal(sub, stratified_subset(labels, 10, np.random.default_rng(2)))
    assert np.array_equal(stratified_subset(labels, 500, np.random.default_rng(1)),
                          np.arange(100))
    # Every class is kept once the subset has room for one item each.
    assert set(labels[stratified_subset(labels, 3, np.random.default_rng(3))]) == {0, 1, 2}


# --------------------------------------------------------------------------- digits


@pytest.mark.parametrize("resolution", [8, 16])
def test_digits_shapes_sizes_and_classes(resolution: int,
                                         sk_digits: tuple[np.ndarray, np.ndarray]) -> None:
    split = make_datasets("digits", resolution, val_fraction=0.2, seed=0)
    assert isinstance(split, DataSplit)
    assert (split.num_classes, split.in_channels) == (10, 1)
    assert split.classes == tuple(str(i) for i in range(10))
    _, sk_labels = sk_digits
    expected_val = sum(round(0.2 * n) for n in np.bincount(sk_labels))
    assert len(split.val) == expected_val
    assert len(split.train) + len(split.val) == 1797
    image, label = split.train[0]
    assert image.shape == (1, resolution, resolution) and image.dtype == torch.float32
    assert label.dtype == torch.int64
    # Every class in both splits.
    assert set(_labels(split.train)) == set(_labels(split.val)) == set(range(10))


def test_digits_normalised_with_train_statistics() -> None:
    native = make_datasets("digits", 8, seed=0)
    train = native.train.tensors[0]
    assert torch.isfinite(train).all()
    assert abs(train.mean().item()) < 1e-4
    assert abs(train.std().item() - 1.0) < 1e-3
    val = native.val.tensors[0]
    assert abs(val.mean().item()) < 0.1 and abs(val.std().item() - 1.0) < 0.1
    # Bilinear upsampling keeps the range and roughly the statistics.
    big = make_datasets("digits", 32, seed=0).train.tensors[0]
    assert torch.isfinite(big).all()
    assert abs(big.mean().item()) < 0.05 and 0.8 < big.std().item() < 1.01
    assert big.min() >= train.min() - 1e-5 and big.max() <= train.max() + 1e-5


def test_digits_labels_match_sklearn(sk_digits: tuple[np.ndarray, np.ndarray]) -> None:
    sk_images, sk_labels = sk_digits
    by_image = {x.tobytes(): int(y) for x, y in zip(sk_images, sk_labels)}
    split = make_datasets("digits", 8, seed=3)
    x_train = split.train.tensors[0]
    # Undo the affine standardisation: the smallest value is pixel 0, the largest pixel 16.
    lo, hi = x_train.min(), x_train.max()
    seen = 0
    for dataset in (split.train, split.val):
        images, labels = dataset.tensors
        raw = torch.round((images - lo) / (hi - lo) * 16).to(torch.uint8).numpy()
        for x, y in zip(raw, labels.tolist()):
            assert by_image[x[0].tobytes()] == y
            seen += 1
    assert seen == 1797


def test_digits_split_disjoint_and_deterministic_by_seed() -> None:
    a = make_datasets("digits", 8, seed=0)
    b = make_datasets("digits", 8, seed=0)
    c = make_datasets("digits", 8, seed=1)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert torch.equal(a.val.tensors[1], b.val.tensors[1])
    train_a, val_a = _hashes(a.train.tensors[0]), _hashes(a.val.tensors[0])
    assert len(train_a) == len(a.train) and len(val_a) == len(a.val)  # no duplicates in digits
    assert not train_a & val_a
    # Another seed: another validation set. The normalisation differs with the split, so
    # compare raw pixels (the smallest value is pixel 0, the largest pixel 16).
    val_c = c.val.tensors[0]
    assert len(val_c) == len(val_a)
    lo_a, lo_c = a.train.tensors[0].min(), c.train.tensors[0].min()
    hi_a, hi_c = a.train.tensors[0].max(), c.train.tensors[0].max()
    raw_a = torch.round((a.val.tensors[0] - lo_a) / (hi_a - lo_a) * 16)
    raw_c = torch.round((val_c - lo_c) / (hi_c - lo_c) * 16)
    overlap = _hashes(raw_a) & _hashes(raw_c)
    assert len(overlap) < 0.5 * len(val_a)


def test_digits_max_train_and_max_val() -> None:
    full = make_datasets("digits", 8, seed=0)
    small = make_datasets("digits", 12, seed=0, max_train=100, max_val=30)
    assert (len(small.train), len(small.val)) == (100, 30)
    assert small.train.tensors[0].shape == (100, 1, 12, 12)
    counts = Counter(small.train.tensors[1].tolist())
    assert set(counts) == set(range(10)) and max(counts.values()) - min(counts.values()) <= 2
    # Capping does not change the split: the capped images are a subset of the full split.
    capped = make_datasets("digits", 8, seed=0, max_train=100, max_val=30)
    assert _hashes(capped.train.tensors[0]) <= _hashes(full.train.tensors[0])
    assert _hashes(capped.val.tensors[0]) <= _hashes(full.val.tensors[0])
    # A cap at or above the split size keeps everything.
    assert len(make_datasets("digits", 8, max_train=5000).train) == len(full.train)


# --------------------------------------------------------------------------- cifar10

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def _write_cifar(root: Path, per_batch: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tiny CIFAR-10 python-version folder; returns the training images (N, 3072) and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    all_x, all_y = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        y = [(i * per_batch + j) % 10 for j in range(per_batch)]
        with (folder / f"data_batch_{i}").open("wb") as f:
            pickle.dump({b"batch_label": f"training batch {i} of 5".encode(), b"data": x,
                         b"labels": y, b"filenames": [b"x.png"] * per_batch}, f)
        all_x.append(x)
        all_y.extend(y)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": rng.integers(0, 256, size=(10, 3072), dtype=np.uint8),
                     b"labels": list(range(10))}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR_NAMES],
                     b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f)
    return np.concatenate(all_x), np.asarray(all_y)


def _cifar_raw(images: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return torch.round((images * std + mean) * 255).to(torch.uint8).reshape(len(images), -1).numpy()


def test_cifar10_reads_the_python_layout(tmp_path: Path) -> None:
    x, y = _write_cifar(tmp_path)  # 40 images, 4 per class
    split = make_datasets("cifar10", 32, data_dir=tmp_path, val_fraction=0.25, seed=0)
    assert (split.num_classes, split.in_channels) == (10, 3)
    assert split.classes == tuple(CIFAR_NAMES)
    assert (len(split.train), len(split.val)) == (30, 10)
    assert sorted(_labels(split.val)) == list(range(10))  # one of each class
    by_image = {img.tobytes(): int(label) for img, label in zip(x, y)}
    train_raw, val_raw = _cifar_raw(_images(split.train)), _cifar_raw(_images(split.val))
    for raw, labels in ((train_raw, _labels(split.train)), (val_raw, _labels(split.val))):
        assert [by_image[r.tobytes()] for r in raw] == labels
    assert not {r.tobytes() for r in train_raw} & {r.tobytes() for r in val_raw}
    again = make_datasets("cifar10", 32, data_dir=tmp_path, val_fraction=0.25, seed=0)
    assert torch.equal(_images(again.val), _images(split.val))


@pytest.mark.parametrize("resolution", [16, 40])
def test_cifar10_resizes_and_caps(tmp_path: Path, resolution: int) -> None:
    _write_cifar(tmp_path)
    split = make_datasets("cifar10", resolution, data_dir=str(tmp_path), seed=2, max_train=12,
                          max_val=5)
    assert (len(split.train), len(split.val)) == (12, 5)
    image, label = split.train[0]
    assert image.shape == (3, resolution, resolution) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    assert torch.isfinite(_images(split.train)).all()


def test_cifar10_missing_dir_without_download(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="download: true") as info:
        make_datasets("cifar10", 32, data_dir=missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError, match="needs data_dir"):
        make_datasets("cifar10", 32)


def test_cifar10_download_fetches_then_reads(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    calls: list[tuple[str, bool]] = []

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, download))
            _write_cifar(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    split = make_datasets("cifar10", 8, data_dir=tmp_path, download=True)
    assert calls == [(str(tmp_path), True)]
    assert len(split.train) + len(split.val) == 40
    make_datasets("cifar10", 8, data_dir=tmp_path, download=True)  # files present: no fetch
    assert len(calls) == 1


def test_cifar10_malformed_batch_names_the_file(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="data_batch_3"):
        make_datasets("cifar10", 32, data_dir=tmp_path)
    with batch.open("wb") as f:  # a valid pickle with the wrong shape
        pickle.dump({b"data": np.zeros((4, 100), dtype=np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(ValueError, match="data_batch_3.*3072"):
        make_datasets("cifar10", 32, data_dir=tmp_path)
    with batch.open("wb") as f:  # labels out of range
        pickle.dump({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}, f)
    with pytest.raises(ValueError, match="data_batch_3"):
        make_datasets("cifar10", 32, data_dir=tmp_path)


def test_cifar10_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    import os

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned",))

    _write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(ValueError, match="data_batch_2.*refused global"):
        make_datasets("cifar10", 32, data_dir=tmp_path)


def test_cifar10_rewritten_files_are_read_again(tmp_path: Path) -> None:
    _write_cifar(tmp_path, per_batch=8)  # 4 per class: 3 train + 1 val each
    assert len(make_datasets("cifar10", 8, data_dir=tmp_path).train) == 30
    _write_cifar(tmp_path, per_batch=10)  # 5 per class: 4 train + 1 val each
    assert len(make_datasets("cifar10", 8, data_dir=tmp_path).train) == 40


# --------------------------------------------------------------------------- imagefolder

COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "fish": (0, 0, 255)}


def _write_folder(root: Path, per_class: int, size: tuple[int, int] = (12, 10)) -> None:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")


def _dominant_channels(dataset: torch.utils.data.Dataset) -> list[int]:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    raw = _images(dataset) * std + mean
    return raw.mean(dim=(2, 3)).argmax(dim=1).tolist()


def test_imagefolder_split_classes_and_shapes(tmp_path: Path) -> None:
    _write_folder(tmp_path, per_class=5)
    (tmp_path / "fish" / "notes.txt").write_text("not an image")
    Image.new("L", (9, 9), 40).save(tmp_path / "cat" / "grey.png")  # grayscale -> RGB
    split = make_datasets("imagefolder", 8, data_dir=tmp_path, val_fraction=0.2, seed=0)
    assert split.classes == ("cat", "dog", "fish")
    assert (split.num_classes, split.in_channels) == (3, 3)
    # cat has 6 images, dog and fish 5: round(0.2 * n) = 1 each to validation.
    assert (len(split.train), len(split.val)) == (13, 3)
    assert sorted(_labels(split.val)) == [0, 1, 2]
    image, label = split.train[len(split.train) - 1]
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and label == 2
    coloured = [i for i in range(len(split.train))
                if split.train.samples[i][0].name != "grey.png"]
    channels = _dominant_channels(split.train)
    assert all(channels[i] == split.train.targets[i] for i in coloured)
    paths = {p for p, _ in split.train.samples} | {p for p, _ in split.val.samples}
    assert len(paths) == 16
    other = make_datasets("imagefolder", 8, data_dir=tmp_path, val_fraction=0.2, seed=0)
    assert other.val.samples == split.val.samples
    capped = make_datasets("imagefolder", 8, data_dir=tmp_path, seed=0, max_train=3)
    assert sorted(capped.train.targets) == [0, 1, 2]


def test_imagefolder_uses_train_and_val_folders(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train", per_class=4)
    _write_folder(tmp_path / "val", per_class=2, size=(20, 20))
    split = make_datasets("imagefolder", 16, data_dir=tmp_path, val_fraction=0.5)
    assert split.classes == ("cat", "dog", "fish")
    assert (len(split.train), len(split.val)) == (12, 6)
    assert all(p.parent.parent.name == "val" for p, _ in split.val.samples)
    assert split.val[0][0].shape == (3, 16, 16)
    assert _dominant_channels(split.val) == split.val.targets


def test_imagefolder_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ValueError, match="does not exist") as info:
        make_datasets("imagefolder", 8, data_dir=missing)
    assert str(missing) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        make_datasets("imagefolder", 8, data_dir=empty)
    (empty / "cat").mkdir()
    with pytest.raises(ValueError, match="has no images") as info:
        make_datasets("imagefolder", 8, data_dir=empty)
    assert str(empty / "cat") in str(info.value)
    broken = tmp_path / "broken"
    _write_folder(broken, per_class=2)
    (broken / "dog" / "0.png").write_bytes(b"not a png")
    split = make_datasets("imagefolder", 8, data_dir=broken, val_fraction=0.5)
    everything = torch.utils.data.ConcatDataset([split.train, split.val])
    with pytest.raises(ValueError, match=r"dog/0\.png"):
        _images(everything)


# --------------------------------------------------------------------------- arguments


def test_bad_name_lists_datasets() -> None:
    with pytest.raises(ValueError, match="mnist") as info:
        make_datasets("mnist", 32)
    assert all(name in str(info.value) for name in DATASETS)


@pytest.mark.parametrize(("kwargs", "bad"), [
    ({"resolution": 3}, "resolution"),
    ({"resolution": 16.0}, "resolution"),
    ({"resolution": True}, "resolution"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": float("nan")}, "val_fraction"),
    ({"seed": -1}, "seed"),
    ({"max_train": 0}, "max_train"),
    ({"max_val": 2.5}, "max_val"),
])
def test_bad_arguments_raise(kwargs: dict[str, object], bad: str) -> None:
    args: dict[str, object] = {"resolution": 8, **kwargs}
    resolution = args.pop("resolution")
    with pytest.raises(ValueError, match=bad):
        make_datasets("digits", resolution, **args)  # type: ignore[arg-type]


def test_digits_raw_arrays_are_cached_and_read_only() -> None:
    first, second = data._digits_raw(), data._digits_raw()
    assert first[0] is second[0]
    assert not first[0].flags.writeable
