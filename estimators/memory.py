"""Exact memory model: parameters, MACs and peak activation memory of an architecture.

Definitions (computed from the genome, no torch needed):

- **Parameters**: conv weights (no bias) + BatchNorm gamma/beta (2 per channel) + classifier
  weight and bias; exactly ``sum(p.numel() for p in model.parameters())`` of the built model.
  BatchNorm running statistics are buffers, folded into the conv at inference, and not counted.
- **MACs**: multiply-accumulates of convolutions (``H_out * W_out * C_out * C_in / groups * K^2``)
  and of the classifier (``C_in * C_out``); BatchNorm, activations, adds and pooling count zero.
  This is the convention of torchvision's model table (300 M for MobileNetV2) and of fvcore.
- **Peak activation memory** for sequential, layer-by-layer execution with BatchNorm folded into
  its conv and activations applied in place (what TFLite, ONNX Runtime and accelerator compilers
  do): the maximum over execution steps of the bytes of tensors alive at that step, i.e. the
  step's input and output plus any block input kept for a later residual add. A residual add
  writes into its second operand's buffer, so it holds the two operands only. The network input
  counts (it is alive during the stem). This is the measure of MCUNet (Lin et al., 2020,
  "peak SRAM"). A task head's branches add what they keep alive: a feature map a detection
  or segmentation head reads stays alive from the block that writes it to the head that reads
  it, each scale's detection output to the end, and the steps inside an LR-ASPP block hold
  what :meth:`~searchspaces.layers.BlockSpec.held_elements` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec, decompose

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True)
class LayerMemory:
    """One execution step of the per-layer table. Shapes are ``(C, H, W)`` per sample."""

    name: str
    op: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    kernel: int
    stride: int
    groups: int
    params: int
    macs: int
    live_bytes: int


@dataclass(frozen=True)
class MemoryReport:
    params: int
    macs: int
    param_bytes: dict[str, int]
    peak_activation_bytes: int
    peak_layer: str
    dtype: str
    batch_size: int
    layers: tuple[LayerMemory, ...]

    def to_dict(self, per_layer: bool = True) -> dict[str, object]:
        out = asdict(self)
        if per_layer:
            out["layers"] = [asdict(layer) for layer in self.layers]
        else:
            out.pop("layers")
        return out


def memory_report(arch: Architecture, num_classes: int = 1000, in_channels: int = 3,
                  dtype: str = "fp32", batch_size: int = 1) -> MemoryReport:
    """Parameters, MACs and peak activation memory of ``arch`` (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    scale = dtype_bytes(dtype) * batch_size
    blocks = decompose(arch, num_classes, in_channels)
    kept = _last_reads(blocks)
    rows: list[LayerMemory] = []
    for index, block in enumerate(blocks):
        source = block.source if block.source >= 0 else index - 1
        others = [p for p, last in kept.items() if p < index <= last and p != source]
        for position, (layer, held) in enumerate(zip(block.layers(), block.held_elements())):
            live = layer.input_elements + held
            if layer.op not in ("add", "mul"):  # these write into an operand's buffer
                live += layer.output_elements
            if position > 0 and kept.get(source, index) > index and not block.residual:
                live += _output_elements(blocks[source])  # a feature map a later block reads
            live += sum(_output_elements(blocks[p]) for p in others)
            if layer.op == "add" and block.kind == "segskip":  # the sum is the branch's buffer
                others = [p for p in others if p != index - 1]
            rows.append(LayerMemory(
                name=layer.name,
                op=layer.op,
                input_shape=(layer.cin, layer.in_res, layer.in_res),
                output_shape=(layer.cout, layer.out_res, layer.out_res),
                kernel=layer.kernel,
                stride=layer.stride,
                groups=layer.groups,
                params=layer.params,
                macs=layer.macs,
                live_bytes=live * scale,
            ))
    params = sum(r.params for r in rows)
    peak = max(rows, key=lambda r: r.live_bytes)
    return MemoryReport(
        params=params,
        macs=sum(r.macs for r in rows),
        param_bytes={name: params * size for name, size in DTYPE_BYTES.items()},
        peak_activation_bytes=peak.live_bytes,
        peak_layer=peak.name,
        dtype=dtype,
        batch_size=batch_size,
        layers=tuple(rows),
    )


def _output_elements(block: BlockSpec) -> int:
    return block.layers()[-1].output_elements


def _last_reads(blocks: Sequence[BlockSpec]) -> dict[int, int]:
    """Per block index, the index of the last block that reads its output: its consumers
    through ``source`` (a task head reading a feature map), an LR-ASPP skip block reading the
    branch before it, and the end of the network for a detection head's outputs."""
    last: dict[int, int] = {}
    for index, block in enumerate(blocks):
        reads = [block.source if block.source >= 0 else index - 1]
        if block.kind == "segskip":
            reads.append(index - 1)
        for producer in reads:
            last[producer] = max(last.get(producer, -1), index)
        if block.kind == "dethead":
            last[index] = len(blocks) - 1
    return last


def count_macs(model: object, input_shape: Sequence[int]) -> int:
    """Count conv and linear MACs of any torch model by running it once with forward hooks.

    The same counter is used on torchvision's models and on ours, so the two can be compared;
    :func:`memory_report` computes the same number analytically.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ValueError(f"count_macs needs a torch.nn.Module, got {type(model).__name__}")
    total = 0

    def conv_hook(module: nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        per_out = (module.in_channels // module.groups) * kh * kw
        total += out.numel() // out.shape[0] * per_out

    def linear_hook(module: nn.Linear, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
