"""Synflow of every NAS-Bench-201 cell, per dataset: ``data/nb201/nb201_synflow.csv.gz``.

What ``nb201_strategies.py`` gives the proxy strategies (``hybrid``, ``zeroshot``) as their
score, as ``hwnas search`` gives them a proxy computed on the untrained network. The score is
hwnas's ``synflow`` (:mod:`nas.proxies.synflow`, through :func:`nas.proxies.score_model`: a
cell through which nothing flows scores :data:`nas.proxies.FLOOR`) of NAS-Bench-201's untrained
network (:mod:`benchmarks.nb201_net`, torch's default initialisation from seed 0) at each
dataset's input size and classes (:data:`benchmarks.nb201_net.INPUTS`). It needs no images, so it
is computed here rather than downloaded. On the 491 cells NASLib scored, it agrees with NASLib's
synflow on every cell (``benchmarks/proxy_validation.py``).

About 0.06 s a cell on one core (15,625 cells x 3 datasets: 25 min with ``--jobs 2``)::

    python benchmarks/nb201_synflow.py --jobs 2
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.nb201_net import INPUTS  # noqa: E402

SYNFLOW = ROOT / "benchmarks" / "data" / "nb201" / "nb201_synflow.csv.gz"


def synflow_of(job: tuple[str, str]) -> float:
    """hwnas's synflow of cell ``arch`` (NAS-Bench-201 string) for ``dataset``."""
    import torch

    from benchmarks.nb201_data import parse_arch
    from benchmarks.nb201_net import score_cell

    torch.set_num_threads(1)
    dataset, arch = job
    return score_cell("synflow", parse_arch(arch), dataset)


@lru_cache(maxsize=2)
def load_synflow(path: str | None = None) -> dict[str, np.ndarray]:
    """``{dataset: synflow per row of the NAS-Bench-201 table}`` (row order of
    :func:`~benchmarks.nb201_data.load_nb201`, which the file's ``index`` column checks)."""
    from benchmarks.nb201_data import load_nb201

    raw = gzip.decompress(Path(path or SYNFLOW).read_bytes()).decode()
    header = raw.split("\n", 1)[0].split(",")
    expected = ["index", *(f"synflow_{d}" for d in INPUTS)]
    if header != expected:
        raise ValueError(f"{path or SYNFLOW} has columns {header}, expected {expected}")
    values = np.loadtxt(io.StringIO(raw), delimiter=",", skiprows=1, ndmin=2)
    if len(values) != len(load_nb201().archs) or \
            not np.array_equal(values[:, 0], np.arange(len(values))):
        raise ValueError(f"{path or SYNFLOW} must hold one row per NAS-Bench-201 cell, in order")
    return {d: values[:, 1 + i] for i, d in enumerate(INPUTS)}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.nb201_data import load_nb201

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--out", type=Path, default=SYNFLOW)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    archs = load_nb201().archs
    start = time.perf_counter()
    columns = {}
    with Pool(args.jobs) as pool:
        for dataset in INPUTS:
            columns[dataset] = pool.map(synflow_of, [(dataset, a) for a in archs], chunksize=64)
            print(f"{dataset}: {len(archs)} cells, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    lines = [",".join(["index", *(f"synflow_{d}" for d in INPUTS)])]
    lines += [",".join([str(i), *(f"{columns[d][i]:.10g}" for d in INPUTS)])
              for i in range(len(archs))]
    args.out.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
