"""Task heads in the genome: detection (CenterNet) and segmentation (LR-ASPP) heads are part of
the candidate, resolved by ``decompose`` and priced exactly by the memory model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from estimators.memory import memory_report
from memtrace import trace_peak_activation_bytes
from searchspaces.blocks import block_input_shape, make_module
from searchspaces.genome import Architecture
from searchspaces.layers import decompose
from searchspaces.model import HEATMAP_PRIOR_BIAS, build_model
from searchspaces.spaces import get_space

BODY = ("r32_w1.0_d8:stem_c32_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s1-ibn_k3_e6_c32_r3_s2-"
        "ibn_k3_e6_c64_r4_s2-ibn_k3_e6_c96_r3_s1-ibn_k3_e6_c160_r3_s2-ibn_k3_e6_c320_r1_s1-")


@pytest.mark.parametrize("head", ["head_c1280", "det_c64_n1", "det_c64_n2", "seg_c128_o4",
                                  "seg_c96_o8", "seg_c128_o2"])
def test_head_strings_round_trip(head: str) -> None:
    arch = Architecture.from_string(BODY + head)
    assert arch.to_string() == BODY + head
    assert arch.head_string() == head


@pytest.mark.parametrize("head, message", [
    ("det_c64", "lacks n"),
    ("seg_c64_n2", "bad token 'n2'"),
    ("det_c64_n3", "head scales must be 1 or 2"),
    ("seg_c64_o5", "head stride must be one of"),
    ("fpn_c64", "last element must be a head"),
])
def test_bad_heads_name_the_problem(head: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Architecture.from_string(BODY + head)


def test_segmentation_stride_must_exist_in_the_backbone() -> None:
    arch = Architecture.from_string(BODY + "seg_c128_o16")  # this backbone stops at stride 8
    with pytest.raises(ValueError, match=r"output stride 16 is not a stride.*\[1, 2, 4, 8\]"):
        decompose(arch, 3)


def test_two_scale_detection_needs_a_stride_two_stage() -> None:
    flat = Architecture.from_string("r32_w1.0_d8:stem_c32_s1-ibn_k3_e1_c16_r2_s1-det_c64_n2")
    with pytest.raises(ValueError, match="needs a stage of stride 2"):
        decompose(flat, 3)


def test_model_outputs_follow_the_contract() -> None:
    x = torch.randn(2, 3, 32, 32)
    det = build_model(BODY + "det_c64_n2", num_classes=3).eval()
    coarse, fine = det(x)
    assert coarse.shape == (2, 7, 4, 4) and fine.shape == (2, 7, 8, 8)
    for head in det.det:  # CenterNet's prior: every cell starts at p(object) = 0.1
        assert torch.allclose(head.pred.bias[:3], torch.full((3,), HEATMAP_PRIOR_BIAS))
        assert torch.all(head.pred.bias[3:] == 0)
    seg = build_model(BODY + "seg_c128_o4", num_classes=5).eval()
    assert seg(x).shape == (2, 5, 32, 32)
    assert build_model(BODY + "head_c1280", num_classes=4)(x).shape == (2, 4)


def test_head_blocks_read_the_right_feature_maps() -> None:
    blocks = decompose(Architecture.from_string(BODY + "det_c64_n2"), 3)
    det0, det1 = blocks[-2:]
    assert (det0.kind, det0.cin, det0.in_res, det0.mid, det0.cout) == ("dethead", 320, 4, 64, 7)
    assert blocks[det1.source].out_res == 8 and blocks[det1.source + 1].stride == 2
    high, low = decompose(Architecture.from_string(BODY + "seg_c128_o4"), 3)[-2:]
    assert (high.kind, high.in_res, high.out_res) == ("lraspp", 4, 8)
    assert (low.kind, low.in_res, low.out_res, low.cin) == ("segskip", 8, 32, 96)


@pytest.mark.parametrize("head", ["det", "seg"])
def test_spaces_search_the_head(head: str) -> None:
    space = get_space("mbv2-small", 8, True, head=head)
    classifier = get_space("mbv2-small", 8, True)
    assert set(space.dimensions()) - set(classifier.dimensions()) == {space.head_dimension}
    assert space.size() == classifier.size() * len(space.head_options)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        arch = space.mutate(space.sample(rng), rng)
        assert arch.head_kind == head and space.from_choices(space.to_choices(arch)) == arch
        seen.add(arch.head_string())
    assert len(seen) == 2  # both head options come up
    with pytest.raises(ValueError, match="head kind head outside space"):
        space.validate(classifier.baseline())


def test_classifier_samples_are_unchanged_by_heads() -> None:
    """A classifier space draws nothing for a head, so seeded searches repeat exactly."""
    space = get_space("mbv2-small", 8, True)
    det = get_space("mbv2-small", 8, True, head="det")
    a = space.sample(np.random.default_rng(5))
    b = det.sample(np.random.default_rng(5))
    assert a.stages == b.stages and a.resolution == b.resolution


@pytest.mark.parametrize("head", ["det", "seg"])
def test_params_are_exact_and_layers_name_modules(head: str) -> None:
    space = get_space("mbv2-small", 8, True, head=head)
    rng = np.random.default_rng(1)
    for _ in range(4):
        arch = space.sample(rng)
        model = build_model(arch, num_classes=6)
        report = memory_report(arch, num_classes=6)
        assert report.params == sum(p.numel() for p in model.parameters())
        modules = {name for name, _ in model.named_modules()}
        assert {layer.name for layer in report.layers if layer.params} <= modules


@pytest.mark.parametrize("head, classes, head_channels", [
    ("det", 20, 512), ("det", 600, 2048), ("seg", 300, 128), ("seg", 5, 128)])
def test_peak_matches_the_independent_trace_with_heads(head: str, classes: int,
                                                       head_channels: int) -> None:
    """Wide heads and many classes put the peak inside the head, where branches keep feature
    maps alive (the chosen cases peak in ``det.1`` and ``seg.low.resize``)."""
    space = get_space("mbv2-small", 8, True, head=head)
    rng = np.random.default_rng(3)
    peaks = set()
    for _ in range(3):
        arch = replace(space.sample(rng), head_channels=head_channels, width_mult=0.5)
        traced = trace_peak_activation_bytes(build_model(arch, num_classes=classes),
                                             (3, arch.resolution, arch.resolution))
        report = memory_report(arch, num_classes=classes)
        assert report.peak_activation_bytes == traced, arch
        peaks.add(report.peak_layer.split(".")[0])
    if classes >= 300:
        assert peaks & {"det", "seg"}


@pytest.mark.parametrize("head", ["det_c64_n2", "seg_c128_o4"])
def test_head_blocks_build_standalone_for_measuring(head: str) -> None:
    for spec in decompose(Architecture.from_string(BODY + head), 3)[-2:]:
        out = make_module(spec)(torch.randn(block_input_shape(spec, 2)))
        assert out.shape == (2, spec.cout, spec.out_res, spec.out_res)
