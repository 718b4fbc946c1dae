"""One suite for every trainability proxy in nas.proxies.PROXIES: deterministic for a seed,
finite, side-effect free, on every block kind of our space, and blind/dead nets ordered as each
proxy's definition says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.proxies import FLOOR, PROXIES, check_proxy, score_model
from searchspaces.model import build_model

# one stage kind per network: inverted bottlenecks (mbv2), fused ones, plain KxK convs
ARCHS = {
    "ibn": "r16_w0.5_d8:stem_c16_s1-ibn_k3_e1_c16_r1_s1-ibn_k3_e6_c24_r2_s2-ibn_k5_e4_c32_r1_s2"
           "-head_c64",
    "fibn": "r16_w0.5_d8:stem_c16_s1-fibn_k3_e3_c16_r1_s1-fibn_k5_e4_c32_r2_s2-head_c64",
    "conv": "r16_w0.5_d8:stem_c16_s1-conv_k3_c16_r2_s1-conv_k5_c32_r1_s2-head_c64",
}
# Proxies that read the model's own weights: a net with all weights zero is dead to them.
# Zen-score re-initialises the weights by definition (Gaussian), so it scores the architecture.
READS_WEIGHTS = ("naswot", "synflow", "grad_norm", "snip")


def model_and_batch(kind: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(ARCHS[kind], num_classes=10, in_channels=1)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(8, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    return model, images, labels


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list, list, bool]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    return (state, [None if p.grad is None else p.grad.clone() for p in params],
            [p.requires_grad for p in params], model.training)


def same(a: tuple, b: tuple) -> bool:
    (sa, ga, ra, ta), (sb, gb, rb, tb) = a, b
    return (sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
            and all((x is None and y is None) or (x is not None and y is not None
                                                  and torch.equal(x, y)) for x, y in zip(ga, gb))
            and ra == rb and ta == tb)


@pytest.mark.parametrize("kind", list(ARCHS))
@pytest.mark.parametrize("name", list(PROXIES))
def test_deterministic_finite_and_side_effect_free(name: str, kind: str) -> None:
    model, images, labels = model_and_batch(kind)
    # a model carrying gradients of its own, in eval mode, one frozen parameter
    nn.functional.cross_entropy(model(images), labels).backward()
    next(model.parameters()).requires_grad_(False)
    model.eval()
    before = snapshot(model)
    rng_before = torch.random.get_rng_state()
    first = PROXIES[name](model, images, labels, 3)
    assert math.isfinite(first)
    assert same(before, snapshot(model)), f"{name} changed the model"
    assert next(model.parameters()).dtype == torch.float32
    assert torch.equal(rng_before, torch.random.get_rng_state()), f"{name} used the global RNG"
    assert PROXIES[name](model, images, labels, 3) == first
    assert score_model(name, model, images, labels, 3) == first


@pytest.mark.parametrize("name", list(PROXIES))
def test_seed_matters_only_where_the_proxy_draws(name: str) -> None:
    model, images, labels = model_and_batch("ibn")
    a, b = (PROXIES[name](model, images, labels, s) for s in (0, 1))
    if name == "zen":  # Gaussian weights and inputs are drawn from the seed
        assert a != b
    elif name in ("naswot", "synflow"):  # eval-mode passes: no randomness at all
        assert a == b


@pytest.mark.parametrize("name", READS_WEIGHTS)
@pytest.mark.parametrize("kind", list(ARCHS))
def test_dead_net_scores_below_a_normal_one(name: str, kind: str) -> None:
    model, images, labels = model_and_batch(kind)
    normal = score_model(name, model, images, labels, 0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.zero_()
    dead = score_model(name, model, images, labels, 0)
    assert dead < normal
    assert dead == FLOOR or math.isfinite(dead)


@pytest.mark.parametrize("kind", list(ARCHS))
def test_zen_scores_the_architecture_not_the_weights(kind: str) -> None:
    model, images, labels = model_and_batch(kind)
    normal = score_model("zen", model, images, labels, 0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.zero_()
    assert score_model("zen", model, images, labels, 0) == pytest.approx(normal, rel=1e-9)


def test_deeper_wider_net_has_more_synflow_and_zen() -> None:
    """Both papers' premise: capacity (depth x width) raises the score."""
    small, images, labels = model_and_batch("conv")
    torch.manual_seed(0)
    big = build_model("r16_w1.0_d8:stem_c16_s1-conv_k3_c32_r3_s1-conv_k5_c64_r2_s2-head_c64",
                      num_classes=10, in_channels=1)
    for name in ("synflow", "zen"):
        assert score_model(name, big, images, labels, 0) > score_model(name, small, images,
                                                                       labels, 0)


def test_unknown_proxy_is_one_line() -> None:
    with pytest.raises(ValueError, match="unknown proxy 'jacov'; known: naswot"):
        check_proxy("jacov")
