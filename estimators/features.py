"""Named features of a block, for the latency regressors.

Besides the block's own configuration, the features carry what makes latency differ from FLOPs on
real hardware: channel counts rounded up to the target's parallelism factor P (a channel count
one above a multiple of P costs a whole extra pass over a PE array or a SIMD register), the
number of such passes, and the bytes each block moves. nn-Meter (Zhang et al., MobiSys 2021)
uses a similar per-kernel feature set; the P-aligned terms are what let a tree model learn the
staircase that an accelerator shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from searchspaces.layers import HEAD_BLOCK_KINDS, BlockSpec, LayerSpec

CONFIG_FIELDS: tuple[str, ...] = (
    "cin", "cout", "mid", "kernel", "stride", "in_res", "expansion", "resize_to",
)
"""The columns that identify a block (``kind`` aside) in a measurement table. ``resize_to`` (the
resolution a task head's block resizes its output to, 0 for no resize) came last, with the task
heads: a table written before it reads as 0 (:mod:`estimators.build`)."""
ADDED_FIELDS: dict[str, int] = {"resize_to": 0}
"""Fields of :data:`CONFIG_FIELDS` added after tables were written without them, and the value
their absence means."""

FEATURES: tuple[str, ...] = (
    "cin", "cout", "mid", "kernel", "stride", "in_res", "out_res", "expansion", "residual",
    "log_macs", "log_aligned_macs", "log_in_bytes", "log_out_bytes", "log_mid_bytes",
    "log_params", "cin_passes", "cout_passes", "mid_passes", "cin_mod_p", "cout_mod_p",
    "mid_mod_p", "log_dense_cycles", "log_dw_cycles", "log_moved", "layers", "log_base",
)
"""Feature names, in the column order of :func:`model_features`."""

BASIS: tuple[str, ...] = ("dense_cycles", "dw_cycles", "moved_elements", "layers")
"""The work terms of :func:`work_basis`."""


def row_config(row: Mapping[str, str]) -> tuple[int, ...]:
    """The :data:`CONFIG_FIELDS` of a measurement-table row, :data:`ADDED_FIELDS` defaulted for a
    row of an older table."""
    return tuple(int(row[f]) if f in row else ADDED_FIELDS[f] for f in CONFIG_FIELDS)


def block_key(block: BlockSpec) -> tuple[str, int, int, int, int, int, int, int, int]:
    """What determines a block's latency; blocks with equal keys are measured once."""
    return (block.kind, block.cin, block.cout, block.mid, block.kernel, block.stride,
            block.in_res, block.expansion, block.resize_to)


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -(-a // b)


def config_array(blocks: Sequence[BlockSpec]) -> np.ndarray:
    """``(n, 8)`` int array of :data:`CONFIG_FIELDS`."""
    return np.array([block_key(b)[1:] for b in blocks],
                    dtype=np.int64).reshape(-1, len(CONFIG_FIELDS))


def block_features(kind: str, config: np.ndarray, parallelism_factor: int) -> np.ndarray:
    """The configuration features (the first 21 of :data:`FEATURES`) of blocks of one ``kind``.

    MACs are counted layer by layer as in :mod:`estimators.memory`; *aligned* MACs round every
    channel dimension up to a multiple of ``parallelism_factor``.
    """
    p = int(parallelism_factor)
    cfg = np.asarray(config, dtype=np.int64)
    if kind in HEAD_BLOCK_KINDS:
        return head_features(kind, cfg, p)[0]
    cin, cout, mid, k, s, r, e = (cfg[:, i] for i in range(7))  # no resize_to: no resize
    if kind in ("pool", "classifier"):
        out_res = np.ones_like(r)
    else:
        out_res = _ceil_div(r, s)
    o2, r2, k2 = out_res**2, r**2, k**2

    def al(c: np.ndarray) -> np.ndarray:
        return _ceil_div(c, p) * p

    residual = np.zeros_like(cin)
    if kind in ("stem", "head", "conv"):
        macs = o2 * cout * cin * k2
        aligned = o2 * al(cout) * al(cin) * k2
        params = cout * cin * k2
        mid_elems = np.zeros_like(cin)
    elif kind == "ibn":
        expand = (e != 1).astype(np.int64)
        macs = expand * r2 * mid * cin + o2 * mid * k2 + o2 * cout * mid
        aligned = expand * r2 * al(mid) * al(cin) + o2 * al(mid) * k2 + o2 * al(cout) * al(mid)
        params = expand * mid * cin + mid * k2 + cout * mid
        mid_elems = mid * (expand * r2 + o2)
    elif kind == "fibn":
        macs = o2 * mid * cin * k2 + o2 * cout * mid
        aligned = o2 * al(mid) * al(cin) * k2 + o2 * al(cout) * al(mid)
        params = mid * cin * k2 + cout * mid
        mid_elems = mid * o2
    elif kind == "pool":
        macs = cin * r2
        aligned = al(cin) * r2
        params = np.zeros_like(cin)
        mid_elems = np.zeros_like(cin)
    elif kind == "classifier":
        macs = cin * cout
        aligned = al(cin) * al(cout)
        params = cin * cout + cout
        mid_elems = np.zeros_like(cin)
    else:
        raise ValueError(f"no latency features for block kind {kind!r}")
    if kind in ("ibn", "fibn", "conv"):
        residual = ((s == 1) & (cin == cout)).astype(np.int64)
    in_elems = cin * (r2 if kind != "classifier" else 1)
    out_elems = cout * o2

    def lg(x: np.ndarray) -> np.ndarray:
        return np.log1p(x.astype(np.float64))

    columns = [
        cin, cout, mid, k, s, r, out_res, e, residual,
        lg(macs), lg(aligned), lg(in_elems), lg(out_elems), lg(mid_elems), lg(params),
        _ceil_div(cin, p), _ceil_div(cout, p), _ceil_div(mid, p), cin % p, cout % p, mid % p,
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


def work_basis(kind: str, config: np.ndarray, parallelism_factor: int) -> np.ndarray:
    """``(n, 4)`` work terms of each block, columns :data:`BASIS`:

    - ``dense_cycles``: MACs of dense convs / linear layers with channels padded to P, over
      ``P * P`` (passes of a P x P array);
    - ``dw_cycles``: depthwise MACs with channels padded to P, over P (a depthwise conv has no
      input-channel reduction to spread, so it fills one array dimension), and pooling streams;
    - ``moved_elements``: elements of every layer's input, output and weights (memory traffic);
    - ``layers``: number of layers (each costs a launch / configuration overhead).

    The estimator fits latency ~ non-negative combination of these (a roofline-like prior whose
    coefficients are learned per back end and kind), then boosts the remaining log-ratio. A task
    head's blocks get the same terms from their layers (:func:`head_features`).
    """
    p = int(parallelism_factor)
    cfg = np.asarray(config, dtype=np.int64)
    if kind in HEAD_BLOCK_KINDS:
        return head_features(kind, cfg, p)[1]
    cin, cout, mid, k, s, r, e = (cfg[:, i] for i in range(7))  # no resize_to: no resize
    o = _ceil_div(r, s)
    zero = np.zeros_like(cin)

    def al(c: np.ndarray) -> np.ndarray:
        return _ceil_div(c, p) * p

    if kind in ("stem", "head", "conv"):
        dense = o * o * al(cout) * al(cin) * k * k
        dw, layers = zero, np.ones_like(cin)
        moved = cin * r * r + cout * o * o + cout * cin * k * k
    elif kind == "ibn":
        ex = (e != 1).astype(np.int64)
        dense = ex * r * r * al(mid) * al(cin) + o * o * al(cout) * al(mid)
        dw = o * o * al(mid) * k * k
        moved = (ex * (cin * r * r + mid * r * r + cin * mid) + mid * r * r + mid * o * o
                 + mid * k * k + mid * o * o + cout * o * o + mid * cout)
        layers = 2 + ex
    elif kind == "fibn":
        dense = o * o * al(mid) * al(cin) * k * k + o * o * al(cout) * al(mid)
        dw = zero
        moved = (cin * r * r + mid * o * o + mid * cin * k * k + mid * o * o + cout * o * o
                 + mid * cout)
        layers = 2 * np.ones_like(cin)
    elif kind == "pool":
        dense, dw = zero, al(cin) * r * r
        moved, layers = cin * r * r + cin, np.ones_like(cin)
    elif kind == "classifier":
        dense, dw = al(cin) * al(cout), zero
        moved, layers = cin + cout + cin * cout, np.ones_like(cin)
    else:
        raise ValueError(f"no latency features for block kind {kind!r}")
    if kind in ("ibn", "fibn", "conv"):
        residual = ((s == 1) & (cin == cout)).astype(np.int64)
        moved = moved + residual * 3 * cout * o * o
        layers = layers + residual
    return np.column_stack([dense / (p * p), dw / p, moved, layers]).astype(np.float64)


def footprint(blocks: Sequence[BlockSpec], parallelism_factor: int) -> np.ndarray:
    """Each block's memory footprint in elements: every layer's input, output and weights (the
    ``moved_elements`` work term of :func:`work_basis`)."""
    out = np.zeros(len(blocks))
    by_kind: dict[str, list[int]] = {}
    for i, block in enumerate(blocks):
        by_kind.setdefault(block.kind, []).append(i)
    for kind, index in by_kind.items():
        config = config_array([blocks[i] for i in index])
        out[index] = work_basis(kind, config, parallelism_factor)[:, BASIS.index("moved_elements")]
    return out


def model_features(kind: str, config: np.ndarray, parallelism_factor: int,
                   basis: np.ndarray, base_ms: np.ndarray) -> np.ndarray:
    """All :data:`FEATURES`: the block features, the log work terms and the prior's log."""
    return np.column_stack([
        block_features(kind, config, parallelism_factor),
        np.log1p(basis[:, :3]), basis[:, 3], np.log(base_ms),
    ])


def config_block(kind: str, row: Sequence[int]) -> BlockSpec:
    """The block a row of :data:`CONFIG_FIELDS` describes (named ``kind``)."""
    return BlockSpec(kind, kind, **{f: int(v) for f, v in zip(CONFIG_FIELDS, row)})


def _layer_work(layer: LayerSpec, p: int) -> tuple[int, int, float, float, int]:
    """MACs, P-aligned MACs, dense array passes, vector-lane passes and moved elements of one
    layer of a task head's block, on the terms of :func:`work_basis` (dense layers fill a P x P
    array; depthwise layers, pooling, elementwise ops and resizes fill P lanes; a bilinear
    resize reads four taps per output element)."""
    al = -(-layer.cout // p) * p
    o2 = layer.out_res**2
    moved = layer.input_elements + layer.output_elements
    if layer.op in ("conv", "pconv", "linear"):
        aligned = o2 * al * (-(-(layer.cin // layer.groups) // p) * p) * layer.kernel**2
        return layer.macs, aligned, aligned / (p * p), 0.0, moved + layer.params
    if layer.op == "dwconv":
        aligned = o2 * al * layer.kernel**2
        return layer.macs, aligned, 0.0, aligned / p, moved + layer.params
    if layer.op == "pool":
        aligned = -(-layer.cin // p) * p * layer.in_res**2
    elif layer.op == "resize":
        aligned = 4 * al * o2
    elif layer.op in ("add", "mul"):  # the second operand: a feature map, or mul's gate vector
        aligned = al * o2
        moved += layer.output_elements if layer.op == "add" else layer.cin
    else:
        raise ValueError(f"no latency terms for layer op {layer.op!r}")
    return 0, aligned, 0.0, aligned / p, moved


def head_features(kind: str, config: np.ndarray, parallelism_factor: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The configuration features (the first 21 of :data:`FEATURES`) and the work terms
    (:data:`BASIS`) of task-head blocks (``dethead``, ``lraspp``, ``segskip``) of one kind.

    They are computed layer by layer from :meth:`~searchspaces.layers.BlockSpec.layers`, so a
    head block is priced by exactly the layers the model runs: LR-ASPP's gate and resize, a skip
    branch's sum, the final upsampling to the input resolution. ``out_res`` is the resolution
    the block resizes to (where it ends in a resize), the intermediate elements are the outputs
    of every layer but the last."""
    p = int(parallelism_factor)
    feats, basis = [], []
    for row in np.asarray(config, dtype=np.int64):
        block = config_block(kind, row)
        layers = block.layers()
        work = np.array([_layer_work(layer, p) for layer in layers], dtype=np.float64)
        macs, aligned, dense, dw, moved = work.sum(axis=0)
        cin, cout, mid = block.cin, block.cout, block.mid
        feats.append([
            cin, cout, mid, block.kernel, block.stride, block.in_res, block.out_res,
            block.expansion, 0, np.log1p(macs), np.log1p(aligned),
            np.log1p(layers[0].input_elements), np.log1p(layers[-1].output_elements),
            np.log1p(sum(layer.output_elements for layer in layers[:-1])),
            np.log1p(sum(layer.params for layer in layers)),
            -(-cin // p), -(-cout // p), -(-mid // p), cin % p, cout % p, mid % p,
        ])
        basis.append([dense, dw, moved, len(layers)])
    width = len(FEATURES) - 5
    return (np.array(feats, dtype=np.float64).reshape(-1, width),
            np.array(basis, dtype=np.float64).reshape(-1, len(BASIS)))
