"""Build a latency estimator: sample blocks of a space, measure them, fit, save.

``build_estimator`` is what ``hwnas estimator build`` runs:

1. sample block configurations that cover the space, curated *and* uncurated (blocks of random
   architectures of both variants, so kinds, widths, resolutions and strides appear as they do
   in real candidates), plus a few whole networks for the per-network overhead; with ``heads``
   (``--head det|seg|all``), also the blocks of detection and segmentation heads, sampled from
   the space's candidates with those heads (:func:`sample_head_blocks`). A back end that times
   blocks in context (torch-cpu's ``block_timing: context``) gets whole networks instead
   (:func:`sample_context_networks`) and times every block of each inside its forward pass;
2. measure them on the back end, in parallel worker processes, appending each result to
   ``measurements.csv`` / ``networks.csv`` as it arrives, so an interrupted build continues where
   it stopped (rows already measured are skipped on the next run with the same arguments);
3. fit one LightGBM regressor per block kind, with 5-fold cross-validated training error;
4. save the models and ``manifest.json``.

``fit_estimator`` (``hwnas estimator fit``) runs steps 3 and 4 alone, on tables already on disk:
measured elsewhere, shipped, or built before a change of the recipe.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path
from typing import Any

import numpy as np

from searchspaces.files import atomic_write
from searchspaces.genome import Architecture
from searchspaces.layers import HEAD_BLOCK_KINDS, HEAD_BLOCKS, BlockSpec, decompose
from searchspaces.spaces import get_space

from .active import active_blocks, round_targets
from .backends import Backend, Measurement, backend_class, create_backend
from .backends.timing import BLOCK_PASSES, NETWORK_PASSES, STATISTIC
from .features import ADDED_FIELDS, CONFIG_FIELDS, block_key, footprint, row_config
from .fitpool import FitPool, FitTask, fit_jobs
from .latency import (
    BLOCK_KINDS,
    LatencyEstimator,
    file_sha256,
    fit_overhead,
    read_manifest,
    select_prior,
)
from .profiles import PROFILE_DIR, HardwareProfile, load_profile
from .uncertainty import DEFAULT_MEMBERS, calibrate_on_networks

BLOCK_TABLE = "measurements.csv"
NETWORK_TABLE = "networks.csv"
TIMING_FILE = "timing.json"
"""Where a build on a measuring back end keeps how it times (:func:`timing_protocol`: the
statistic of a pass, the reference and its calibrated time), written before the first row: a
resumed build times its new rows the same way and scales them by the same number."""
BLOCK_COLUMNS = ("kind", *CONFIG_FIELDS, "latency_ms", "spread_ms")
NETWORK_COLUMNS = ("arch", "num_classes", "in_channels", "latency_ms", "spread_ms")
ENV_COLUMNS = ("backend", "profile", "machine", "versions")

NUM_CLASSES_CHOICES = (10, 100, 1000)
HEAD_NUM_CLASSES_CHOICES = (1, 3, 21, 80)
"""Classes of the detection and segmentation networks a build and an evaluation sample: a
presence detector (1), a few synthetic shapes (3), VOC (21, with the background), COCO (80).
A classifier's 1000 ImageNet classes would make a full-resolution 1000-channel score map."""
IN_CHANNELS_CHOICES = (1, 3)
HEADS: dict[str, tuple[str, ...]] = {**{h: (h,) for h in HEAD_BLOCKS}, "all": tuple(HEAD_BLOCKS)}
"""``--head`` values: the task heads (:data:`~searchspaces.genome.TASK_HEADS`) whose blocks a
build measures besides a classifier's (which every estimator models)."""
SMALL_KIND_SHARE = 0.06
"""Share of the samples given to each of stem, head, pool and classifier; the rest are stage
blocks (ibn, fibn, conv in the proportions the space samples them)."""
HEAD_KIND_SHARE = 0.06
"""Blocks of each task-head kind (``dethead``, ``lraspp``, ``segskip``) a build with ``--head``
measures, as a share of ``--samples`` (42 each for 700 samples); they come on top."""

BLOCK_GROUP = 8
"""Blocks handed to a back end at once (what a crash can lose, and what torch-cpu interleaves)."""

CONTEXT_CHUNK = 16
"""Networks a build times blocks in context at once, pass after pass (what an interruption can
lose; their passes are this many networks apart, seconds)."""


PASS_SETTINGS = {"network_passes": NETWORK_PASSES, "block_passes": BLOCK_PASSES}
"""The profile settings that set a target's default timing passes, and their defaults."""

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class NetworkSample:
    arch: Architecture
    num_classes: int
    in_channels: int


def _variants(space: str, parallelism_factor: int, head: str = "head") -> list:
    return [get_space(space, parallelism_factor, curated=True, head=head),
            get_space(space, parallelism_factor, curated=False, head=head)]


def head_kinds(head: str | None) -> tuple[str, ...]:
    """The task heads a ``--head`` value names (none for ``None``); one-line ``ValueError``
    for another value."""
    if head is None:
        return ()
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    return HEADS[head]


def num_classes_choices(head: str) -> tuple[int, ...]:
    """The class counts sampled for networks ending in a ``head`` head."""
    return NUM_CLASSES_CHOICES if head == "head" else HEAD_NUM_CLASSES_CHOICES


