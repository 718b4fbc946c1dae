"""The design-phase accelerator back end: analytical latency of a DNN accelerator from ZigZag.

ZigZag (L. Mei, P. Houshmand, V. Jain, S. Giraldo, M. Verhelst, "ZigZag: Enlarging Joint
Architecture-Mapping Design Space Exploration for DNN Accelerators", IEEE Transactions on
Computers 70(8), 2021; ``zigzag-dse`` 3.9.1) models an accelerator as a MAC array under a memory
hierarchy, searches the loop order and memory allocation of every layer (LOMA) and returns its
latency in cycles: compute under the given spatial mapping, plus stalls from memory bandwidth,
plus loading the first and storing the last data (``CostModelEvaluation.latency_total2``).

A profile names the ZigZag accelerator and mapping YAML files (relative to the profile),
``clock_mhz``, optionally ``lpf_limit`` (LOMA's loop-prime-factor limit, default 4; ZigZag's
default 6 is 5-20x slower for no better latency) and ``cache_dir`` (an on-disk JSON cache of
per-layer cycles).

How each :class:`~searchspaces.layers.LayerSpec` becomes a ZigZag layer (int8 weights and
activations, 16-bit partial sums, batch 1):

* ``conv``: ``O[b][g][k][oy][ox] += W[g][k][c][fy][fx] * I[b][g][c][iy][ix]`` with K = cout,
  C = cin, 'same' padding of kernel // 2 and the stride in ``ix = s*ox + fx``.
* ``dwconv``: the same equation with K = 1, C = 1 and G = channels (ZigZag's group dimension).
* ``linear``: a 1x1 conv on a 1x1 map (K = out features, C = in features).
* ``pool`` (global average pooling): a depthwise conv whose window is the whole map
  (FX = FY = resolution, weights 1 / resolution^2), which is how NPU compilers lower it.
* ``add`` (the residual add): ZigZag's element-wise form ``O[b][g][oy][ox] = I[...] + W[...]``
  with no constant operand: both inputs and the output are feature maps, so ZigZag charges the
  traffic of all three; the mapping gives it P lanes, like a P-wide vector unit.

The task heads add three ops, each lowered onto units the mapping already has:

* ``pconv`` (a prediction conv with a bias): a ``conv``; the bias seeds the accumulator and
  costs no cycles.
* ``mul`` (LR-ASPP's gate, a per-channel vector broadcast over the map): a 1x1 depthwise conv
  whose weights are the gate (G = channels), on the ``add`` entry's P lanes. Only the map and
  the output are feature maps, so it moves a third less than an ``add``.
* ``resize`` (bilinear upsampling from ``in_res`` to ``out_res``): a 2x2 depthwise conv over the
  *output* grid (four taps, weights the bilinear coefficients) whose input is the ``in_res``
  map: ZigZag clips the input's extent to ``in_res``, so it moves the small input once and the
  large output once; on the ``dwconv`` entry (channels across, taps down), how an NPU compiler
  lowers an upsampling onto its depthwise path.

The layer names are ``conv``, ``dwconv``, ``linear``, ``pool`` and ``add``; ZigZag picks the
mapping entry of that name (before the operator type and ``default``), so a mapping file must
define ``default``, ``dwconv``, ``pool`` and ``add``. Every layer is evaluated on its own, as
ZigZag does by default: its operands start in, and its result returns to, the top of the memory
hierarchy (DRAM); no inter-layer fusion. A network's latency is therefore the sum of its layers,
and :meth:`ZigZagBackend.measure_network` equals the sum of :meth:`ZigZagBackend.measure_block`
over ``decompose(arch)`` up to float rounding.

ZigZag takes ~0.15 s (depthwise, 1x1) to ~1 s per layer on the NPU profiles, but ~5-15 s for a
KxK conv whose input and output channels both exceed the array (LOMA never searches fewer loop
orders than there are temporal loops: 6! = 720 cost-model runs), and several seconds per KxK
conv on the 4-D Edge-TPU-like array. Cycles are therefore memoized per layer shape in the process
and, with a ``cache_dir``, in a JSON file keyed by a fingerprint of the ZigZag version, the
accelerator and mapping files and the search settings (written atomically under a file lock,
merged with what other processes wrote). ZigZag runs as its latency API does but without the
stages that write result files (:func:`_latency_pipeline`), so it writes nothing and processes
can run side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import yaml

try:
    import fcntl
except ImportError:  # not POSIX: cache writes stay atomic but may drop a concurrent writer's rows
    fcntl = None  # type: ignore[assignment]

from pydantic import Field
from pydantic.dataclasses import dataclass

from estimators.profiles import SETTINGS_CONFIG, HardwareProfile, parse_settings
from searchspaces.files import atomic_write
from searchspaces.genome import Architecture
from searchspaces.layers import LAYER_OPS, BlockSpec, LayerSpec
from searchspaces.layers import layers as network_layers

from .base import Backend, Measurement

# Bump when the translation of a LayerSpec into a ZigZag layer changes (invalidates disk caches).
MODEL_VERSION = 1
PRECISION = {"W": 8, "I": 8, "O": 16, "O_final": 8}
MAPPING_ENTRIES = ("default", "dwconv", "pool", "add")


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class ZigZagSettings:
    """The accelerator and mapping files (relative to the profile's folder), the clock, LOMA's
    loop-prime-factor limit and an optional cache folder (see the module doc)."""

    accelerator: str
    mapping: str
    clock_mhz: float = Field(gt=0)
    lpf_limit: int = Field(4, ge=1)
    cache_dir: str | None = None


_CONV_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"
_MAPPED_AS = {"pconv": "conv", "mul": "add", "resize": "dwconv"}
"""The mapping entry of the ops that have none of their own (see the module doc)."""
_ADD_EQUATION = "O[b][g][oy][ox]=I[b][g][oy][ox]+W[b][g][oy][ox]"

ShapeKey = tuple[str, int, int, int, int, int, int, int]


def shape_key(layer: LayerSpec) -> ShapeKey:
    """What ZigZag sees of a layer: everything but its name."""
    return (layer.op, layer.cin, layer.cout, layer.kernel, layer.stride, layer.groups,
            layer.in_res, layer.out_res)


def zigzag_layer(key: ShapeKey, layer_id: int) -> dict[str, Any]:
    """The ZigZag workload entry (the list-of-dicts format of ``zigzag.api``) of one layer."""
    op, cin, cout, kernel, stride, groups, in_res, out_res = key
    if op == "add":
        return {"id": layer_id, "name": "add", "operator_type": "Add",
                "equation": _ADD_EQUATION, "loop_dims": ["B", "G", "OX", "OY"],
                "loop_sizes": [1, cout, out_res, out_res],
                "operand_precision": {"I": 8, "W": 8, "O": 8, "O_final": 8},
                "operand_source": {}}
    name, pads = _MAPPED_AS.get(op, op), None
    if op in ("conv", "pconv", "dwconv", "linear"):
        g, k, c, pad = groups, cout // groups, cin // groups, kernel // 2
        if op == "dwconv" and (k != 1 or c != 1):
            raise ValueError(f"a dwconv layer needs cin == cout == groups, got {key}")
    elif op == "pool":  # a depthwise conv whose window is the whole map
        g, k, c, pad, kernel, stride = cin, 1, 1, 0, in_res, in_res
    elif op == "mul":  # a per-channel scale: a 1x1 depthwise conv whose weights are the gate
        g, k, c, pad, kernel, stride = cout, 1, 1, 0, 1, 1
    elif op == "resize":  # a 2x2 depthwise conv on the output grid reading the in_res map
        g, k, c, kernel, stride = cout, 1, 1, 2, 1
        pad, pads = 0, [[0, 1], [0, 1]]
    else:
        raise ValueError(f"unknown layer op {op!r}; expected one of {', '.join(LAYER_OPS)}")
    return {"id": layer_id, "name": name,
            "operator_type": "Pooling" if op == "pool" else "Conv",
            "equation": _CONV_EQUATION,
            "dimension_relations": [f"ix={stride}*ox+1*fx", f"iy={stride}*oy+1*fy"],
            "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"],
            "loop_sizes": [1, k, g, out_res, out_res, c, kernel, kernel],
            "operand_precision": dict(PRECISION),
            "operand_source": {"W": layer_id},  # constant weights; the input comes from outside
            "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [in_res, in_res],
            "padding": pads or [[pad, pad], [pad, pad]]}


def zigzag_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zigzag-dse")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _quiet_zigzag() -> Iterator[None]:
    """Keep ZigZag's INFO/WARNING logs out, and undo the ``logging.basicConfig(level=INFO)`` that
    ``get_hardware_performance_zigzag`` runs (it installs a root handler when there is none)."""
    root, zz = logging.getLogger(), logging.getLogger("zigzag")
    handlers, level, zz_level = list(root.handlers), root.level, zz.level
    zz.setLevel(logging.ERROR)
    try:
        yield
    finally:
        zz.setLevel(zz_level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


def _latency_pipeline(workload: list[dict[str, Any]], accelerator: str, mapping: str,
                      lpf_limit: int) -> Any:
    """ZigZag's ``get_hardware_performance_zigzag(opt="latency")`` pipeline of stages (zigzag-dse
    3.9.1, same order and settings) without its result-saving and visualisation stages.

    Those only write files (a json per layer, a pickle, a png of the memory hierarchy, a loop
    ordering printout), and the printout fails (``max()`` of an empty sequence) on a layer with
    no temporal loop, one the array holds whole: a 1x1 conv on a 1x1 map whose input and output
    channels both fit the array, such as a narrow LR-ASPP gate or a small classifier."""
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import (
        TemporalMappingGeneratorStage,
    )
    from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
    from zigzag.stages.parser.workload_parser import WorkloadParserStage
    from zigzag.stages.results.reduce_stages import MinimalLatencyStage, SumStage
    from zigzag.stages.workload_iterator import WorkloadStage

    stages = [WorkloadParserStage, AcceleratorParserStage, SumStage, WorkloadStage,
              MinimalLatencyStage, SpatialMappingGeneratorStage, MinimalLatencyStage,
              TemporalMappingGeneratorStage, CostModelStage]
    return MainStage(stages, accelerator=accelerator, workload=workload, mapping=mapping,
                     loma_lpf_limit=lpf_limit, loma_show_progress_bar=False,
                     nb_mappings_generated=3, enable_mix_spatial_mapping_generation=False,
                     access_same_data_considered_as_no_access=True,
                     temporal_mapping_type=TemporalMappingType("uneven"))


class ZigZagBackend(Backend):
    """Latency of blocks and networks on a ZigZag accelerator model; deterministic."""

    name: ClassVar[str] = "zigzag"
    supports_cache: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    _import_error: ClassVar[str | None] = None

    def __init__(self, profile: HardwareProfile, cache_dir: str | Path | None = None) -> None:
        super().__init__(profile)
        s = parse_settings(ZigZagSettings, profile)
        self.accelerator = self._yaml_file(s.accelerator, "accelerator")
        self.mapping = self._yaml_file(s.mapping, "mapping")
        self.clock_mhz, self.lpf_limit = s.clock_mhz, s.lpf_limit
        self._check_mapping()
        cache_dir = cache_dir if cache_dir is not None else s.cache_dir
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._cycles: dict[ShapeKey, float] = {}
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self.zigzag_calls = 0  # how many times ZigZag ran (for tests and reports)
        if self.cache_dir is not None:
            self._cycles.update(self._read_cache())

    # -- configuration ----------------------------------------------------------------------
    def _yaml_file(self, relative: Any, what: str) -> Path:
        if not isinstance(relative, str) or not relative.endswith(".yaml"):
            raise ValueError(f"profile {self.profile.name!r}: {what} must name a .yaml file, "
                             f"got {relative!r}")
        path = self.profile.resolve_path(relative)
        if not path.is_file():
            raise ValueError(f"profile {self.profile.name!r}: {what} file {path} does not exist")
        return path

    def _check_mapping(self) -> None:
        try:
            data = yaml.safe_load(self.mapping.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"mapping {self.mapping} is not valid YAML: "
                             f"{' '.join(str(err).split())}") from None
        names = {e.get("name") for e in data if isinstance(e, dict)} if isinstance(data, list) \
            else set()
        missing = [n for n in MAPPING_ENTRIES if n not in names]
        if missing:
            raise ValueError(f"mapping {self.mapping} lacks entries {', '.join(missing)} "
                             f"(needs {', '.join(MAPPING_ENTRIES)})")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if cls._import_error is None:
            try:
                import zigzag.api  # noqa: F401  (needs six, an undeclared dependency)
            except Exception as err:  # ImportError, or anything a broken install raises
                cls._import_error = f"cannot import zigzag.api ({type(err).__name__}: {err}); " \
                                    f"pip install zigzag-dse six"
            else:
                cls._import_error = ""
        return (not cls._import_error), cls._import_error

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({"zigzag": zigzag_version(), "accelerator": self.accelerator.name,
                    "mapping": self.mapping.name, "clock_mhz": f"{self.clock_mhz:g}",
                    "lpf_limit": str(self.lpf_limit)})
        return env

    # -- measuring ----------------------------------------------------------------------------
    def cycles_per_ms(self) -> float:
        return self.clock_mhz * 1e3

    def layer_cycles(self, layer_list: Iterable[LayerSpec]) -> list[float]:
        """Cycles of each layer, running ZigZag once for all the shapes not yet known."""
        keys = [shape_key(layer) for layer in layer_list]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._cycles))
            if missing:
                self._cycles.update(self._run_zigzag(missing))
                if self.cache_dir is not None:
                    self._write_cache()
            return [self._cycles[k] for k in keys]

    def layer_latencies_ms(self, layer_list: Iterable[LayerSpec]) -> list[float]:
        return [c / self.cycles_per_ms() for c in self.layer_cycles(layer_list)]

    def measure_block(self, block: BlockSpec) -> Measurement:
        return Measurement(sum(self.layer_latencies_ms(block.layers())), 0.0)

    def measure_blocks(self, blocks: Sequence[BlockSpec]) -> list[Measurement]:
        self.layer_cycles(layer for b in blocks for layer in b.layers())  # one ZigZag run
        return [self.measure_block(b) for b in blocks]

    def measure_network(self, arch: Architecture, num_classes: int = 1000,
                        in_channels: int = 3) -> Measurement:
        all_layers = network_layers(arch, num_classes, in_channels)
        return Measurement(sum(self.layer_latencies_ms(all_layers)), 0.0)

    def _run_zigzag(self, keys: Sequence[ShapeKey]) -> dict[ShapeKey, float]:
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        workload = [zigzag_layer(key, i) for i, key in enumerate(keys)]
        try:
            with _quiet_zigzag():
                cmes = _latency_pipeline(workload, str(self.accelerator), str(self.mapping),
                                         self.lpf_limit).run()
        except Exception as err:  # ZigZag reports bad inputs with asserts and bare exceptions
            shown = ", ".join(map(str, keys[:3])) + (", ..." if len(keys) > 3 else "")
            raise RuntimeError(f"ZigZag failed on profile {self.profile.name!r} for "
                               f"{len(keys)} layer shapes ({shown}): {type(err).__name__}: "
                               f"{' '.join(str(err).split())}") from err
        self.zigzag_calls += 1
        result = {keys[cme.layer.id]: float(cme.latency_total2) for cme, _ in cmes[0][1]}
        if len(result) != len(keys):
            raise RuntimeError(f"ZigZag returned {len(result)} layers for {len(keys)}")
        return result

    # -- on-disk cache ------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What the cached cycles depend on."""
        digest = hashlib.sha256()
        for part in (f"model{MODEL_VERSION}", zigzag_version(), f"lpf{self.lpf_limit}",
                     json.dumps(PRECISION, sort_keys=True)):
            digest.update(part.encode() + b"\0")
        for path in (self.accelerator, self.mapping):
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    @property
    def cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        if self._fingerprint is None:
            self._fingerprint = self.fingerprint()
        return self.cache_dir / f"zigzag-{self.profile.name}-{self._fingerprint}.json"

    def _read_cache(self) -> dict[ShapeKey, float]:
        path = self.cache_file
        if path is None or not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
            return {tuple(json.loads(k)): float(v) for k, v in data["cycles"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # a damaged cache is only a cache: start again

    def _write_cache(self) -> None:
        path = self.cache_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            merged = self._read_cache()  # keep what other processes wrote meanwhile
            merged.update(self._cycles)
            data = {"fingerprint": self._fingerprint, "profile": self.profile.name,
                    "zigzag": zigzag_version(), "unit": "cycles",
                    "key": "op, cin, cout, kernel, stride, groups, in_res, out_res",
                    "cycles": {json.dumps(list(k)): v for k, v in sorted(merged.items())}}
            atomic_write(path, json.dumps(data, indent=0))
