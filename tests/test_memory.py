from __future__ import annotations

import numpy as np
import pytest
import torchvision

from estimators.memory import DTYPE_BYTES, memory_report
from memtrace import trace_peak_activation_bytes
from searchspaces.baselines import BASELINES, mobilenetv2
from searchspaces.model import build_model
from searchspaces.spaces import get_space


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_peak_matches_independent_trace_for_baselines(name: str) -> None:
    arch = BASELINES[name]()
    model = build_model(arch)
    traced = trace_peak_activation_bytes(model, (3, arch.resolution, arch.resolution))
    assert memory_report(arch).peak_activation_bytes == traced


def test_peak_matches_trace_of_torchvisions_own_model() -> None:
    traced = trace_peak_activation_bytes(torchvision.models.mobilenet_v2(), (3, 224, 224))
    assert memory_report(mobilenetv2()).peak_activation_bytes == traced
    # by hand: blocks.1 (24 ch -> 96 ch expanded at 112x112 -> depthwise stride 2 to 56x56):
    # the depthwise step holds its 96x112x112 input and 96x56x56 output.
    assert traced == (96 * 112 * 112 + 96 * 56 * 56) * 4


@pytest.mark.slow
def test_peak_matches_trace_for_20_random_architectures() -> None:
    rng = np.random.default_rng(2026)
    spaces = [get_space("mbv2", 32, True), get_space("mbv2", 8, False),
              get_space("mbv2-small", 16, True), get_space("mbv2-small", 16, False)]
    for i in range(20):
        space = spaces[i % len(spaces)]
        arch = space.sample(rng)
        for _ in range(i % 3):
            arch = space.mutate(arch, rng)
        model = build_model(arch, num_classes=10)
        traced = trace_peak_activation_bytes(model, (3, arch.resolution, arch.resolution))
        assert memory_report(arch, num_classes=10).peak_activation_bytes == traced, arch


def test_dtype_and_batch_scale_linearly() -> None:
    arch = mobilenetv2(0.75)
    base = memory_report(arch)
    for dtype, size in DTYPE_BYTES.items():
        rep = memory_report(arch, dtype=dtype, batch_size=3)
        assert rep.peak_activation_bytes == base.peak_activation_bytes // 4 * size * 3
        assert rep.param_bytes[dtype] == base.params * size
        assert rep.params == base.params and rep.macs == base.macs
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        memory_report(arch, dtype="fp8")
    with pytest.raises(ValueError, match="batch size"):
        memory_report(arch, batch_size=0)


def test_per_layer_table_adds_up() -> None:
    arch = mobilenetv2()
    rep = memory_report(arch)
    assert sum(r.params for r in rep.layers) == rep.params
    assert sum(r.macs for r in rep.layers) == rep.macs
    assert max(r.live_bytes for r in rep.layers) == rep.peak_activation_bytes
    names = [r.name for r in rep.layers]
    assert names[0] == "stem.conv" and names[-1] == "classifier"
    assert "blocks.1.conv_dw" == rep.peak_layer
    adds = [r for r in rep.layers if r.op == "add"]
    assert len(adds) == 10  # MobileNetV2 has 10 residual connections
    d = rep.to_dict()
    assert d["layers"][0]["input_shape"] == (3, 224, 224)
    assert "layers" not in rep.to_dict(per_layer=False)