def sample_blocks(space: str, parallelism_factor: int, n: int, rng: np.random.Generator
                  ) -> list[BlockSpec]:
    """``n`` distinct blocks (fewer if a kind runs out of distinct configurations)."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    variants = _variants(space, parallelism_factor)
    small = ("stem", "head", "pool", "classifier")
    quota = {kind: max(1, round(n * SMALL_KIND_SHARE)) for kind in small}
    quota["stage"] = max(1, n - sum(quota.values()))
    chosen: dict[tuple, BlockSpec] = {}
    counts = dict.fromkeys(quota, 0)
    attempts = 0
    # Stage blocks are plentiful; stem/head/pool/classifier have few distinct configurations,
    # so after 2n draws the loop stops waiting for them.
    while counts["stage"] < quota["stage"] or (
        any(counts[k] < quota[k] for k in small) and attempts < 2 * n
    ):
        if attempts >= 50 * n:
            break
        attempts += 1
        arch = variants[attempts % 2].sample(rng)
        blocks = decompose(arch, int(rng.choice(NUM_CLASSES_CHOICES)),
                           int(rng.choice(IN_CHANNELS_CHOICES)))
        stage_blocks = blocks[1:-3]
        candidates = [("stage", stage_blocks[int(rng.integers(len(stage_blocks)))])]
        candidates += [(b.kind, b) for b in (blocks[0], *blocks[-3:])]
        for group, block in candidates:
            key = block_key(block)
            if counts[group] < quota[group] and key not in chosen:
                chosen[key] = block
                counts[group] += 1
    return list(chosen.values())


def sample_head_blocks(space: str, parallelism_factor: int, heads: Sequence[str], n: int,
                       rng: np.random.Generator) -> list[BlockSpec]:
    """Up to ``n`` distinct blocks of each kind of the task ``heads`` (``det``: ``dethead``;
    ``seg``: ``lraspp`` and ``segskip``), from random networks of the space's variants with that
    head, with :data:`HEAD_NUM_CLASSES_CHOICES` classes. A head block's shape follows from the
    trunk it reads (channels and resolution at the taps), so drawing whole candidates gives the
    combinations a search asks about. Stops after ``20 n`` networks per head: a curated space
    has few distinct head blocks."""
    if n < 1:
        raise ValueError(f"the number of head samples must be >= 1, got {n}")
    chosen: dict[tuple, BlockSpec] = {}
    for head in heads:
        variants = _variants(space, parallelism_factor, head)
        counts: dict[str, int] = {}
        for i in range(20 * n):
            blocks = decompose(variants[i % 2].sample(rng),
                               int(rng.choice(HEAD_NUM_CLASSES_CHOICES)),
                               int(rng.choice(IN_CHANNELS_CHOICES)))
            for block in blocks:
                key = block_key(block)
                if (block.kind in HEAD_BLOCK_KINDS and counts.get(block.kind, 0) < n
                        and key not in chosen):
                    chosen[key] = block
                    counts[block.kind] = counts.get(block.kind, 0) + 1
            if len(counts) == len(HEAD_BLOCKS[head]) and min(counts.values()) >= n:
                break
    return list(chosen.values())


def sample_networks(space: str, parallelism_factor: int, n: int, rng: np.random.Generator,
                    head: str = "head") -> list[NetworkSample]:
    """``n`` whole networks ending in a ``head`` head, alternating curated and uncurated
    variants of the space."""
    return list(islice(_network_stream(space, parallelism_factor, rng, head), n))


def _network_stream(space: str, parallelism_factor: int, rng: np.random.Generator,
                    head: str = "head") -> Iterator[NetworkSample]:
    variants = _variants(space, parallelism_factor, head)
    classes = num_classes_choices(head)
    for i in count():
        yield NetworkSample(variants[i % 2].sample(rng), int(rng.choice(classes)),
                            int(rng.choice(IN_CHANNELS_CHOICES)))


def sample_context_networks(space: str, parallelism_factor: int, n: int,
                            rng: np.random.Generator) -> list[NetworkSample]:
    """Classifier networks (as :func:`sample_networks` draws them) until their blocks hold
    ``n`` distinct blocks, for a build that times blocks in context: ``--samples`` stays the
    number of blocks measured. At most ``n`` networks (each brings at least its first new
    block, else the space has run out of them)."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    chosen: list[NetworkSample] = []
    keys: set[tuple] = set()
    for sample in islice(_network_stream(space, parallelism_factor, rng), n):
        new = {block_key(b) for b in _blocks(sample)} - keys
        if new:
            chosen.append(sample)
            keys |= new
        if len(keys) >= n:
            break
    return chosen


def _blocks(sample: NetworkSample) -> list[BlockSpec]:
    return decompose(sample.arch, sample.num_classes, sample.in_channels)


# -- measurement tables (append-only CSV, resumable) --------------------------------------------
ADDED_COLUMNS: dict[str, str] = {f: str(v) for f, v in ADDED_FIELDS.items()}
"""Columns added to the tables after some were written, with the value their older rows mean:
such a table reads as if it had them, and a build that appends to it rewrites it with them."""


def _older_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in columns if c not in ADDED_COLUMNS)


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a measurement table; a torn last line (a killed writer) is dropped, and a table
    written before :data:`ADDED_COLUMNS` gets their values."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            return []
        header = tuple(reader.fieldnames)
        added = {}
        if header[: len(columns)] != columns:
            if header[: len(_older_columns(columns))] != _older_columns(columns):
                raise ValueError(f"{path} has columns {list(header)}, expected {list(columns)}")
            added = {c: ADDED_COLUMNS[c] for c in columns if c in ADDED_COLUMNS}
        rows = []
        for row in reader:
            if None in row.values() or None in row:
                continue  # torn line
            row.update(added)
            try:
                float(row["latency_ms"])
                float(row["spread_ms"])
            except (TypeError, ValueError):
                continue
            rows.append(row)
        return rows


