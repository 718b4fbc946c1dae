"""The seed's fusion finding on a real chip: fusing one stage of MobileNetV2, measured and
predicted, on one H200 at batch 1 and 32.

Measured: torchvision's MobileNetV2 (``role=base``) and the same network with stage K's inverted
bottlenecks replaced by fused ones (``role=fuseK``), each timed whole by CUDA-graph replay
(``benchmarks/data/gpu_h200/raw_networks.csv.gz``). Predicted: what
``hwnas expert explain mobilenetv2 --estimator h200-fp16[-b32]-mbv2`` says the *fuse* edit of
stage K changes (:func:`nas.expert.explain.explain`, the whole network re-predicted), with the
shipped estimators, which never saw these networks.

Run from the repository root: ``python benchmarks/fusion_h200.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_h200_tables import read_raw  # noqa: E402
from nas.expert.explain import explain  # noqa: E402
from searchspaces.baselines import mobilenetv2  # noqa: E402
from searchspaces.genome import Architecture  # noqa: E402

ESTIMATORS = {1: "h200-fp16-mbv2", 32: "h200-fp16-b32-mbv2"}


def fusion_table() -> tuple[list[str], list[list[str]]]:
    """Columns and rows: per fused stage K, measured and predicted change at both batches."""
    nets = {r["role"]: r for r in read_raw("networks.csv")}
    base = Architecture.from_string(nets["base"]["arch"])
    if base != mobilenetv2():
        raise ValueError("the measured base network is not the mobilenetv2 baseline")
    measured = {b: float(nets["base"][f"graph_ms_b{b}"]) for b in ESTIMATORS}
    predicted = {}
    for batch, name in ESTIMATORS.items():
        result = explain(base, name)
        predicted[batch] = {Architecture.from_string(e.arch): e for e in result.edits
                            if e.name == "fuse"}
        predicted[batch]["base"] = result.latency_ms
    columns = ["stage K", "stage", *(f"b{b} {w}" for b in ESTIMATORS
                                     for w in ("measured", "predicted"))]
    rows = [["base", "", *(f"{v:.3f} ms" for b in ESTIMATORS
                           for v in (measured[b], predicted[b]["base"]))]]
    k = 1
    while f"fuse{k}" in nets:
        row = nets[f"fuse{k}"]
        cells = [str(k), base.stages[k].to_string()]
        for batch in ESTIMATORS:
            effect = predicted[batch].get(Architecture.from_string(row["arch"]))
            if effect is None or effect.stage != k:
                raise ValueError(f"explain prices no fuse edit of stage {k} that is fuse{k}")
            change = 100 * (float(row[f"graph_ms_b{batch}"]) / measured[batch] - 1)
            cells += [f"{change:+.1f}%", f"{effect.delta_pct:+.1f}%"]
        rows.append(cells)
        k += 1
    return columns, rows


def main() -> None:
    columns, rows = fusion_table()
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("Fusing stage K of MobileNetV2 on one H200 (fp16, CUDA graphs): measured change of the"
          " whole network vs what 'hwnas expert explain' predicts")
    for line in (columns, *rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths)))


if __name__ == "__main__":
    main()
