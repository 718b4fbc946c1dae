"""Hardware back ends that measure latency, and a lazy registry of them.

Like Ray Tune's searcher registry, each back end is imported only when asked for, so that
importing hwnas does not import ZigZag, ONNX Runtime or CUDA.
"""

from __future__ import annotations

from collections.abc import Callable

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


BACKENDS: dict[str, Callable[[], type[Backend]]] = {
    "zigzag": _zigzag,
    "torch-cpu": _torch_cpu,
    "torch-cuda": _torch_cuda,
    "onnxruntime-cpu": _onnxruntime_cpu,
}


def create_backend(profile: HardwareProfile | str) -> Backend:
    """The back end that a profile (or a profile name) names, ready to measure."""
    if not isinstance(profile, HardwareProfile):
        profile = load_profile(profile)
    try:
        factory = BACKENDS[profile.backend]
    except KeyError:
        raise ValueError(f"profile {profile.name!r} names unknown back end {profile.backend!r}; "
                         f"known: {', '.join(BACKENDS)}") from None
    cls = factory()
    ok, why = cls.available()
    if not ok:
        raise ValueError(f"back end {profile.backend!r} is not available here: {why}")
    return cls(profile)


__all__ = ["BACKENDS", "Backend", "Measurement", "create_backend"]