class _Appender:
    """Appends rows to a CSV table and flushes each, so a crash loses at most the row in flight."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            _truncate_torn_tail(path)
            _add_columns(path, columns)
        self._handle = path.open("a", newline="")
        self._writer = csv.writer(self._handle)
        if new:
            self._writer.writerow(columns)
            self._handle.flush()

    def write(self, row: Iterable[Any]) -> None:
        self._writer.writerow(list(row))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _add_columns(path: Path, columns: tuple[str, ...]) -> None:
    """Rewrite a table written before :data:`ADDED_COLUMNS` with them (atomically), so that
    rows appended now line up with its header."""
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    if not header or tuple(header[: len(columns)]) == columns:
        return
    rows = _read_rows(path, columns[: columns.index("spread_ms") + 1])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode())


def _truncate_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


# -- measuring in worker processes ---------------------------------------------------------------
_WORKER_BACKEND: Backend | None = None


def _init_worker(profile: HardwareProfile, cache_dir: Path | None) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = create_backend(profile, cache_dir=cache_dir)


def _worker_backend() -> Backend:
    if _WORKER_BACKEND is None:
        raise RuntimeError("measurement worker used before its initializer ran")
    return _WORKER_BACKEND


def measure_block_group(blocks: list[BlockSpec]) -> list[Measurement]:
    return _worker_backend().measure_blocks(blocks)


def measure_network_sample(sample: NetworkSample) -> Measurement:
    return _worker_backend().measure_network(sample.arch, sample.num_classes, sample.in_channels)


def measure_network_blocks_sample(sample: NetworkSample) -> list[Measurement]:
    return _worker_backend().measure_network_blocks(sample.arch, sample.num_classes,
                                                    sample.in_channels)


def measure_parallel(items: list, fn: Callable, profile: HardwareProfile, workers: int,
                     cache_dir: Path | None = None) -> Iterator[tuple[Any, Measurement]]:
    """``(item, fn(item))`` in order, measured by ``workers`` processes (spawned, each with its
    own back end), or in this process when ``workers`` is 1."""
    if not items:
        return
    if workers <= 1:
        _init_worker(profile, cache_dir)
        for item in items:
            yield item, fn(item)
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(profile, cache_dir)) as pool:
        yield from zip(items, pool.map(fn, items, chunksize=1))


def timing_passes(profile: HardwareProfile, passes: int | None = None,
                  setting: str = "network_passes") -> int:
    """``passes``; when ``None``, the profile's ``setting`` (``network_passes`` or
    ``block_passes``, :class:`~estimators.backends.timing.LoopSettings`), else its default.
    1 wherever the profile's back end is deterministic (a simulator gives the same number every
    time, so a second pass would only repeat the first)."""
    if passes is None:
        passes = profile.settings.get(setting, PASS_SETTINGS[setting])
        if not isinstance(passes, int) or isinstance(passes, bool):
            raise ValueError(f"profile {profile.name!r}: setting {setting!r} must be a whole "
                             f"number >= 1, got {passes!r}")
    if passes < 1:
        raise ValueError(f"the number of timing passes must be >= 1, got {passes}")
    return 1 if backend_class(profile).deterministic else passes


def timing_statistic(profile: HardwareProfile) -> str | None:
    """What a timing pass of ``profile`` reports of its repeats (its ``statistic`` setting,
    :data:`~estimators.backends.timing.STATISTICS`; median unless set), or ``None`` on a
    deterministic back end, which has no repeats to choose from."""
    if backend_class(profile).deterministic:
        return None
    return str(profile.settings.get("statistic", STATISTIC))


def timing_reference(profile: HardwareProfile) -> str | None:
    """The reference a pass of ``profile`` is timed against (its ``reference`` setting:
    ``network``; see :class:`~estimators.backends.torch_backends.TorchCPUSettings`), or
    ``None`` for plain wall-clock timing and on a deterministic back end."""
    value = profile.settings.get("reference", "none")
    if value == "none" or backend_class(profile).deterministic:
        return None
    return str(value)


def read_timing_file(folder: Path) -> dict[str, Any] | None:
    """``folder``'s :data:`TIMING_FILE` (statistic, reference, ``reference_ms``), ``None`` where
    there is none; one-line ``ValueError`` for a file that cannot be read."""
    path = folder / TIMING_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        scale, fastest = saved["reference_ms"], saved.get("reference_fastest_ms")
        return {**saved, "reference_ms": None if scale is None else float(scale),
                "reference_fastest_ms": None if fastest is None else float(fastest)}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); it says how the tables beside it "
                         "were timed: delete it only with them") from None


def timing_protocol(profile: HardwareProfile, backend: Backend, folder: Path
                    ) -> tuple[HardwareProfile, dict[str, Any]]:
    """How a build in ``folder`` times on a measuring back end (the statistic of a pass, the
    reference and its time), fixed for the whole build and kept in ``folder``'s
    :data:`TIMING_FILE`; returns ``profile`` with the reference's time set (``reference_ms``)
    for every worker, and the protocol (empty on a deterministic back end).

    The first build in ``folder`` writes the file before any row: the reference's time comes
    from ``backend`` (calibrated now, or the profile's own setting). A resumed build reads the
    time back (its rows were scaled by it) and refuses, with one line, a profile whose
    statistic or reference differs from the one the rows were measured with."""
    statistic = timing_statistic(profile)
    if statistic is None:
        return profile, {}
    wanted: dict[str, Any] = {"statistic": statistic, "reference": timing_reference(profile)}
    saved = read_timing_file(folder)
    if saved is not None:
        for key, value in wanted.items():
            if saved.get(key) != value:
                raise ValueError(f"{folder} holds rows timed with {key} {saved.get(key)!r}, but "
                                 f"profile {profile.name!r} times with {value!r}; finish the "
                                 "build with the profile it began with, or use a new --out")
        scale = saved["reference_ms"]
    else:
        scale = backend.reference_ms() if wanted["reference"] else None
        atomic_write(folder / TIMING_FILE, (json.dumps({**wanted, "reference_ms": scale},
                                                       indent=1) + "\n").encode())
    if scale is not None:
        profile = dataclasses.replace(profile, settings={**profile.settings,
                                                         "reference_ms": scale})
    return profile, {**wanted, "reference_ms": scale}


class _FastestReference:
    """Keeps the fastest repeat of the reference over all of a build's measurements in its
    :data:`TIMING_FILE` (``reference_fastest_ms``), rewritten whenever a faster one comes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved = read_timing_file(folder)
        self.fastest = None if self.saved is None else self.saved["reference_fastest_ms"]

    def note(self, measurements: Iterable[Measurement]) -> None:
        if self.saved is None or self.saved.get("reference") is None:
            return
        seen = [m.reference_fastest_ms for m in measurements
                if m.reference_fastest_ms is not None]
        if seen and (self.fastest is None or min(seen) < self.fastest):
            self.fastest = float(min(seen))
            self.saved = {**self.saved, "reference_fastest_ms": self.fastest}
            atomic_write(self.folder / TIMING_FILE,
                         (json.dumps(self.saved, indent=1) + "\n").encode())


def reference_scale(folder: Path) -> dict[str, float | None] | None:
    """The reference time that ``folder``'s estimator reads in (``scale_ms``), the factor its
    tables' latencies take to get there, and the two times it comes from (``calibrated_ms``,
    ``fastest_ms``); ``None`` without a reference. One read of :data:`TIMING_FILE`.

    A build scales its rows by the reference's time calibrated before the first row; but a
    machine that is slow for minutes calibrates it slow (3.30 to 5.06 ms over seven builds on
    the project's VM in one day), and every prediction would read as much too high. The build
    also keeps the fastest repeat of the reference seen in any round of its measurements
    (thousands): where that is faster, it is the scale, and the tables are rescaled to it."""
    saved = read_timing_file(folder)
    if saved is None or saved.get("reference") is None or saved["reference_ms"] is None:
        return None
    calibrated, fastest = saved["reference_ms"], saved["reference_fastest_ms"]
    scale = calibrated if fastest is None else min(calibrated, fastest)
    return {"scale_ms": scale, "calibrated_ms": calibrated, "fastest_ms": fastest,
            "factor": scale / calibrated}


def table_scale(folder: Path) -> tuple[float | None, float]:
    """``(scale_ms, factor)`` of :func:`reference_scale`, ``(None, 1.0)`` without a
    reference."""
    ref = reference_scale(folder)
    return (None, 1.0) if ref is None else (ref["scale_ms"], ref["factor"])


def measure_in_passes(items: list, fn: Callable, profile: HardwareProfile, workers: int,
                      passes: int, cache_dir: Path | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> Iterator[tuple[Any, list[Measurement]]]:
    """``(item, [its measurement in pass 1, ..., pass P])`` in order (see :func:`measure_parallel`).

    Each pass measures every item once, in order, so the passes of one item are a whole sweep
    apart (minutes for a few dozen networks on a CPU): a burst of load from other processes
    then disturbs one pass of an item, not all of them. The items of the last pass are yielded
    as they are measured. ``progress(done, total)`` counts single measurements.
    """
    earlier: list[list[Measurement]] = []
    total = len(items) * passes
    for p in range(passes):
        measured = measure_parallel(items, fn, profile, workers, cache_dir)
        this_pass: list[Measurement] = []
        for i, (item, m) in enumerate(measured):
            this_pass.append(m)
            if progress:
                progress(p * len(items) + i + 1, total)
            if p == passes - 1:
                yield item, [prior[i] for prior in earlier] + [m]
        earlier.append(this_pass)


def robust_timing(passes: Sequence[Measurement], referenced: bool = False) -> Measurement:
    """One latency from several passes: the fastest pass, with its IQR; with ``referenced``
    (passes timed against a reference, :func:`timing_reference`) the median of the passes
    and of their IQRs.

    On the plain clock, load from other processes only ever adds time, and each pass's
    statistic already ignores the outliers within that pass, so the fastest pass is the least
    disturbed one. (With many passes a trimmed mean would also do; with the two or three a
    build affords, the minimum is the statistic that discards a disturbed pass.) Against a
    reference the slowdowns divide out and what is left is noise on either side: the fastest
    pass would keep the luckiest, and the median (for two passes, the mean) is the estimate
    (2026-12-02, 40 held-out networks in 2 passes: 0.925-0.95 within +-10% against the mean
    of the passes, 0.875-0.90 against the fastest).
    """
    if not passes:
        raise ValueError("no timing passes to combine")
    if referenced:
        return Measurement(float(np.median([m.latency_ms for m in passes])),
                           float(np.median([m.spread_ms for m in passes])))
    return min(passes, key=lambda m: m.latency_ms)


def _env_row(backend_env: dict[str, str]) -> list[str]:
    versions = ";".join(f"{k}={v}" for k, v in sorted(backend_env.items())
                        if k not in ("backend", "profile", "machine", "node", "processor"))
    machine = f"{backend_env.get('node', '')}/{backend_env.get('processor', '')}"
    return [backend_env.get("backend", ""), backend_env.get("profile", ""), machine, versions]


def build_profile(profile: str | HardwareProfile, space: str, backend: str | None = None
                  ) -> HardwareProfile:
    """The profile a build measures on, checked with the rest of a build's input before any
    work: ``ValueError`` (one line) for an unknown profile or space, or a ``backend`` that is not
    the profile's."""
    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile)
    if backend is not None and backend != prof.backend:
        raise ValueError(f"profile {prof.name!r} is for back end {prof.backend!r}, "
                         f"not {backend!r}")
    get_space(space)
    return prof


def blocks_in_context(backend: Backend, active: int = 0) -> bool:
    """Whether a build on ``backend`` times its blocks inside whole networks; one-line
    ``ValueError`` when it does and ``active`` asks for active profiling, which picks blocks
    one by one."""
    if active and backend.times_blocks_in_context:
        raise ValueError(f"profile {backend.profile.name!r} times blocks inside whole networks "
                         "(block_timing: context), which --active cannot choose one by one; "
                         "use block_timing: isolated")
    return backend.times_blocks_in_context


def build_estimator(profile: str | HardwareProfile, space: str, samples: int, out: str | Path,
                    workers: int = 1, seed: int = 0, networks: int = 16,
                    backend: str | None = None, progress: Progress | None = None,
                    network_passes: int | None = None, active: int = 0,
                    head: str | None = None, block_passes: int | None = None
                    ) -> tuple[LatencyEstimator, dict[str, Any]]:
    """Measure, fit and save an estimator in ``out``; returns it and the build report.

    ``active`` > 0 spends the ``samples`` blocks in that many rounds of active profiling
    (:mod:`estimators.active`) instead of one random sample.

    ``head`` (``det``, ``seg`` or ``all``; :data:`HEADS`) also measures the blocks of those task
    heads, :data:`HEAD_KIND_SHARE` of ``samples`` per head block kind, on top of ``samples``
    and from their own random stream (:func:`sample_head_blocks`): the classifier's blocks,
    and so its models, are those of a build without ``head``, and adding heads to a finished
    build measures only the head blocks. The whole networks stay classifiers.

    The whole networks are timed in ``network_passes`` passes (:func:`measure_in_passes`; by
    default the profile's, :func:`timing_passes`; one pass on a deterministic back end) and
    each keeps :func:`robust_timing` over them, the statistic
    :func:`~estimators.evaluate.evaluate_estimator` scores against (in as many passes, by
    default), so that the per-network overhead is fitted on networks measured the way
    held-out networks are.

    Blocks timed in isolation get ``block_passes`` passes over all of them (by default the
    profile's; one on a deterministic back end), each keeping its fastest
    (:func:`_measure_blocks`)."""
    prof = build_profile(profile, space, backend)
    heads = head_kinds(head)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if networks < 0:
        raise ValueError(f"networks must be >= 0, got {networks}")
    if active:
        round_targets(samples, active)  # too few blocks a round -> ValueError before any work
    passes = timing_passes(prof, network_passes)
    b_passes = timing_passes(prof, block_passes, "block_passes")
    backend = create_backend(prof)
    in_context = blocks_in_context(backend, active)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prof, protocol = timing_protocol(prof, backend, out)
    p = prof.parallelism_factor
    nets = sample_networks(space, p, networks, np.random.default_rng([seed, 2]))
    cache = out / "cache"
    env = _env_row(backend.environment())

    def measure(blocks: list[BlockSpec]) -> list[float]:
        return _measure_blocks(blocks, out / BLOCK_TABLE, prof, workers, cache, env, progress,
                               b_passes)

    context_networks = 0
    if active:
        active_blocks(space, p, samples, active, seed, measure,
                      progress=(lambda r, n: progress("rounds", r, n)) if progress else None)
    elif in_context:
        context = sample_context_networks(space, p, samples, np.random.default_rng([seed, 0]))
        context_networks = len(context)
        _measure_in_context(context, out / BLOCK_TABLE, prof, workers, cache, env, progress,
                            passes)
    else:
        measure(sample_blocks(space, p, samples, np.random.default_rng([seed, 0])))
    if heads:
        measure(sample_head_blocks(space, p, heads, max(1, round(samples * HEAD_KIND_SHARE)),
                                   np.random.default_rng([seed, 3])))

    net_path = out / NETWORK_TABLE
    done_nets = {(r["arch"], r["num_classes"], r["in_channels"])
                 for r in _read_rows(net_path, NETWORK_COLUMNS)}
    todo_nets = [s for s in nets if (s.arch.to_string(), str(s.num_classes),
                                     str(s.in_channels)) not in done_nets]
    writer = _Appender(net_path, NETWORK_COLUMNS + ENV_COLUMNS)
    try:
        already = (len(nets) - len(todo_nets)) * passes

        def counted(done: int, _total: int) -> None:
            if progress:
                progress("networks", already + done, len(nets) * passes)

        measured = measure_in_passes(todo_nets, measure_network_sample, prof, workers, passes,
                                     cache, progress=counted)
        fastest = _FastestReference(out)
        referenced = timing_reference(prof) is not None
        for sample, ms in measured:
            fastest.note(ms)
            m = robust_timing(ms, referenced)
            writer.write([sample.arch.to_string(), sample.num_classes, sample.in_channels,
                          f"{m.latency_ms:.6g}", f"{m.spread_ms:.6g}", *env])
    finally:
        writer.close()

    return _fit_and_save(out, space, prof, {"environment": dict(zip(ENV_COLUMNS, env)),
                                            "samples": samples, "seed": seed,
                                            "network_passes": passes,
                                            "block_passes": 1 if in_context else b_passes,
                                            "statistic": timing_statistic(prof),
                                            "reference": protocol.get("reference"),
                                            "reference_ms": protocol.get("reference_ms"),
                                            "active_rounds": active,
                                            "heads": list(heads),
                                            "block_timing": ("context" if in_context
                                                             else "isolated"),
                                            "context_networks": context_networks},
                         progress)


def _fit_and_save(out: Path, space: str, prof: HardwareProfile, extra: dict[str, Any],
                  progress: Progress | None) -> tuple[LatencyEstimator, dict[str, Any]]:
    """Fit on ``out``'s tables and save there, the report and ``extra`` in the manifest."""
    estimator, report = fit_from_tables(out, space, prof, progress=progress)
    extra = {"build": report, **extra}
    ref = report["reference"]  # the fit's reading of the timing file
    if ref is not None:
        extra.update({"reference_ms": ref["scale_ms"],
                      "reference_calibrated_ms": ref["calibrated_ms"],
                      "reference_fastest_ms": ref["fastest_ms"]})
    if prof.path is not None and prof.path.parent != PROFILE_DIR:
        extra["profile_path"] = str(prof.path)
    estimator.save(out, extra=extra)
    return estimator, report


def _measure_blocks(blocks: list[BlockSpec], path: Path, prof: HardwareProfile, workers: int,
                    cache: Path, env: list[str], progress: Progress | None,
                    passes: int = 1) -> list[float]:
    """Measure the blocks not yet in the table at ``path`` (appending each), and return the
    latency of every block from the table: resuming measures only what is missing.

    The blocks go to the back end in groups of :data:`BLOCK_GROUP`, all groups in ``passes``
    passes (:func:`measure_in_passes`), so the passes of one group are a whole sweep apart
    (minutes), and each block keeps :func:`robust_timing` over its passes: a burst of load
    slows every block of the group it hits, which another pass discards. A block's row is
    written once its last pass is timed, so an interrupted pass leaves no row behind and the
    next run times the block again."""
    done = {_row_key(r) for r in _read_rows(path, BLOCK_COLUMNS)}
    todo = [b for b in blocks if block_key(b) not in done]
    referenced = timing_reference(prof) is not None
    writer = _Appender(path, BLOCK_COLUMNS + ENV_COLUMNS)
    try:
        # groups of blocks: a back end may measure a group together (torch-cpu interleaves
        # them so each block runs after others, as in a network)
        groups = block_groups(todo, prof)
        timed_before = np.cumsum([0, *map(len, groups)])
        already = len(blocks) - len(todo)

        def counted(done_groups: int, _total: int) -> None:
            if progress:
                p, i = divmod(done_groups, len(groups))
                progress("blocks", already * passes + p * len(todo) + int(timed_before[i]),
                         len(blocks) * passes)

        fastest = _FastestReference(path.parent)
        for group, timed in measure_in_passes(groups, measure_block_group, prof, workers,
                                              passes, cache, progress=counted):
            fastest.note(m for per_pass in timed for m in per_pass)
            for block, *per_pass in zip(group, *timed, strict=True):
                writer.write(_block_row(block, per_pass, env, referenced))
    finally:
        writer.close()
    latency = {_row_key(r): float(r["latency_ms"]) for r in _read_rows(path, BLOCK_COLUMNS)}
    return [latency[block_key(b)] for b in blocks]


def block_groups(blocks: list[BlockSpec], prof: HardwareProfile) -> list[list[BlockSpec]]:
    """``blocks`` cut into the groups of :data:`BLOCK_GROUP` that a back end times together:
    as drawn, or with the profile's ``block_groups: similar``, sorted by memory footprint
    first (so that a group holds blocks of one size) and the groups then timed in a shuffled
    order (fixed seed), so that the blocks of one size are spread over the whole build, not
    timed in one stretch of minutes that a slow spell of the machine would bias together."""
    if prof.settings.get("block_groups", "sampled") != "similar":
        return [blocks[i:i + BLOCK_GROUP] for i in range(0, len(blocks), BLOCK_GROUP)]
    order = np.argsort(footprint(blocks, prof.parallelism_factor), kind="stable")
    ordered = [blocks[i] for i in order]
    groups = [ordered[i:i + BLOCK_GROUP] for i in range(0, len(ordered), BLOCK_GROUP)]
    return [groups[i] for i in np.random.default_rng(0).permutation(len(groups))]


def _block_row(block: BlockSpec, passes: Sequence[Measurement], env: list[str],
               referenced: bool) -> list[Any]:
    """A block table row: the block's key, :func:`robust_timing` over its timing passes, and
    the environment columns."""
    m = robust_timing(passes, referenced)
    return [*block_key(block), f"{m.latency_ms:.6g}", f"{m.spread_ms:.6g}", *env]


def _measure_in_context(nets: list[NetworkSample], path: Path, prof: HardwareProfile,
                        workers: int, cache: Path, env: list[str],
                        progress: Progress | None, passes: int = 1) -> None:
    """Time the blocks of ``nets`` inside their networks
    (:meth:`~estimators.backends.base.Backend.measure_network_blocks`) and append a row for
    each block not yet in the table at ``path``: the first network holding a block gives its
    row, as a block sampled twice is measured once. The networks are timed in chunks of
    :data:`CONTEXT_CHUNK`, each chunk in ``passes`` passes (:func:`measure_in_passes`), and
    each block keeps :func:`robust_timing` over its passes, as a whole network does: a burst
    of load slows all the blocks of the network it hits, which a second pass a chunk later
    discards. A network whose blocks all have rows is not timed again, so an interrupted build
    resumes with the networks it had not finished."""
    done = {_row_key(r) for r in _read_rows(path, BLOCK_COLUMNS)}
    referenced = timing_reference(prof) is not None
    blocks_of = {id(s): _blocks(s) for s in nets}  # decomposed once per network
    wanted = {block_key(b) for blocks in blocks_of.values() for b in blocks}
    todo = [s for s in nets if any(block_key(b) not in done for b in blocks_of[id(s)])]
    fastest = _FastestReference(path.parent)
    writer = _Appender(path, BLOCK_COLUMNS + ENV_COLUMNS)
    try:
        for start in range(0, len(todo), CONTEXT_CHUNK):
            chunk = todo[start:start + CONTEXT_CHUNK]
            for sample, timed in measure_in_passes(chunk, measure_network_blocks_sample, prof,
                                                   workers, passes, cache):
                fastest.note(m for per_pass in timed for m in per_pass)
                for block, *per_pass in zip(blocks_of[id(sample)], *timed, strict=True):
                    key = block_key(block)
                    if key in done:
                        continue
                    done.add(key)
                    writer.write(_block_row(block, per_pass, env, referenced))
                if progress:
                    progress("blocks", len(wanted & done), len(wanted))
    finally:
        writer.close()


def fit_estimator(tables: str | Path, profile: str | HardwareProfile, space: str,
                  out: str | Path, progress: Progress | None = None
                  ) -> tuple[LatencyEstimator, dict[str, Any]]:
    """Fit and save an estimator from measurement tables already on disk, no back end needed
    (what ``hwnas estimator fit`` runs).

    ``tables`` is a folder with ``measurements.csv`` and optionally ``networks.csv`` in the
    layout :func:`build_estimator` writes (a build folder, a shipped estimator, or tables
    measured elsewhere). They are copied into ``out``, so the estimator folder carries its own
    data as a built one does, and the manifest records where they came from (with their
    checksums). One-line ``ValueError`` for a missing folder or table, rows measured with
    another back end or profile than ``profile`` (the tables' environment columns), or
    networks outside ``space``.
    """
    prof = build_profile(profile, space)
    tables, out = Path(tables), Path(out)
    if not tables.is_dir():
        raise ValueError(f"no tables folder {tables}")
    if not (tables / BLOCK_TABLE).is_file():
        raise ValueError(f"{tables} has no {BLOCK_TABLE}")
    env = _check_tables(tables, prof, space)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in (BLOCK_TABLE, NETWORK_TABLE) if (tables / n).is_file()]
    if out.resolve() != tables.resolve():
        for name in names:
            shutil.copyfile(tables / name, out / name)
        if NETWORK_TABLE not in names:
            (out / NETWORK_TABLE).unlink(missing_ok=True)
        if (tables / TIMING_FILE).is_file():
            shutil.copyfile(tables / TIMING_FILE, out / TIMING_FILE)
    extra: dict[str, Any] = {"environment": env, "fit_from_tables": {
        "tables": str(tables), **{n: file_sha256(out / n) for n in names}}}
    source = _previous_manifest(tables)
    extra.update({k: source[k] for k in ("samples", "seed", "network_passes", "block_passes",
                                         "statistic", "reference", "reference_ms", "heads",
                                         "block_timing", "context_networks")
                  if k in source})
    saved = read_timing_file(out)  # tables without a manifest, or measured elsewhere
    if saved is not None:
        extra.update({k: saved.get(k) for k in ("statistic", "reference", "reference_ms")
                      if k not in extra})
    return _fit_and_save(out, space, prof, extra, progress)


