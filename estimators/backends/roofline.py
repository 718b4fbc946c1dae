"""An analytical roofline model of a PE-array accelerator: instant and deterministic.

Each layer takes ``max(compute cycles, memory cycles) + a fixed per-layer overhead``:

- a dense conv on a P x P array computes P output x P input channels per cycle, so it needs
  ``out_res^2 * ceil(cout / P) * ceil(cin / P) * k^2`` cycles: channel counts are padded to P,
  which is what makes a channel count one above a multiple of P cost a whole extra pass;
- a depthwise conv has no input-channel reduction to spread over the second array dimension and
  uses one row: ``out_res^2 * ceil(C / P) * k^2`` cycles (the reason fused IBNs win on NPUs);
- linear layers are a 1x1 conv on a 1x1 map, a task head's prediction conv (``pconv``) a conv;
  adds, products and pooling stream ``elements / P`` per cycle, a bilinear resize reads four
  taps per output element on P lanes;
- memory cycles are the bytes of input (and a product's gate vector), output and weights over
  the DRAM bytes per cycle.

This is the classic roofline argument (Williams et al., CACM 2009) at layer granularity. It
serves design-phase what-ifs, fast tests of the estimator pipeline, and as a cross-check of the
ZigZag back end, not as a substitute for it.
"""

from __future__ import annotations

from pydantic import Field
from pydantic.dataclasses import dataclass

from estimators.profiles import SETTINGS_CONFIG, HardwareProfile, parse_settings
from searchspaces.genome import Architecture
from searchspaces.layers import BlockSpec, LayerSpec, layers

from .base import Backend, Measurement


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class RooflineSettings:
    """The analytic target: its clock, its DRAM bandwidth, the bytes of one element and a fixed
    cost per layer (setup, synchronisation), all positive."""

    clock_mhz: float = Field(800.0, gt=0)
    dram_bytes_per_cycle: float = Field(32.0, gt=0)
    bytes_per_element: float = Field(1.0, gt=0)
    layer_overhead_cycles: float = Field(200.0, gt=0)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


class RooflineBackend(Backend):
    name = "roofline"
    deterministic = True

    def __init__(self, profile: HardwareProfile) -> None:
        super().__init__(profile)
        self.settings = parse_settings(RooflineSettings, profile)

    def layer_cycles(self, layer: LayerSpec) -> float:
        p = self.profile.parallelism_factor
        o2 = layer.out_res**2
        if layer.op in ("conv", "pconv"):
            compute = o2 * _ceil(layer.cout, p) * _ceil(layer.cin, p) * layer.kernel**2
        elif layer.op == "dwconv":
            compute = o2 * _ceil(layer.cout, p) * layer.kernel**2
        elif layer.op == "linear":
            compute = _ceil(layer.cout, p) * _ceil(layer.cin, p)
        elif layer.op == "resize":  # four bilinear taps per output element, P lanes
            compute = o2 * _ceil(layer.cout, p) * 4
        else:  # add, mul, pool: stream the elements
            compute = _ceil(layer.input_elements * (2 if layer.op == "add" else 1), p)
        weights = layer.params if layer.op in ("conv", "pconv", "dwconv", "linear") else 0
        gate = layer.cin if layer.op == "mul" else 0  # the broadcast vector
        moved = (layer.input_elements + gate + layer.output_elements + weights)
        memory = moved * self.settings.bytes_per_element / self.settings.dram_bytes_per_cycle
        return max(compute, memory) + self.settings.layer_overhead_cycles

    def _ms(self, cycles: float) -> float:
        return cycles / (self.settings.clock_mhz * 1e3)

    def measure_block(self, block: BlockSpec) -> Measurement:
        return Measurement(self._ms(sum(self.layer_cycles(lay) for lay in block.layers())))

    def measure_network(self, arch: Architecture, num_classes: int = 1000,
                        in_channels: int = 3) -> Measurement:
        cycles = sum(self.layer_cycles(lay) for lay in layers(arch, num_classes, in_channels))
        return Measurement(self._ms(cycles))
