"""Hardware back ends that measure latency, and a lazy registry of them.

Like Ray Tune's searcher registry, each back end is imported only when asked for, so that
importing hwnas does not import ZigZag, ONNX Runtime or CUDA.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from estimators.profiles import HardwareProfile, load_profile

from .base import Backend, Measurement


def _zigzag() -> type[Backend]:
    from .zigzag import ZigZagBackend

    return ZigZagBackend


def _torch_cpu() -> type[Backend]:
    from .torch_backends import TorchCPUBackend

    return TorchCPUBackend


def _torch_cuda() -> type[Backend]:
    from .torch_backends import TorchCUDABackend

    return TorchCUDABackend


def _onnxruntime_cpu() -> type[Backend]:
    from .onnxruntime_cpu import OnnxRuntimeCPUBackend

    return OnnxRuntimeCPUBackend


def _roofline() -> type[Backend]:
    from .roofline import RooflineBackend

    return RooflineBackend


BACKENDS: dict[str, Callable[[], type[Backend]]] = {
    "roofline": _roofline,
    "zigzag": _zigzag,
    "torch-cpu": _torch_cpu,
    "torch-cuda": _torch_cuda,
    "onnxruntime-cpu": _onnxruntime_cpu,
}


def backend_class(profile: HardwareProfile) -> type[Backend]:
    """The back-end class that ``profile`` names (imported on first use), without creating one."""
    try:
        factory = BACKENDS[profile.backend]
    except KeyError:
        raise ValueError(f"profile {profile.name!r} names unknown back end {profile.backend!r}; "
                         f"known: {', '.join(BACKENDS)}") from None
    return factory()


def create_backend(profile: HardwareProfile | str, cache_dir: str | Path | None = None
                   ) -> Backend:
    """The back end that a profile (or a profile name) names, ready to measure. ``cache_dir``
    is handed to back ends that memoize measurements on disk (ZigZag) and ignored by others."""
    if not isinstance(profile, HardwareProfile):
        profile = load_profile(profile)
    cls = backend_class(profile)
    ok, why = cls.available()
    if not ok:
        raise ValueError(f"back end {profile.backend!r} is not available here: {why}")
    if cache_dir is not None and cls.supports_cache:
        return cls(profile, cache_dir=cache_dir)  # type: ignore[call-arg]
    return cls(profile)


__all__ = ["BACKENDS", "Backend", "Measurement", "backend_class", "create_backend"]
