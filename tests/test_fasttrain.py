"""The in-memory training path: data held as uint8 on the device, augmentation on the device,
the path choice, the learning-rate rule, and that it learns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nas.config import TaskConfig, TrainingConfig, validate_config
from nas.data import CIFAR10_MEAN, CIFAR10_STD, make_datasets, write_cifar10
from nas.fastdata import augment, held_bytes, holdable, materialise
from nas.fasttrain import autocast_dtype, choose_path, scaled_lr
from nas.tasks import make_task, train
from searchspaces.genome import Architecture

CPU = torch.device("cpu")


TINY = ("r16_w1.0_d8:stem_c16_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e3_c24_r1_s2-ibn_k3_e3_c32_r1_s2-"
        "head_c64")  # 11k parameters: seconds per epoch on one busy core


def _arch() -> Architecture:
    return Architecture.from_string(TINY)


def _ramp(n: int = 3, c: int = 2, h: int = 6, w: int = 5) -> torch.Tensor:
    """Images whose pixel values name their (image, channel, row, column)."""
    x = torch.arange(n * c * h * w).reshape(n, c, h, w)
    return (x % 251).to(torch.uint8)


# --------------------------------------------------------------------------- held data


def test_digits_are_held_as_uint8_on_the_device_and_match_the_stream() -> None:
    split = make_datasets("digits", 16, seed=0, max_train=200, max_val=50)
    held = materialise(split, CPU, mirrorable=False)
    assert held.train_images.dtype == torch.uint8 and held.train_labels.dtype == torch.int64
    assert held.train_images.shape == (200, 1, 16, 16) and held.val_images.shape == (50, 1, 16, 16)
    assert held.train_images.device == CPU and held.mean.device == CPU
    stream_x, stream_y = split.train.tensors
    assert torch.equal(held.train_labels, stream_y)
    # both paths' digits are 8-bit images: normalising the held pixels gives the streaming
    # path's input up to float rounding
    assert (held.normalise(held.train_images) - stream_x).abs().max() <= 1e-5
    assert held_bytes(split, 16) == 250 * (16 * 16 + 8)


def test_cifar10_pixels_are_exact_at_32_and_resized_below(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 3, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 10
    write_cifar10(tmp_path, x, y, [f"c{i}" for i in range(10)])
    split = make_datasets("cifar10", 32, data_dir=tmp_path, val_fraction=0.25, seed=0)
    held = materialise(split, CPU, mirrorable=True)
    assert held.train_images.dtype == torch.uint8 and held.train_images.shape[1:] == (3, 32, 32)
    stream = torch.stack([split.train[i][0] for i in range(len(split.train))])
    assert torch.allclose(held.normalise(held.train_images), stream, atol=1e-5)
    # the written pixels come back exactly, each with its label
    written = {x[i].tobytes(): int(y[i]) for i in range(len(x))}
    held_x = torch.cat([held.train_images, held.val_images]).numpy()
    held_y = torch.cat([held.train_labels, held.val_labels]).tolist()
    assert {held_x[i].tobytes(): held_y[i] for i in range(len(held_x))} == written
    assert split.classes == tuple(f"c{i}" for i in range(10))
    small = materialise(make_datasets("cifar10", 16, data_dir=tmp_path, seed=0), CPU, True)
    assert small.train_images.shape[1:] == (3, 16, 16)
    assert torch.equal(held.mean.flatten(), torch.tensor(CIFAR10_MEAN))
    assert torch.equal(held.std.flatten(), torch.tensor(CIFAR10_STD))


def test_an_image_folder_is_read_once_into_uint8(tmp_path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    split = make_datasets("imagefolder", 8, data_dir=tmp_path, val_fraction=0.25, seed=0)
    held = materialise(split, CPU, mirrorable=True)
    assert held.train_images.shape == (6, 3, 8, 8) and held.val_images.shape == (2, 3, 8, 8)
    stream = torch.stack([split.train[i][0] for i in range(len(split.train))])
    step = 1 / 255 / min(split.std)
    assert (held.normalise(held.train_images) - stream).abs().max() <= step / 2 + 1e-5
    assert held.train_labels.tolist() == [split.train[i][1] for i in range(len(split.train))]


def test_the_task_holds_each_resolution_once() -> None:
    task = make_task(TaskConfig(dataset="digits", max_train=100, max_val=20), 0)
    first = task.device_data(16, CPU)
    assert task.device_data(16, CPU) is first
    assert task.device_data(24, CPU) is not first
    assert not first.mirrorable  # a mirrored digit is another glyph


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_held_data_lives_on_the_gpu() -> None:
    task = make_task(TaskConfig(dataset="digits", max_train=100, max_val=20), 0)
    held = task.device_data(16, torch.device("cuda"))
    assert held.train_images.is_cuda and held.train_images.dtype == torch.uint8


# --------------------------------------------------------------------------- augmentation


def test_augment_keeps_shape_and_dtype_and_replays_per_seed() -> None:
    x = _ramp()
    one = augment(x, torch.Generator().manual_seed(3), 2, True)
    assert one.shape == x.shape and one.dtype == torch.uint8
    assert torch.equal(one, augment(x, torch.Generator().manual_seed(3), 2, True))
    outs = {augment(_ramp(16), torch.Generator().manual_seed(s), 2, True).sum().item()
            for s in range(5)}
    assert len(outs) > 1  # other seeds, other crops


def test_flip_mirrors_and_no_padding_is_the_identity() -> None:
    x = _ramp(n=64)
    flipped = augment(x, torch.Generator().manual_seed(0), 0, True)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 10 < int(mirrored.sum()) < 54  # about half, each image its own coin
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), 0, False), x)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_crop_is_a_shifted_window_of_the_padded_image(mode: str) -> None:
    x = _ramp(n=32, h=6, w=5) + 1  # no zero pixels, so zero padding is visible
    pad = 2
    padded = torch.nn.functional.pad(x.float(), (pad,) * 4, mode="reflect" if mode == "reflect"
                                     else "constant").to(torch.uint8)
    out = augment(x, torch.Generator().manual_seed(1), pad, False, mode)
    shifts = set()
    for i in range(len(x)):  # every output is one in-bounds window of its padded image
        hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 5])]
        assert hits, f"image {i} is no window of its padded image"
        shifts.add(hits[0])
    assert len(shifts) > 3  # per-image offsets


def test_write_cifar10_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_cifar10(tmp_path, np.zeros((2, 3, 8, 8), np.uint8), np.zeros(2), "abcdefghij")
    with pytest.raises(ValueError, match="10 class names"):
        write_cifar10(tmp_path, np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2), ["a"])


def test_augment_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="padding mode"):
        augment(_ramp(), torch.Generator(), 1, False, "edge")
    with pytest.raises(ValueError, match="crop padding"):
        augment(_ramp(h=4, w=4), torch.Generator(), 4, False)


# --------------------------------------------------------------------------- choices


def test_lr_scales_linearly_with_the_batch() -> None:
    assert scaled_lr(2e-3, 16, 16) == pytest.approx(2e-3)
    assert scaled_lr(2e-3, 256, 16) == pytest.approx(3.2e-2)
    assert scaled_lr(1e-3, 8, 32) == pytest.approx(2.5e-4)


def test_auto_streams_a_dataset_over_the_memory_cap() -> None:
    split = make_datasets("digits", 16, seed=0, max_train=200, max_val=50)
    size_mib = held_bytes(split, 16) / 2**20
    assert choose_path(TrainingConfig(), split, 16, True) == "memory"
    assert choose_path(TrainingConfig(memory_cap_mib=size_mib / 2), split, 16, True) == "stream"
    assert choose_path(TrainingConfig(memory_cap_mib=size_mib / 2, data_path="memory"), split,
                       16, True) == "memory"  # asked for: held even over the cap
    assert choose_path(TrainingConfig(data_path="stream"), split, 16, True) == "stream"
    assert choose_path(TrainingConfig(), split, 16, False) == "stream"
    assert holdable(split) and not holdable(dataclasses.replace(split, mean=(), std=()))
    with pytest.raises(ValueError, match="data_path: memory needs a task"):
        choose_path(TrainingConfig(data_path="memory"), split, 16, False)


def test_over_the_cap_the_trial_trains_on_the_stream_path() -> None:
    task = make_task(TaskConfig(dataset="digits", max_train=64, max_val=32), 0)
    train(task, _arch(), TrainingConfig(epochs=1, memory_cap_mib=1e-3), 0, CPU,
          lambda epoch, metrics: None)
    assert not task._held  # nothing was held on a device


def test_autocast_dtype_defaults() -> None:
    assert autocast_dtype(CPU, None) is None and autocast_dtype(CPU, False) is None
    assert autocast_dtype(CPU, True) is torch.bfloat16
    if torch.cuda.is_available():
        assert autocast_dtype(torch.device("cuda"), None) in (torch.bfloat16, torch.float16)


@pytest.mark.parametrize(("section", "message"), [
    ({"data_path": "gpu"}, "training.data_path: unknown data_path 'gpu'; choose auto"),
    ({"augment": "mixup"}, "training.augment: unknown augment 'mixup'; choose one of auto"),
    ({"memory_cap_mib": 0}, "training.memory_cap_mib: Input should be greater than 0"),
    ({"label_smoothing": 1.0}, "training.label_smoothing: Input should be less than 1"),
])
def test_bad_training_fields_are_one_line_errors(section: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_config({"training": section}, "x.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- training


def test_memory_path_learns_digits_and_reports_throughput() -> None:
    torch.set_num_threads(1)
    task = make_task(TaskConfig(dataset="digits", max_train=480, max_val=200), 0)
    reports: list[tuple[int, dict]] = []
    training = TrainingConfig(epochs=2, lr=5e-3, data_path="memory")
    train(task, _arch(), training, 0, CPU, lambda e, m: reports.append((e, m)))
    assert [e for e, _ in reports] == [1, 2]
    last = reports[-1][1]
    assert last["accuracy"] > 0.4  # chance is 0.1; 0.58-0.64 over seeds 0-2
    assert last["images_per_second"] > 0 and 0 < last["epoch_seconds"] <= last["train_seconds"]
    assert np.isfinite(last["train_loss"]) and np.isfinite(last["val_loss"])
    again: list[dict] = []
    train(task, _arch(), training, 0, CPU, lambda e, m: again.append(m))
    assert again[-1]["accuracy"] == last["accuracy"]  # a seed replays the trial
    assert again[-1]["train_loss"] == last["train_loss"]


def test_both_paths_train_the_same_batches_in_the_same_order(tmp_path) -> None:
    """On 8-bit images, with augmentation, label smoothing and a larger batch off (the
    defaults), the in-memory path learns what the streaming path learns at the same seed: same
    initial weights, same batch order, same dropout, so the same losses up to float rounding."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    write_cifar10(tmp_path, rng.integers(0, 256, size=(96, 3, 32, 32), dtype=np.uint8),
                  np.arange(96) % 10, [f"c{i}" for i in range(10)])
    task = make_task(TaskConfig(dataset="cifar10", data_dir=str(tmp_path)), 0)
    arch = Architecture.from_string(TINY.replace("r16", "r32", 1))  # CIFAR's pixels, unresized
    runs: dict[str, list[dict]] = {"stream": [], "memory": []}
    for path, reports in runs.items():
        train(task, arch, TrainingConfig(epochs=2, batch_size=8, data_path=path), 3, CPU,
              lambda e, m, into=reports: into.append(m))
    for stream, memory in zip(runs["stream"], runs["memory"], strict=True):
        for key in ("train_loss", "val_loss"):
            assert memory[key] == pytest.approx(stream[key], rel=1e-6), key
        assert memory["accuracy"] == stream["accuracy"]
