"""The back-end interface: measure blocks and whole networks on one hardware target."""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from estimators.profiles import HardwareProfile
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec


@dataclass(frozen=True)
class Measurement:
    """A latency in milliseconds. ``spread_ms`` is the interquartile range of the repeats (the
    noise floor of a real device; 0 for a deterministic simulator). ``reference_fastest_ms``
    is, for a back end timing against a reference, the fastest repeat of the reference in the
    rounds that timed this (else ``None``): a build keeps the fastest over all its rows as the
    machine's own speed (:func:`~estimators.build.table_scale`)."""

    latency_ms: float
    spread_ms: float = 0.0
    reference_fastest_ms: float | None = None


class Backend(ABC):
    """Measures latency on one target, described by a :class:`HardwareProfile`.

    Subclasses set ``name`` (the ``backend:`` value of the profiles they serve) and implement
    :meth:`measure_block` and :meth:`measure_network`. Blocks are the
    :class:`~searchspaces.layers.BlockSpec` s of :func:`~searchspaces.layers.decompose`:
    ``stem``, ``ibn``, ``fibn``, ``conv``, ``head``, ``pool``, ``classifier``.
    """

    name: ClassVar[str]
    supports_cache: ClassVar[bool] = False
    """Whether the constructor takes ``cache_dir`` (a folder for memoized measurements)."""
    deterministic: ClassVar[bool] = False
    """Whether measuring the same workload twice gives the same number (a simulator): then a
    second timing pass cannot disagree with the first and is not run."""

    def __init__(self, profile: HardwareProfile) -> None:
        if profile.backend != self.name:
            raise ValueError(f"profile {profile.name!r} is for back end {profile.backend!r}, "
                             f"not {self.name!r}")
        self.profile = profile

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this back end can run here, and why not."""
        return True, ""

    @abstractmethod
    def measure_block(self, block: BlockSpec) -> Measurement:
        """Latency of one block run on its own, input already on the device."""

    def measure_blocks(self, blocks: Sequence[BlockSpec]) -> list[Measurement]:
        return [self.measure_block(b) for b in blocks]

    @property
    def times_blocks_in_context(self) -> bool:
        """Whether a build should time blocks inside whole networks
        (:meth:`measure_network_blocks`) instead of one by one (:meth:`measure_blocks`)."""
        return False

    def measure_network_blocks(self, arch: Architecture, num_classes: int = 1000,
                               in_channels: int = 3) -> list[Measurement]:
        """The latency of each of ``arch``'s :func:`~searchspaces.layers.decompose` blocks,
        timed inside a forward pass of the whole network; only back ends that say
        :attr:`times_blocks_in_context` implement it."""
        raise NotImplementedError(f"back end {self.name!r} does not time blocks in context")

    @abstractmethod
    def measure_network(self, arch: Architecture, num_classes: int = 1000,
                        in_channels: int = 3) -> Measurement:
        """Latency of the whole network run end to end (not the sum of its blocks)."""

    def reference_ms(self) -> float | None:
        """The time of the fixed reference workload that a back end divides its timings by and
        scales them back with (calibrated on first use, or its profile's ``reference_ms``), so
        that a build can keep it for its evaluations; ``None`` for a back end without one."""
        return None

    def environment(self) -> dict[str, str]:
        """What a measurement table records beside the numbers: back end, profile, library
        versions, machine."""
        return {
            "backend": self.name,
            "profile": self.profile.name,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "node": platform.node(),
        }
