"""An independent peak-activation trace of a torch model, for testing ``estimators.memory``.

It knows nothing of the genome: it traces the model's forward pass with ``torch.fx``, propagates
shapes, and runs a liveness analysis over the real graph under the memory model's execution rules
(BatchNorm, activations, dropout, residual adds and elementwise products run in place on an
operand that dies there;
flatten and identity are views). The peak is the maximum over graph nodes of the bytes of buffers
alive at that node.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

_INPLACE_MODULES = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Hardswish, nn.SiLU)
_VIEW_MODULES = (nn.Flatten, nn.Identity)
_INPLACE_FUNCTIONS = {operator.add, torch.add, operator.mul, torch.mul, torch.sigmoid, F.relu,
                      F.relu6, F.dropout, operator.iadd}
_VIEW_FUNCTIONS = {torch.flatten}
_VIEW_METHODS = {"flatten", "view", "reshape"}


def _kind(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if isinstance(mod, _VIEW_MODULES):
            return "view"
        if isinstance(mod, _INPLACE_MODULES):
            return "inplace"
    elif node.op == "call_function":
        if node.target in _VIEW_FUNCTIONS:
            return "view"
        if node.target in _INPLACE_FUNCTIONS:
            return "inplace"
    elif node.op == "call_method" and node.target in _VIEW_METHODS:
        return "view"
    return "new"


def trace_peak_activation_bytes(model: nn.Module, input_shape: tuple[int, ...],
                                bytes_per_element: int = 4) -> int:
    model = model.eval()
    gm = fx.symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    nodes = list(gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((index[u] for u in n.users), default=index[n]) for n in nodes}
    buffer_of: dict[fx.Node, fx.Node] = {}
    aliases: dict[fx.Node, list[fx.Node]] = {}
    for node in nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "output" or not isinstance(meta, fx.passes.shape_prop.TensorMetadata):
            continue
        inputs = [a for a in node.all_input_nodes if a in buffer_of]
        kind = _kind(gm, node)
        target = None
        if kind == "view":
            target = buffer_of[inputs[0]]
        elif kind == "inplace":
            numel = torch.Size(meta.shape).numel()
            for a in inputs:
                buf = buffer_of[a]
                dies_here = max(last_use[x] for x in aliases[buf]) == index[node]
                if dies_here and torch.Size(buf.meta["tensor_meta"].shape).numel() == numel:
                    target = buf
                    break
        if target is None:
            target = node
            aliases[node] = []
        buffer_of[node] = target
        aliases[target].append(node)
    spans = []
    for buf, members in aliases.items():
        size = torch.Size(buf.meta["tensor_meta"].shape).numel() * bytes_per_element
        spans.append((index[buf], max(last_use[m] for m in members), size))
    return max(
        sum(size for start, end, size in spans if start <= step <= end)
        for step in range(len(nodes))
    )
