from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nas.pareto import (
    crowding_distance,
    hypervolume_2d,
    nondominated_ranks,
    normalize,
    pareto_mask,
)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def points(d: int) -> st.SearchStrategy[np.ndarray]:
    # small integer grid: many ties and duplicates, the hard cases
    return st.integers(1, 25).flatmap(
        lambda n: arrays(np.float64, (n, d), elements=st.integers(0, 6).map(float)))


@settings(max_examples=150, deadline=None)
@given(values=points(3), flips=st.lists(st.booleans(), min_size=3, max_size=3))
def test_mask_equals_brute_force(values: np.ndarray, flips: list[bool]) -> None:
    signed = values * np.where(flips, -1.0, 1.0)
    expected = [not any(dominates(signed[j], signed[i]) for j in range(len(values)))
                for i in range(len(values))]
    assert pareto_mask(values, flips).tolist() == expected


@settings(max_examples=100, deadline=None)
@given(values=points(2))
def test_ranks_peel_fronts(values: np.ndarray) -> None:
    ranks = nondominated_ranks(values, [False, False])
    assert ranks.min() == 0
    for r in range(ranks.max() + 1):
        layer = values[ranks == r]
        later = values[ranks >= r]
        for p in layer:  # nothing at this rank or later dominates a point of the rank
            assert not any(dominates(q, p) for q in later)
        if r > 0:  # and each is dominated by some point of the rank before
            assert all(any(dominates(q, p) for q in values[ranks == r - 1]) for p in layer)


def brute_area(values: np.ndarray, ref: np.ndarray) -> float:
    """Union of the rectangles [p, ref] by coordinate compression (minimisation)."""
    inside = values[np.all(values < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    xs = np.unique(np.append(inside[:, 0], ref[0]))
    ys = np.unique(np.append(inside[:, 1], ref[1]))
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(p[0] <= x0 and p[1] <= y0 for p in inside):
            area += (x1 - x0) * (y1 - y0)
    return area


@settings(max_examples=150, deadline=None)
@given(values=points(2), ref=st.tuples(st.integers(0, 8), st.integers(0, 8)))
def test_hypervolume_equals_brute_force(values: np.ndarray, ref: tuple[int, int]) -> None:
    r = np.array(ref, dtype=float)
    assert hypervolume_2d(values, r, [False, False]) == pytest.approx(brute_area(values, r))
    # maximising the first objective is minimising its negation
    flipped = values * [-1.0, 1.0]
    assert hypervolume_2d(flipped, r * [-1.0, 1.0], [True, False]) == pytest.approx(
        brute_area(values, r))


def test_hypervolume_by_hand() -> None:
    # accuracy up, latency down; reference = worst accuracy 0.5, worst latency 10 ms
    pts = [(0.9, 4.0), (0.8, 2.0), (0.7, 8.0)]  # the last is dominated
    assert hypervolume_2d(pts, (0.5, 10.0), (True, False)) == pytest.approx(
        0.4 * 6.0 + 0.3 * 2.0)
    assert hypervolume_2d([(0.4, 1.0)], (0.5, 10.0), (True, False)) == 0.0
    unit = normalize(pts, (0.5, 0.0), (1.0, 10.0))
    assert unit.min() >= 0 and unit.max() <= 1


def test_crowding_distance() -> None:
    front = np.array([[0.0, 4.0], [1.0, 3.0], [2.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(front)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx(2 / 4 + 3 / 4) and d[2] == pytest.approx(3 / 4 + 3 / 4)
    assert np.isinf(crowding_distance(front[:2])).all()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2 maximize flags for 3 objectives"):
        pareto_mask(np.zeros((2, 3)), [True, False])
    with pytest.raises(ValueError, match="NaN"):
        pareto_mask([[np.nan, 1.0]], [True, False])
    with pytest.raises(ValueError, match="2 objectives"):
        hypervolume_2d(np.zeros((2, 3)), (1, 1, 1), (False, False, False))


def test_two_objective_sweep_ranks_as_peeling_does() -> None:
    """The O(n log n) sweep :func:`nondominated_ranks` takes for two objectives gives the ranks
    of peeling one front after another (integer data, many ties and duplicates)."""
    from nas.pareto import _peel, _ranks_2d

    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.integers(0, 6, size=(int(rng.integers(1, 60)), 2)).astype(float)
        assert _ranks_2d(points).tolist() == _peel(points).tolist()
