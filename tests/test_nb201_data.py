from __future__ import annotations

import numpy as np
import pytest

from benchmarks.nb201_data import EDGES, OPS, format_arch, load_nb201, parse_arch


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