def _check_tables(folder: Path, prof: HardwareProfile, space: str) -> dict[str, str]:
    """The environment the tables were measured in (their first block row's); refuses rows of
    another back end or profile, tables without environment columns, and networks outside
    ``space``."""
    envs = []
    for name, columns in ((BLOCK_TABLE, BLOCK_COLUMNS), (NETWORK_TABLE, NETWORK_COLUMNS)):
        rows = _read_rows(folder / name, columns)
        if rows and any(c not in rows[0] for c in ENV_COLUMNS):
            raise ValueError(f"{folder / name} lacks the columns {', '.join(ENV_COLUMNS)}; "
                             f"cannot tell what measured it")
        for row in rows:
            if (row["backend"], row["profile"]) != (prof.backend, prof.name):
                raise ValueError(f"{folder / name} was measured with profile {row['profile']!r} "
                                 f"(back end {row['backend']!r}), not {prof.name!r} "
                                 f"(back end {prof.backend!r})")
        envs.extend({c: row[c] for c in ENV_COLUMNS} for row in rows)
        if name == NETWORK_TABLE:
            _check_networks(folder / name, rows, space, prof.parallelism_factor)
    if not envs:
        raise ValueError(f"no block measurements in {folder / BLOCK_TABLE}")
    return envs[0]


