"""Named baseline architectures (no torch needed to describe them)."""

from __future__ import annotations

from collections.abc import Callable

from .genome import Architecture, Stage

# (expansion t, channels c, repeats n, stride s) of MobileNetV2, Table 2 of Sandler et al. 2018.
MBV2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2(width_mult: float = 1.0, resolution: int = 224, small_input: bool = False,
                channel_divisor: int = 8) -> Architecture:
    """MobileNetV2 as torchvision builds it (``torchvision.models.mobilenet_v2``).

    ``small_input`` gives the usual 32x32 (CIFAR) variant: stem stride 1 and the second stage at
    stride 1, so the last feature map is 4x4 rather than 1x1.
    """
    stages = []
    for i, (t, c, n, s) in enumerate(MBV2_SETTINGS):
        stride = 1 if small_input and i == 1 else s
        stages.append(Stage("ibn", 3, t, c, n, stride))
    return Architecture(
        resolution=resolution,
        stem_channels=32,
        stem_stride=1 if small_input else 2,
        stages=tuple(stages),
        head_channels=1280,
        width_mult=width_mult,
        channel_divisor=channel_divisor,
    )


BASELINES: dict[str, Callable[[], Architecture]] = {
    "mobilenetv2": lambda: mobilenetv2(1.0),
    "mobilenetv2-w0.35": lambda: mobilenetv2(0.35),
    "mobilenetv2-w0.5": lambda: mobilenetv2(0.5),
    "mobilenetv2-w0.75": lambda: mobilenetv2(0.75),
    "mobilenetv2-w1.4": lambda: mobilenetv2(1.4),
    "mobilenetv2-cifar": lambda: mobilenetv2(1.0, resolution=32, small_input=True),
}
"""Named baseline architectures: ``mobilenetv2`` is torchvision's ``mobilenet_v2()`` exactly."""


def resolve_arch(text: str) -> Architecture:
    """A baseline name or an architecture string."""
    key = text.strip()
    if key in BASELINES:
        return BASELINES[key]()
    if ":" not in key:
        raise ValueError(
            f"{key!r} is neither a baseline ({', '.join(BASELINES)}) nor an architecture string"
        )
    return Architecture.from_string(key)
