"""Loader for the TF-NAS per-block latency tables in ``benchmarks/data/`` (see its README).

Each table row is ``block,mid_channels,ms`` with ``block`` a key
``MBInvertedResBlock_<res>_<cin>_<se>_<cout>_k<k>_s<s>_<act>`` (input resolution, input channels,
squeeze-excitation width, output channels, depthwise kernel, stride, activation). One extra row,
``base``, is the fixed stem/head latency, not a block.

Only the middle widths ``mid = cin, cin + 8, cin + 16, ...`` were measured upstream; the rows in
between are straight-line interpolation and those below ``cin`` are extrapolation (some negative).
:func:`load_lut` keeps the measured rows only unless asked otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
DEVICES: dict[str, str] = {
    "cpu": "Intel Xeon 6130, batch 1",
    "gpu": "Titan RTX, batch 32",
}
"""Table name -> the hardware it was measured on."""
MEASURED_STEP = 8
"""Measured middle widths are ``cin + MEASURED_STEP * j`` for ``j >= 0``."""
BASE_KEY = "base"
COLUMNS: tuple[str, ...] = (
    "block", "res", "cin", "se", "cout", "kernel", "stride", "act", "mid", "ms",
)
"""Columns of the frame :func:`load_lut` returns."""

_KEY = re.compile(
    r"MBInvertedResBlock_(\d+)_(\d+)_(\d+)_(\d+)_k(\d+)_s(\d+)_([a-z][a-z0-9]*)"
)


@dataclass(frozen=True)
class BlockKey:
    """The fields of one table key."""

    res: int
    cin: int
    se: int
    cout: int
    kernel: int
    stride: int
    act: str


def parse_key(key: str) -> BlockKey:
    """Split a table key into its named fields; ``ValueError`` if it is malformed."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise ValueError(f"malformed block key {key!r}: expected "
                         "MBInvertedResBlock_<res>_<cin>_<se>_<cout>_k<k>_s<s>_<act>")
    res, cin, se, cout, kernel, stride = (int(v) for v in match.groups()[:6])
    if min(res, cin, cout, kernel, stride) <= 0:
        raise ValueError(f"malformed block key {key!r}: res, channels, kernel and stride "
                         "must be positive")
    return BlockKey(res, cin, se, cout, kernel, stride, match.group(7))


def is_measured(cin: np.ndarray | int, mid: np.ndarray | int) -> np.ndarray | bool:
    """True where ``mid`` is a measured width: ``mid - cin`` a non-negative multiple of 8."""
    delta = np.asarray(mid) - np.asarray(cin)
    out = (delta >= 0) & (delta % MEASURED_STEP == 0)
    return bool(out) if np.ndim(out) == 0 else out


def lut_path(device: str) -> Path:
    """Path of the gzipped table for ``device`` (``cpu`` or ``gpu``)."""
    if device not in DEVICES:
        raise ValueError(f"no TF-NAS table for device {device!r}; known: {', '.join(DEVICES)}")
    return DATA_DIR / f"tfnas_mbv2_blocks_{device}.csv.gz"


def _read_raw(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    if list(raw.columns) != ["block", "mid_channels", "ms"]:
        raise ValueError(f"{path}: expected columns block,mid_channels,ms; got "
                         f"{','.join(map(str, raw.columns))}")
    return raw[raw["block"] != BASE_KEY]


def _key_frame(blocks: pd.Series) -> pd.DataFrame:
    """One row of parsed fields per distinct key, indexed by key."""
    keys = pd.unique(blocks)
    rows = [parse_key(str(k)).__dict__ for k in keys]
    return pd.DataFrame(rows, index=pd.Index(keys, name="block"))


def load_lut(path_or_device: str | Path, measured_only: bool = True) -> pd.DataFrame:
    """The table as a frame with :data:`COLUMNS` (``base`` row dropped).

    ``path_or_device`` is ``"cpu"``, ``"gpu"`` or a path to a CSV (optionally gzipped) in the
    upstream format. With ``measured_only`` (the default) interpolated and extrapolated rows are
    dropped, and every kept latency must be positive and finite.
    """
    arg = str(path_or_device)
    path = lut_path(arg) if arg in DEVICES else Path(path_or_device)
    raw = _read_raw(path)
    mid = raw["mid_channels"].to_numpy(dtype=np.float64)
    if np.any(~np.isfinite(mid)) or np.any(mid != np.round(mid)):
        raise ValueError(f"{path}: mid_channels must be whole numbers on every block row")
    fields = _key_frame(raw["block"]).loc[raw["block"].to_numpy()].reset_index()
    frame = fields.assign(mid=mid.astype(np.int64), ms=raw["ms"].to_numpy(dtype=np.float64))
    if measured_only:
        frame = frame[is_measured(frame["cin"].to_numpy(), frame["mid"].to_numpy())]
        bad = ~np.isfinite(frame["ms"]) | (frame["ms"] <= 0)
        if bad.any():
            raise ValueError(f"{path}: {int(bad.sum())} measured rows have a latency that is "
                             "not positive and finite")
    return frame.loc[:, list(COLUMNS)].reset_index(drop=True)


def to_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The frame's columns as numpy arrays (``block`` and ``act`` as str arrays)."""
    return {name: frame[name].to_numpy() for name in COLUMNS}
