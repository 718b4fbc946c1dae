"""Loader for the NAS-Bench-201 accuracy x device-latency table (``data/nb201_benchmark.csv.gz``).

Each architecture is a cell of 6 edges, each edge one of 5 operations. :data:`EDGES` names the
edges (``e{to}{from}``: the edge into node ``to`` from node ``from``), which is also the flat
categorical search space a strategy searches over (:func:`nb201_dimensions`).
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "nb201_benchmark.csv.gz"
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[str, ...] = ("e10", "e20", "e21", "e30", "e31", "e32")


def parse_arch(text: str) -> dict[str, str]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> ``{"e10": op, "e20": op, ...}``."""
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ValueError(f"NAS-Bench-201 string needs 3 nodes separated by '+': {text!r}")
    out: dict[str, str] = {}
    for to, node in enumerate(nodes, start=1):
        parts = [p for p in node.split("|") if p]
        if len(parts) != to:
            raise ValueError(f"node {to} of {text!r} needs {to} edges, got {len(parts)}")
        for part in parts:
            op, _, source = part.partition("~")
            if op not in OPS or not source.isdigit() or int(source) >= to:
                raise ValueError(f"bad edge {part!r} in {text!r}")
            out[f"e{to}{source}"] = op
    return out


def format_arch(choices: dict[str, str]) -> str:
    """Inverse of :func:`parse_arch`."""
    missing = [e for e in EDGES if e not in choices]
    if missing:
        raise ValueError(f"NAS-Bench-201 choices lack {', '.join(missing)}")
    nodes = ["|" + "|".join(f"{choices[f'e{to}{src}']}~{src}" for src in range(to)) + "|"
             for to in (1, 2, 3)]
    return "+".join(nodes)


def nb201_dimensions() -> dict[str, tuple[str, ...]]:
    return {edge: OPS for edge in EDGES}


CELL_CHANNELS: tuple[int, ...] = (16, 32, 64)
"""NAS-Bench-201's network: 5 cells at each of these widths (Dong & Yang, ICLR 2020)."""


def cell_params(choices: dict[str, str]) -> int:
    """Parameters of the network's 15 cells, the part that differs between architectures: each
    ``nor_conv_KxK`` edge is ReLU, a KxK convolution without bias (C*C*K*K) and BatchNorm's
    scale and shift (2*C); the other operations have none. Known without training, as a hwnas
    candidate's parameter count is."""
    kernels = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
    return sum(5 * (c * c * kernels[op] ** 2 + 2 * c) for c in CELL_CHANNELS
               for op in (choices[e] for e in EDGES) if op in kernels)


@dataclass(frozen=True)
class NB201Table:
    archs: tuple[str, ...]
    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.archs)})

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            known = ", ".join(sorted(self.columns))
            raise ValueError(f"unknown NAS-Bench-201 column {name!r}; known: {known}") from None

    def row(self, arch: str) -> int:
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        try:
            return index[arch]
        except KeyError:
            raise ValueError(f"architecture {arch!r} is not in the table") from None


@lru_cache(maxsize=1)
def load_nb201(path: str | None = None) -> NB201Table:
    """The table; empty cells (a few LatBench latencies) are NaN."""
    raw = gzip.decompress(Path(path or DATA).read_bytes()).decode()
    header, *lines = raw.strip().splitlines()
    names = header.split(",")
    if names[:2] != ["index", "arch_str"]:
        raise ValueError(f"unexpected NAS-Bench-201 header {names[:2]}")
    archs = tuple(line.split(",", 2)[1] for line in lines)
    numeric = np.genfromtxt(io.StringIO("\n".join(lines)), delimiter=",", dtype=np.float64,
                            usecols=range(2, len(names)))
    columns = {name: numeric[:, i] for i, name in enumerate(names[2:])}
    return NB201Table(archs, columns)
