"""Datasets held on the trial's device as uint8, with augmentation in batch form on the device.

The streaming path (:func:`nas.tasks.train` with a ``DataLoader``) pays Python per image:
indexing, resizing, normalising and collating. A brief trial on a GPU spends most of its time
there. A dataset that fits in device memory (digits, CIFAR-10, a small ImageFolder after
resizing) is instead materialised once as a uint8 ``(N, C, H, W)`` tensor at the trial's
resolution plus int64 labels (:class:`DeviceData`; 3 KiB an image at 32x32 RGB, so CIFAR-10 is
147 MiB); every batch is then gathered, augmented (:func:`augment`) and normalised
(:meth:`DeviceData.normalise`) by a handful of tensor operations on the device.

uint8 is a quarter of float32, and exact: every dataset's images are 8-bit on the streaming
path too, after their resize (:func:`nas.data.to_uint8`), so both paths see the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nas.data import DataSplit, to_uint8


def holdable(data: DataSplit) -> bool:
    """Whether ``data`` says how its images are standardised, which :func:`materialise` needs
    to turn them back into pixels (the classification datasets of :mod:`nas.data` do)."""
    return len(data.mean) == len(data.std) == data.in_channels


def held_bytes(data: DataSplit, resolution: int) -> int:
    """Bytes :func:`materialise` would hold for ``data`` at ``resolution`` (uint8 images plus
    int64 labels), known without loading an image."""
    items = len(data.train) + len(data.val)
    return items * (data.in_channels * resolution * resolution + 8)


def _denormalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Standardised float images back to uint8 pixels (``x * std + mean`` in [0, 1])."""
    return to_uint8(images.mul(std).add_(mean))


def _pixels(dataset: Dataset, mean: torch.Tensor, std: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and int64 labels of every item of ``dataset`` (on the CPU)."""
    if hasattr(dataset, "pixels"):  # CIFAR-10: uint8 already, resized in chunks
        return dataset.pixels(), torch.as_tensor(dataset.targets, dtype=torch.int64)
    if isinstance(dataset, TensorDataset):  # digits: standardised float tensors
        images, labels = dataset.tensors
        return _denormalise(images, mean, std), labels.to(torch.int64)
    # anything else (an ImageFolder) item by item, once: files are opened and resized here
    parts = [(_denormalise(x, mean, std), y.to(torch.int64))
             for x, y in DataLoader(dataset, batch_size=256)]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


@dataclass(frozen=True)
class DeviceData:
    """A dataset split held on one device: uint8 ``(N, C, H, W)`` images, int64 labels, and
    the per-channel standardisation as ``(1, C, 1, 1)`` float32 tensors."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    mirrorable: bool

    def normalise(self, images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """uint8 pixels to the standardised float32 input the model expects (as the streaming
        path's datasets produce it); ``channels_last`` gives the NHWC layout cuDNN prefers."""
        x = images.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def flips(self, augmentation: str) -> bool:
        """Whether ``augmentation`` (one of :data:`nas.config.AUGMENTATIONS`) mirrors images."""
        return augmentation == "crop_flip" or (augmentation == "auto" and self.mirrorable)


def materialise(data: DataSplit, device: torch.device, mirrorable: bool) -> DeviceData:
    """Hold ``data`` (already at the trial's resolution) on ``device`` as :class:`DeviceData`.

    ``mirrorable``: a horizontally flipped image is still of its class.
    """
    if not holdable(data):
        raise ValueError(f"the dataset does not say how its {data.in_channels}-channel images "
                         f"are standardised (mean {data.mean}, std {data.std}); use "
                         "training.data_path: stream")
    mean = torch.tensor(data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32).view(1, -1, 1, 1)
    train_x, train_y = _pixels(data.train, mean, std)
    val_x, val_y = _pixels(data.val, mean, std)
    return DeviceData(train_x.to(device), train_y.to(device), val_x.to(device), val_y.to(device),
                      mean.to(device), std.to(device), mirrorable)


def augment(images: torch.Tensor, generator: torch.Generator, padding: int, flip: bool,
            mode: str = "reflect") -> torch.Tensor:
    """Random crop with ``padding`` and, if ``flip``, horizontal flip of half the images, on a
    uint8 ``(N, C, H, W)`` batch in one gather on its device.

    Each image gets its own offsets ``(dy, dx)`` in ``[-padding, padding]`` (a crop of the
    padded image, as torchvision's ``RandomCrop(size, padding)``) and its own coin for the flip,
    all drawn from ``generator`` (which must live on the images' device), so a seed replays the
    same batch. ``mode``: ``reflect`` mirrors the border (no black frame, which brief training
    would otherwise have to learn to ignore) or ``zeros`` pads with 0 (black).
    """
    if mode not in ("reflect", "zeros"):
        raise ValueError(f"unknown padding mode {mode!r}; use reflect or zeros")
    n, c, h, w = images.shape
    if not 0 <= padding < min(h, w):
        raise ValueError(f"crop padding must be in [0, {min(h, w) - 1}] for {h}x{w} images, "
                         f"got {padding}")
    device = images.device
    dy = torch.randint(-padding, padding + 1, (n, 1), generator=generator, device=device)
    dx = torch.randint(-padding, padding + 1, (n, 1), generator=generator, device=device)
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    if flip:
        mirrored = torch.rand((n, 1), generator=generator, device=device) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    inside = None
    if mode == "reflect":
        rows = torch.where(rows < 0, -rows, torch.where(rows >= h, 2 * (h - 1) - rows, rows))
        cols = torch.where(cols < 0, -cols, torch.where(cols >= w, 2 * (w - 1) - cols, cols))
    else:
        inside = (((rows >= 0) & (rows < h))[:, None, :, None]
                  & ((cols >= 0) & (cols < w))[:, None, None, :])
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    out = images[torch.arange(n, device=device)[:, None, None, None],
                 torch.arange(c, device=device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    return out if inside is None else out * inside
