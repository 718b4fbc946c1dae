"""Convert the shared H200 latency tables into the project's measurement-table format.

The shared folder (``../shared/data/gpu_h200/`` beside the main checkout; pass ``--source``
from anywhere else; its README says how the rows were measured) holds one wide ``blocks.csv``
and one ``networks.csv`` with both timing methods and both batch sizes side by side. This
script writes, for each batch size B in (1, 32), ``benchmarks/data/gpu_h200/b<B>/``:

- ``measurements.csv``: the ``set=random`` block rows, columns
  ``estimators.build.BLOCK_COLUMNS + ENV_COLUMNS`` (latency = CUDA-graph median, spread = its
  inter-quartile range), exactly what ``hwnas estimator build --profile h200-fp16[-b32]`` writes;
- ``networks.csv``: the ``role=build`` networks (the 16 that the build sampled), columns
  ``NETWORK_COLUMNS + ENV_COLUMNS``;
- ``heldout.csv``: the ``role=heldout`` networks (15 random networks of a separate seed), same
  columns.

The rows the tables above leave out (the ``heldout-net-K`` block rows for additivity, the eager
timings, torchvision's MobileNetV2 ``base`` and its ``fuseK`` variants) stay in
``raw_blocks.csv.gz`` / ``raw_networks.csv.gz``: the shared files, content unchanged, gzip'd
(no timestamp, so the output is byte-for-byte reproducible).

Usage: ``python benchmarks/gpu_h200_tables.py [--source DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

from estimators.build import (
    BLOCK_COLUMNS,
    BLOCK_TABLE,
    ENV_COLUMNS,
    NETWORK_COLUMNS,
    NETWORK_TABLE,
)
from estimators.features import row_config

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "gpu_h200"
OUT = ROOT / "benchmarks" / "data" / "gpu_h200"
HELDOUT_TABLE = "heldout.csv"
RAW = {"blocks.csv": "raw_blocks.csv.gz", "networks.csv": "raw_networks.csv.gz"}
PROFILES = {1: "h200-fp16", 32: "h200-fp16-b32"}
"""Batch size -> the hardware profile whose measurements the rows are."""
MACHINE = "NVIDIA H200"
VERSIONS = ("channels_last=true;cudnn=9.19;driver=580.159;dtype=fp16;gpu=NVIDIA H200;"
            "timing=graph;torch=2.11.0+cu130")
"""The environment of the shared README (the back end's own ``versions`` keys where it has
them; ``batch`` is added per table)."""


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"no {path.name} in {path.parent}; pass --source")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _env(batch: int) -> list[str]:
    return ["torch-cuda", PROFILES[batch], MACHINE, f"batch={batch};{VERSIONS}"]


def _ms(value: str) -> str:
    """A time as ``build_estimator`` writes it (6 significant digits)."""
    return f"{float(value):.6g}"


def block_rows(blocks: list[dict[str, str]], batch: int) -> list[list[str]]:
    """The ``set=random`` rows of one batch size in the measurement-table layout."""
    return [[r["kind"], *row_config(r), _ms(r["graph_ms"]), _ms(r["graph_iqr_ms"]),
             *_env(batch)]
            for r in blocks if r["set"] == "random" and int(r["batch"]) == batch]


def network_rows(networks: list[dict[str, str]], role: str, batch: int) -> list[list[str]]:
    """The networks of one ``role`` at one batch size in the network-table layout."""
    return [[r["arch"], r["num_classes"], r["in_channels"], _ms(r[f"graph_ms_b{batch}"]),
             _ms(r[f"graph_iqr_ms_b{batch}"]), *_env(batch)]
            for r in networks if r["role"] == role]


def _write(path: Path, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def convert(source: Path = SOURCE, out: Path = OUT) -> dict[str, int]:
    """Write the tables above into ``out``; returns the row count of each file written."""
    blocks, networks = _read(source / "blocks.csv"), _read(source / "networks.csv")
    counts: dict[str, int] = {}
    for batch in PROFILES:
        folder = out / f"b{batch}"
        folder.mkdir(parents=True, exist_ok=True)
        tables = {
            BLOCK_TABLE: (BLOCK_COLUMNS, block_rows(blocks, batch)),
            NETWORK_TABLE: (NETWORK_COLUMNS, network_rows(networks, "build", batch)),
            HELDOUT_TABLE: (NETWORK_COLUMNS, network_rows(networks, "heldout", batch)),
        }
        for name, (columns, rows) in tables.items():
            if not rows:
                raise ValueError(f"{source} has no rows for {folder.name}/{name}")
            _write(folder / name, columns + ENV_COLUMNS, rows)
            counts[f"{folder.name}/{name}"] = len(rows)
    for name, packed in RAW.items():
        (out / packed).write_bytes(gzip.compress((source / name).read_bytes(), 9, mtime=0))
        counts[packed] = len(_read(source / name))
    return counts


def read_raw(name: str, folder: Path = OUT) -> list[dict[str, str]]:
    """The rows of one of the raw shared tables kept here (``blocks.csv`` or ``networks.csv``)."""
    text = gzip.decompress((folder / RAW[name]).read_bytes()).decode()
    return list(csv.DictReader(io.StringIO(text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for name, n in convert(args.source, args.out).items():
        print(f"{name}: {n} rows")


if __name__ == "__main__":
    main()
