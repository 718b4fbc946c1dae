"""ONNX Runtime on this machine's CPU (``onnxruntime-cpu``).

Each block, and each whole network, is prepared like the PyTorch back ends prepare it (BatchNorm
folded, eval-time no-ops dropped), exported to ONNX with :func:`~searchspaces.export.export_model`
(the ``torch.export``-based exporter, input ``input``) into a temporary folder, loaded into an
``onnxruntime.InferenceSession`` on the ``CPUExecutionProvider`` with fixed intra-/inter-op thread
counts and graph optimizations on (ORT fuses the activations into the convs and would fold the
BatchNorms itself), then timed with the wall clock like the PyTorch CPU back end: warm-up,
repeats, median and interquartile range.

Export is the slow part (~0.3-1 s a block, a few seconds a network); the exported model of a
block is kept in a small cache keyed by the block's shape, so a block that repeats under another
name is exported once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass
from torch import nn

from estimators.profiles import SETTINGS_CONFIG, HardwareProfile, parse_settings
from searchspaces.blocks import block_input_shape
from searchspaces.export import export_model
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec

from .base import Backend, Measurement
from .timing import (
    LoopSettings,
    block_workload,
    check_choice,
    cpu_model,
    network_workload,
    prepare_for_inference,
    random_input,
    summarize,
    time_host,
)

if TYPE_CHECKING:
    import onnxruntime

OPTIMIZATION_LEVELS: tuple[str, ...] = ("disable", "basic", "extended", "all")
_EXPORT_LOGGERS: tuple[str, ...] = ("torch.onnx", "torch.export", "torch._dynamo",
                                    "torch.fx", "onnxscript", "onnx_ir")
CACHE_SIZE = 64
"""Exported block models kept per back end (a few MB at most each)."""
_TORCHLIB_REGISTRIES: dict[Any, Any] = {}


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class OnnxRuntimeCPUSettings(LoopSettings):
    """ORT session options plus the shared loop settings. ``optimization`` is the graph
    optimization level (``all`` = ORT_ENABLE_ALL, the default)."""

    intra_op_num_threads: int = Field(1, ge=1)
    inter_op_num_threads: int = Field(1, ge=1)
    optimization: str = "all"

    @field_validator("optimization")
    @classmethod
    def _optimization(cls, value: str) -> str:
        return check_choice(value, OPTIMIZATION_LEVELS)


class OnnxRuntimeCPUBackend(Backend):
    """ONNX Runtime's CPU execution provider, fixed threads, wall-clock timing."""

    name = "onnxruntime-cpu"

    def __init__(self, profile: HardwareProfile) -> None:
        super().__init__(profile)
        self.settings = parse_settings(OnnxRuntimeCPUSettings, profile)
        self._exported: OrderedDict[BlockSpec, bytes] = OrderedDict()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError as err:
            return False, f"onnxruntime is not installed ({err})"
        if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
            return False, "onnxruntime has no CPUExecutionProvider"
        return True, ""

    def measure_block(self, block: BlockSpec) -> Measurement:
        example = random_input(block_input_shape(block, self.settings.batch))
        return self._measure(self.export_block(block), example.numpy())

    def export_block(self, block: BlockSpec) -> bytes:
        """The serialized ONNX model of ``block`` at this profile's batch size (input ``input``),
        exported once per block shape (the name does not matter) and kept in a small cache."""
        key = dataclasses.replace(block, name="")
        model = self._exported.get(key)
        if model is None:
            module, example = block_workload(block, self.settings.batch)
            model = export_onnx(module, example)
            self._exported[key] = model
            while len(self._exported) > CACHE_SIZE:
                self._exported.popitem(last=False)
        else:
            self._exported.move_to_end(key)
        return model

    def measure_network(self, arch: Architecture, num_classes: int = 1000,
                        in_channels: int = 3) -> Measurement:
        module, example = network_workload(arch, num_classes, in_channels, self.settings.batch)
        return self._measure(export_onnx(module, example), example.numpy())

    def session(self, model: bytes) -> onnxruntime.InferenceSession:
        """An ``InferenceSession`` for the serialized ONNX ``model`` with this profile's
        options."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_num_threads
        options.inter_op_num_threads = self.settings.inter_op_num_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.settings.optimization]
        options.log_severity_level = 3
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _measure(self, model: bytes, example: np.ndarray) -> Measurement:
        session = self.session(model)
        feed = {session.get_inputs()[0].name: example}
        return summarize(time_host(lambda: session.run(None, feed), self.settings),
                         self.settings.statistic)

    def environment(self) -> dict[str, str]:
        import onnxruntime

        env = super().environment()
        env.update({
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
            "intra_op_num_threads": str(self.settings.intra_op_num_threads),
            "inter_op_num_threads": str(self.settings.inter_op_num_threads),
            "optimization": self.settings.optimization,
            "batch": str(self.settings.batch),
            "cpu": cpu_model(),
        })
        return env


def export_onnx(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` prepared like the PyTorch back ends prepare it
    (:func:`~estimators.backends.timing.prepare_for_inference`: BatchNorm folded, no-ops dropped),
    exported by :func:`~searchspaces.export.export_model` into a temporary folder and returned as
    the serialized ONNX model, with the exporter's logging and printing silenced.

    ORT would fold the BatchNorms itself; folding first gives the same graph and makes the export
    of a whole network about 40% faster (fewer ops to decompose and optimize).
    """
    prepared = prepare_for_inference(module)
    with (tempfile.TemporaryDirectory(prefix="hwnas-ort-") as folder, _quiet(),
          _cached_torchlib_registry()):
        path = export_model(prepared, example, Path(folder) / "model.onnx", "onnx")
        return path.read_bytes()


@contextlib.contextmanager
def _cached_torchlib_registry() -> Iterator[None]:
    """Build the exporter's ATen -> ONNX op registry once per process instead of once per export.

    ``torch.onnx.export`` rebuilds it from torchlib on every call (about half of a block's export
    time). ``export_model`` passes no custom translation table, so nothing mutates the registry
    and one copy can serve every export. This touches a private torch API: where it is missing
    the exporter runs unchanged.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        cls = _registration.ONNXRegistry
        original = cls.__dict__["from_torchlib"]
    except (ImportError, AttributeError, KeyError):
        yield
        return
    build = original.__func__

    def cached(klass: type, *args: Any, **kwargs: Any) -> Any:
        key = (klass, args, tuple(sorted(kwargs.items())))
        if key not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[key] = build(klass, *args, **kwargs)
        return _TORCHLIB_REGISTRIES[key]

    cls.from_torchlib = classmethod(cached)
    try:
        yield
    finally:
        cls.from_torchlib = original


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter: its loggers go to ERROR and its stdout/stderr prints are dropped."""
    loggers = [logging.getLogger(name) for name in _EXPORT_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
