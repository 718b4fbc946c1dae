from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from estimators.memory import count_macs, memory_report
from searchspaces.baselines import BASELINES, mobilenetv2
from searchspaces.blocks import IBN, ConvBlock, FusedIBN
from searchspaces.layers import decompose, layers
from searchspaces.model import build_model
from searchspaces.spaces import SPACES, get_space


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.4])
def test_mobilenetv2_matches_torchvision(width: float) -> None:
    ours = build_model(mobilenetv2(width))
    theirs = torchvision.models.mobilenet_v2(width_mult=width)
    assert n_params(ours) == n_params(theirs)
    assert count_macs(ours, (3, 224, 224)) == count_macs(theirs, (3, 224, 224))
    # the same layer shapes in the same order
    shapes = [tuple(m.weight.shape) for m in ours.modules() if isinstance(m, nn.Conv2d)]
    assert shapes == [tuple(m.weight.shape) for m in theirs.modules()
                      if isinstance(m, nn.Conv2d)]


def test_mobilenetv2_reference_figures() -> None:
    arch = BASELINES["mobilenetv2"]()
    report = memory_report(arch)
    assert report.params == 3_504_872
    assert report.macs == count_macs(torchvision.models.mobilenet_v2(), (3, 224, 224))
    assert 300.7e6 < report.macs < 300.9e6


def test_blocks_follow_their_definitions() -> None:
    x = torch.randn(2, 16, 8, 8)
    ibn = IBN(16, 16, 3, 1, 6)
    assert ibn.has_skip and ibn.conv_pw.weight.shape == (96, 16, 1, 1)
    assert ibn.conv_dw.groups == 96 and ibn.conv_dw.weight.shape == (96, 1, 3, 3)
    assert ibn(x).shape == x.shape
    no_expand = IBN(16, 24, 5, 2, 1)
    assert isinstance(no_expand.conv_pw, nn.Identity) and not no_expand.has_skip
    assert no_expand.conv_dw.weight.shape == (16, 1, 5, 5)
    assert no_expand(x).shape == (2, 24, 4, 4)
    fused = FusedIBN(16, 32, 3, 2, 4)
    assert fused.conv_exp.weight.shape == (64, 16, 3, 3) and fused.conv_exp.groups == 1
    assert fused(x).shape == (2, 32, 4, 4) and not fused.has_skip
    conv = ConvBlock(16, 16, 5, 1)
    assert conv.has_skip and conv(x).shape == x.shape
    assert isinstance(conv.act1, nn.ReLU6)


def test_residual_is_really_added() -> None:
    block = ConvBlock(4, 4, 3, 1).eval()
    with torch.no_grad():
        block.conv.weight.zero_()  # the conv path gives relu6(bn(0)) == 0 in eval
        x = torch.randn(1, 4, 5, 5)
        assert torch.allclose(block(x), x)


@pytest.mark.slow
def test_decomposition_covers_every_layer_of_the_model(rng: np.random.Generator) -> None:
    for name in sorted(SPACES):
        space = get_space(name, 8, False)
        for _ in range(5):
            arch = space.sample(rng)
            model = build_model(arch, num_classes=10)
            modules = dict(model.named_modules())
            convs = {n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
            specs = [lay for lay in layers(arch, 10) if lay.op in ("conv", "dwconv", "linear")]
            names = {lay.name for lay in specs}
            assert names == convs
            for lay in specs:
                mod = modules[lay.name]
                if isinstance(mod, nn.Conv2d):
                    assert (mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0],
                            mod.groups) == (lay.cin, lay.cout, lay.kernel, lay.stride, lay.groups)
            blocks = decompose(arch, 10)
            assert sum(lay.macs for b in blocks for lay in b.layers()) == count_macs(
                model, (3, arch.resolution, arch.resolution))
            assert sum(lay.params for b in blocks for lay in b.layers()) == n_params(model)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from(sorted(SPACES)),
       p=st.sampled_from([8, 16, 32]), curated=st.booleans(), steps=st.integers(0, 3))
def test_every_sample_and_mutation_builds_and_runs(seed: int, space: str, p: int, curated: bool,
                                                   steps: int) -> None:
    sp = get_space(space, p, curated)
    rng = np.random.default_rng(seed)
    arch = sp.sample(rng)
    for _ in range(steps):
        arch = sp.mutate(arch, rng)
    sp.validate(arch)
    model = build_model(arch, num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    assert n_params(model) == memory_report(arch, 7, 1).params


def test_build_model_accepts_strings_and_rejects_bad_ones() -> None:
    arch = mobilenetv2(0.5, resolution=32, small_input=True)
    model = build_model(arch.to_string(), num_classes=10)
    assert model.arch == arch.to_string()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="bad token"):
        build_model(arch.to_string().replace("k3", "kk3", 1))
    with pytest.raises(ValueError, match="num_classes"):
        build_model(arch, num_classes=0)
