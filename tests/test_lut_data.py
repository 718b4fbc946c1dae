"""The TF-NAS latency-table loader in ``benchmarks/lut_data.py``."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ sits beside the installed packages, not in them
    sys.path.insert(0, str(ROOT))

from benchmarks.lut_data import (  # noqa: E402
    COLUMNS,
    DEVICES,
    BlockKey,
    is_measured,
    load_lut,
    lut_path,
    parse_key,
)


def test_parse_key_fields() -> None:
    assert parse_key("MBInvertedResBlock_112_16_0_24_k3_s2_relu") == BlockKey(
        res=112, cin=16, se=0, cout=24, kernel=3, stride=2, act="relu")
    assert parse_key("MBInvertedResBlock_7_192_384_320_k5_s1_swish") == BlockKey(
        res=7, cin=192, se=384, cout=320, kernel=5, stride=1, act="swish")


@pytest.mark.parametrize("key", [
    "base",
    "",
    "MBInvertedResBlock_112_16_0_24_k3_s2",  # no activation
    "MBInvertedResBlock_112_16_0_24_3_s2_relu",  # kernel without k
    "MBInvertedResBlock_112_x_0_24_k3_s2_relu",
    "MBInvertedResBlock_112_16_0_24_k3_s2_relu_extra",
    "FusedBlock_112_16_0_24_k3_s2_relu",
    "MBInvertedResBlock_112_0_0_24_k3_s2_relu",  # zero input channels
    " MBInvertedResBlock_112_16_0_24_k3_s2_relu",
])
def test_malformed_key_raises(key: str) -> None:
    with pytest.raises(ValueError, match="malformed block key"):
        parse_key(key)


def test_is_measured() -> None:
    assert is_measured(16, 16) and is_measured(16, 24) and is_measured(16, 128)
    assert not is_measured(16, 8) and not is_measured(16, 17) and not is_measured(16, 23)
    np.testing.assert_array_equal(is_measured(np.array([40, 40, 40]), np.array([32, 48, 50])),
                                  [False, True, False])


@pytest.mark.parametrize("device", list(DEVICES))
def test_gz_tables_load_measured_rows_only(device: str) -> None:
    frame = load_lut(device)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["block"].nunique() == 66
    delta = frame["mid"] - frame["cin"]
    assert (delta >= 0).all() and (delta % 8 == 0).all()
    assert (frame["ms"] > 0).all()
    assert set(frame["act"]) == {"relu", "swish"}
    assert set(frame["se"] // frame["cin"]) == {0, 1, 2}
    first = frame[frame["block"] == "MBInvertedResBlock_112_16_0_24_k3_s2_relu"]
    assert first["mid"].tolist() == list(range(16, 129, 8))
    assert (first[["res", "cin", "se", "cout", "kernel", "stride"]].iloc[0].tolist()
            == [112, 16, 0, 24, 3, 2])


def test_all_rows_keep_interpolation() -> None:
    measured, everything = load_lut("cpu"), load_lut(lut_path("cpu"), measured_only=False)
    assert len(everything) > len(measured)
    assert (everything["mid"] < everything["cin"]).any()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lut.csv.gz"
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def test_malformed_key_in_file_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "block,mid_channels,ms\nbase,,1.0\nMBInvertedResBlock_7_8_k3,8,1.0\n")
    with pytest.raises(ValueError, match="malformed block key"):
        load_lut(path)


def test_wrong_header_and_bad_latency_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected columns"):
        load_lut(_write(tmp_path, "key,mid,ms\nbase,,1.0\n"))
    bad = "block,mid_channels,ms\nMBInvertedResBlock_7_8_0_8_k3_s1_relu,8,-0.5\n"
    with pytest.raises(ValueError, match="not positive"):
        load_lut(_write(tmp_path, bad))


def test_unknown_device_raises() -> None:
    with pytest.raises(ValueError, match="no TF-NAS table"):
        lut_path("tpu")