def _check_networks(path: Path, rows: list[dict[str, str]], space: str, p: int) -> None:
    variants = _variants(space, p)
    for row in rows:
        arch = Architecture.from_string(row["arch"])
        if not any(v.contains(arch) for v in variants):
            raise ValueError(f"{path} holds a network outside space {space!r} (P={p}): "
                             f"{row['arch']}")


def _previous_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder`` when it is an estimator folder (a refit keeps the sample
    size, seed and network timing passes its tables were built with), else empty."""
    try:
        return read_manifest(folder)
    except ValueError:  # a plain tables folder, or one hwnas cannot read
        return {}


def _row_key(row: dict[str, str]) -> tuple:
    return (row["kind"], *row_config(row))


def fit_from_tables(folder: Path, space: str, profile: HardwareProfile, folds: int = 5,
                    progress: Progress | None = None, params: dict[str, Any] | None = None,
                    prior: bool | None = None, members: int = DEFAULT_MEMBERS,
                    jobs: int | None = None) -> tuple[LatencyEstimator, dict[str, Any]]:
    """Fit the per-kind models on ``folder``'s tables, with k-fold training error, and an
    ensemble of ``members`` bootstrap models per kind for intervals (0: none), calibrated on
    the tables' whole networks; ``progress("fit", fits_done, fits)`` as fits finish.
    ``params`` and ``prior`` override the recipe (see
    :func:`~estimators.latency.fit_kind_selected`; for ablations). The fits run in ``jobs``
    processes (:func:`~estimators.fitpool.fit_jobs`: every core for a table of some size); the
    models are the same for any ``jobs``."""
    rows = _read_rows(folder / BLOCK_TABLE, BLOCK_COLUMNS)
    if not rows:
        raise ValueError(f"no block measurements in {folder / BLOCK_TABLE}")
    p = profile.parallelism_factor
    reference = reference_scale(folder)  # to the build's fastest reference (most: none)
    factor = 1.0 if reference is None else reference["factor"]
    kinds = BLOCK_KINDS + tuple(k for k in HEAD_BLOCK_KINDS if any(r["kind"] == k for r in rows))
    data = {}
    for kind in kinds:
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            data[kind] = (np.array([[int(r[f]) for f in CONFIG_FIELDS] for r in sel],
                                   dtype=np.int64),
                          np.array([float(r["latency_ms"]) * factor for r in sel]))
    uses = [use for use in (True, False) if prior in (None, use)]
    cv_tasks = [FitTask("cv", kind, *xy, p, use, params, folds)
                for kind, xy in data.items() for use in uses]
    total = len(cv_tasks) + len(data) * (1 + members)
    report_fit = (lambda done, all_: progress("fit", done, all_)) if progress else None
    with FitPool(fit_jobs(jobs, len(rows)), total, report_fit) as pool:
        cv = iter(pool.run(cv_tasks))
        errors = {kind: select_prior(*(next(cv) if use in uses else None
                                       for use in (True, False)), prior)
                  for kind in data}
        fits = [FitTask("fit", kind, *xy, p, errors[kind]["prior"], params)
                for kind, xy in data.items()]
        fits += [FitTask("member", kind, *xy, p, errors[kind]["prior"], index=i)
                 for kind, xy in data.items() for i in range(members)]
        fitted = pool.run(fits)
    models = dict(zip(data, fitted[:len(data)]))
    ensemble = {kind: tuple(fitted[len(data) + k * members:len(data) + (k + 1) * members])
                for k, kind in enumerate(data)} if members else {}
    missing = [k for k in BLOCK_KINDS if k not in models]
    if missing:
        raise ValueError(f"no measurements of block kinds {', '.join(missing)}; "
                         f"use more --samples")
    estimator = LatencyEstimator(space=space, parallelism_factor=p, backend=profile.backend,
                                 profile=profile.name, models=models, members=ensemble)
    net_rows = _read_rows(folder / NETWORK_TABLE, NETWORK_COLUMNS)
    measured = np.array([float(r["latency_ms"]) * factor for r in net_rows])
    overhead_report: dict[str, Any] = {"networks": 0, "used": False}
    if net_rows:
        archs = [Architecture.from_string(r["arch"]) for r in net_rows]
        sums = np.array([estimator.predict(a, int(r["num_classes"]), int(r["in_channels"]))
                         for a, r in zip(archs, net_rows)])
        n_blocks = np.array([len(decompose(a, int(r["num_classes"]), int(r["in_channels"])))
                             for a, r in zip(archs, net_rows)])
        estimator.overhead, estimator.per_block_ms, overhead_report = fit_overhead(
            sums, measured, n_blocks)
        estimator._stages.clear()
    interval_report = None
    if members:
        nets = [(Architecture.from_string(r["arch"]), int(r["num_classes"]),
                 int(r["in_channels"])) for r in net_rows]
        interval_report = calibrate_on_networks(estimator, nets, measured)
    report = {
        "block_rows": len(rows),
        "rows_per_kind": {k: int(sum(r["kind"] == k for r in rows)) for k in models},
        "cv_error": errors,
        "overhead": overhead_report,
        "interval": interval_report,
        "noise_floor": _noise(rows),
        "reference": reference,
    }
    return estimator, report


def load_rows(folder: str | Path) -> dict[str, list[dict[str, str]]]:
    """The measurement tables of an estimator folder (``blocks`` and ``networks`` rows)."""
    folder = Path(folder)
    return {"blocks": _read_rows(folder / BLOCK_TABLE, BLOCK_COLUMNS),
            "networks": _read_rows(folder / NETWORK_TABLE, NETWORK_COLUMNS)}


def _noise(rows: list[dict[str, str]]) -> float:
    rel = [float(r["spread_ms"]) / float(r["latency_ms"]) for r in rows
           if float(r["latency_ms"]) > 0]
    return float(np.median(rel)) if rel else 0.0
