"""benchmarks/nb201_net.py, NAS-Bench-201's untrained network, and the zero-cost table's cells:
hwnas's synflow on it reproduces NASLib's published scores once the table's swapped edges are
put back (benchmarks/proxy_validation.py)."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest
import torch

from benchmarks.nb201_data import EDGES, OPS, cell_params, parse_arch
from benchmarks.nb201_net import Cell, nb201_network
from benchmarks.proxy_validation import (
    NB201_OURS_FIELDS,
    agree,
    nb201_ours,
    nb201_ours_taus,
    score_nb201,
    zero_cost_cell,
    zero_cost_rows,
)
from nas.proxies import FLOOR, score_model

MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def cells_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, Cell) for p in m.parameters())


@pytest.mark.parametrize("arch", [MIXED, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_the_cells_hold_the_parameters_the_table_counts(arch: str) -> None:
    choices = parse_arch(arch)
    model = nb201_network(choices, 10)
    assert cells_params(model) == cell_params(choices)
    all_3x3 = dict.fromkeys(EDGES, "nor_conv_3x3")
    assert cells_params(nb201_network(all_3x3, 10)) == cell_params(all_3x3) > 0


def test_output_shapes_and_a_cell_of_zeros_cuts_the_input_off() -> None:
    torch.manual_seed(0)
    model = nb201_network(parse_arch(MIXED), 120).eval()
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 120)
    dead = nb201_network(dict.fromkeys(EDGES, "none"), 10).eval()
    a, b = dead(torch.randn(1, 3, 32, 32)), dead(torch.randn(1, 3, 32, 32))
    assert torch.equal(a, b)
    live = nb201_network(dict.fromkeys(EDGES, "skip_connect"), 10).eval()
    assert not torch.equal(live(torch.randn(1, 3, 32, 32)), live(torch.randn(1, 3, 32, 32)))


def test_bad_cells_are_named() -> None:
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 operation 'conv_5x5'"):
        nb201_network({**dict.fromkeys(EDGES, "none"), "e10": "conv_5x5"}, 10)
    with pytest.raises(ValueError, match="lacks edges e32"):
        nb201_network({e: OPS[0] for e in EDGES[:-1]}, 10)
    with pytest.raises(ValueError, match="must be >= 1"):
        nb201_network(dict.fromkeys(EDGES, "none"), 0)


def test_zero_cost_cell_exchanges_e21_and_e30() -> None:
    cell = zero_cost_cell(MIXED)
    written = parse_arch(MIXED)
    assert cell["e21"] == written["e30"] == "avg_pool_3x3"
    assert cell["e30"] == written["e21"] == "skip_connect"
    assert all(cell[e] == written[e] for e in EDGES if e not in ("e21", "e30"))


def test_our_synflow_reproduces_naslibs_only_with_the_edges_exchanged() -> None:
    """Rows where the exchange changes the cell: NASLib's score is that of the exchanged cell."""
    rows = [r for r in zero_cost_rows() if r["dataset"] == "cifar10"]
    changed = [r for r in rows if zero_cost_cell(r["arch_str"]) != parse_arch(r["arch_str"])]
    images, labels = torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)
    checked = 0
    for row in changed[:6]:
        naslib = float(row["synflow"])
        scores = []
        for cell in (zero_cost_cell(row["arch_str"]), parse_arch(row["arch_str"])):
            torch.manual_seed(0)
            scores.append(score_model("synflow", nb201_network(cell, 10), images, labels))
        assert agree(np.array([scores[0]]), np.array([naslib])) == 1.0
        checked += abs(scores[1] - naslib) > 1.0  # as written: another cell's score
    assert checked >= 3


def test_agree_counts_dead_cells_and_close_logs() -> None:
    ours = np.array([FLOOR, 10.0, 10.0, FLOOR])
    naslib = np.array([0.0, 10.4, 11.0, 5.0])
    assert agree(ours, naslib) == 0.5


