"""Export a built model to ONNX or TorchScript, atomically (a failed export leaves no file)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from .files import atomic_path

EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")


def export_model(model: nn.Module, example: torch.Tensor, out: str | Path, fmt: str) -> Path:
    """Write ``model`` traced on ``example`` to ``out`` in ``fmt`` (``onnx``/``torchscript``).

    The file is written beside ``out`` under a temporary name and renamed into place, so a
    crash or an error never leaves a partial file. ONNX uses the ``torch.export``-based exporter
    with input ``input`` and output ``logits`` (a detector's one output per scale:
    ``logits_0``, coarsest, ``logits_1``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
    out = Path(out).expanduser().resolve()
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")
    model = model.eval()
    with torch.no_grad():
        outputs = model(example)
    names = (["logits"] if isinstance(outputs, torch.Tensor)
             else [f"logits_{i}" for i in range(len(outputs))])
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            torch.onnx.export(model, (example,), str(tmp), input_names=["input"],
                              output_names=names, external_data=False, verbose=False)
        else:
            torch.jit.trace(model, example).save(str(tmp))
    return out
