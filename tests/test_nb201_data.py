from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest

from benchmarks.nb201_data import EDGES, OPS, cell_params, format_arch, load_nb201, parse_arch
from benchmarks.proxy_validation import ZERO_COST


def test_table_has_every_architecture_once() -> None:
    table = load_nb201()
    assert len(table.archs) == 15_625 == len(set(table.archs)) == len(OPS) ** len(EDGES)
    for arch in table.archs[:200]:
        assert format_arch(parse_arch(arch)) == arch
    acc = table.column("cifar10_val_12ep")
    assert acc.shape == (15_625,) and np.nanmax(acc) <= 100 and np.nanmin(acc) >= 0
    lat = table.column("lat_ms_pixel3")
    assert np.all(lat > 0)
    row = table.row(table.archs[7])
    assert row == 7


def test_parse_and_errors() -> None:
    text = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|none~2|"
    parsed = parse_arch(text)
    assert parsed == {"e10": "avg_pool_3x3", "e20": "nor_conv_1x1", "e21": "skip_connect",
                      "e30": "nor_conv_1x1", "e31": "skip_connect", "e32": "none"}
    with pytest.raises(ValueError, match="bad edge"):
        parse_arch(text.replace("none~2", "conv~2"))
    with pytest.raises(ValueError, match="3 nodes"):
        parse_arch("|none~0|")
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 column"):
        load_nb201().column("lat_ms_abacus")


def test_cell_params_match_the_published_counts() -> None:
    """NASLib's 491-cell table gives each network's parameters (millions): less the cells',
    one constant per dataset is left (stem, reductions, classifier)."""
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(ZERO_COST.read_bytes()).decode())))
    rest: dict[str, set[float]] = {}
    for row in rows:
        cells = cell_params(parse_arch(row["arch_str"]))
        rest.setdefault(row["dataset"], set()).add(round(float(row["params"]) - cells / 1e6, 6))
    assert len(rows) == 3 * 491 and all(len(v) == 1 for v in rest.values()), rest
    assert cell_params(dict.fromkeys(EDGES, "avg_pool_3x3")) == 0
    assert cell_params(dict.fromkeys(EDGES, "nor_conv_3x3")) == 6 * 5 * sum(
        9 * c * c + 2 * c for c in (16, 32, 64))