def test_nb201_ours_scores_once_and_then_reads_its_cache(tmp_path) -> None:
    rows = [r for r in zero_cost_rows() if r["index"] in {"14822", "6546"}]
    source = tmp_path / "zero_cost.csv.gz"
    with gzip.open(source, "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cache = tmp_path / "ours.csv"
    first = nb201_ours(1, cache, source)
    assert set(first) == {(r["dataset"], r["index"]) for r in rows} and len(first) == 6
    for (dataset, index), scores in first.items():
        arch = next(r["arch_str"] for r in rows if r["index"] == index)
        assert scores == pytest.approx(score_nb201((dataset, arch)), rel=1e-9)
    with cache.open() as handle:
        assert tuple(next(csv.reader(handle))) == NB201_OURS_FIELDS
    stamp = cache.stat().st_mtime_ns
    again = nb201_ours(1, cache, source)
    assert again.keys() == first.keys()
    assert all(again[k] == pytest.approx(first[k], rel=1e-9) for k in first)
    assert cache.stat().st_mtime_ns == stamp
    taus = nb201_ours_taus(first, source)
    assert set(taus) == {"cifar10", "cifar100", "ImageNet16-120"}
    assert all(t["cells"] == 2 and t["agree"] == 1.0 for t in taus.values())
    cache.write_text("dataset,index,synflow\n")
    with pytest.raises(ValueError, match="move it away"):
        nb201_ours(1, cache, source)


def test_the_synflow_table_is_hwnas_synflow_of_every_cell() -> None:
    """``data/nb201/nb201_synflow.csv.gz`` (benchmarks/nb201_synflow.py): one row per cell in the
    table's order; spot checks recompute equal, and a cell through which nothing flows sits at
    the floor."""
    from benchmarks.nb201_data import format_arch, load_nb201
    from benchmarks.nb201_net import INPUTS
    from benchmarks.nb201_synflow import load_synflow, synflow_of

    table = load_nb201()
    synflow = load_synflow()
    assert set(synflow) == set(INPUTS)
    for dataset, column in synflow.items():
        assert column.shape == (len(table.archs),)
        for row in (0, 7777, len(table.archs) - 1):
            assert column[row] == pytest.approx(synflow_of((dataset, table.archs[row])),
                                                rel=1e-9)
        dead = table.row(format_arch(dict.fromkeys(EDGES, "none")))
        assert column[dead] == FLOOR
        assert np.all(column[column > FLOOR] > 0)


def test_proxy_strategies_run_on_nas_bench_201() -> None:
    """``nb201_strategies.py --strategies hybrid,zeroshot``: scored by the synflow table, they
    ask distinct cells and find part of the front; without scores they say what is missing."""
    from benchmarks.nb201_strategies import ask_tell, hypervolume_ratios, objectives_of, run_direct

    pair = ("imagenet16_val_12ep", "lat_ms_pixel3")
    for strategy in ("hybrid", "zeroshot"):
        rows = run_direct(strategy, 0, 40, pair)
        assert len(set(rows)) == 40
        assert 0.5 < hypervolume_ratios(rows, pair, [40])[0] <= 1.0
    with pytest.raises(ValueError, match="needs each cell's proxy score"):
        ask_tell("hybrid", 0, objectives_of(*pair)[1])


def test_both_drives_give_evolution_what_hwnas_search_gives_it() -> None:
    """``nb201_strategies.py`` directly and with ``--ray``: evolution gets the prior (parameter
    count and the table's latency) and synflow for its climb, the others nothing extra."""
    from benchmarks.nb201_data import format_arch, load_nb201
    from benchmarks.nb201_strategies import objectives_of, proxy_of, strategy_kwargs
    from benchmarks.nb201_synflow import load_synflow

    pair = ("imagenet16_val_12ep", "lat_ms_pixel3")
    latency = objectives_of(*pair)[1]
    kwargs = strategy_kwargs("evolution", latency, proxy_of("evolution", pair[0]))
    assert set(kwargs) == {"prior", "proxy"}
    table = load_nb201()
    cell = {edge: "nor_conv_3x3" for edge in EDGES}
    row = table.row(format_arch(cell))
    assert kwargs["prior"](cell) == (cell_params(cell), float(latency[row]))
    assert kwargs["proxy"](cell) == float(load_synflow()["imagenet16"][row])
    assert proxy_of("random", pair[0]) is None
    assert strategy_kwargs("random", latency) == {}
    assert strategy_kwargs("evolution-no-proxy", latency).keys() == {"prior"}
