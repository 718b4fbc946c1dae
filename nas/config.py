"""The search configuration: one YAML file, validated by pydantic.

Every section has defaults, so a config names only what differs (``configs/quickstart.yaml``).
Unknown keys are errors (a typo must not silently fall back to a default), and
:func:`load_config` turns any validation failure into one ``ValueError`` line naming the field.

    name: quickstart
    task: {dataset: digits, max_train: 800}
    space: {name: mbv2-small, curated: true}
    hardware: {profile: npu32, estimator: npu32-mbv2-small}
    budgets: {latency_ms: 0.35, peak_activation_mib: 1.0}
    strategy: {name: evolution, params: {population_size: 10, sample_size: 4}}
    trials: 24
    training: {epochs: 3}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas.strategies.registry import get_spec

DATASETS: tuple[str, ...] = ("digits", "cifar10", "imagefolder", "coco-detection",
                             "voc-segmentation")
"""The datasets :mod:`nas.data` reads (the last two through :mod:`nas.datasets`); named here so
that loading a config imports no torch."""
TASK_KINDS: dict[str, tuple[str, ...]] = {
    "classification": ("digits", "cifar10", "imagefolder"),
    "detection": ("coco-detection",),
    "segmentation": ("voc-segmentation",),
}
"""The datasets each task kind learns from."""
TASK_METRICS: dict[str, str] = {"classification": "accuracy", "detection": "map50",
                                "segmentation": "miou"}
"""The validation metric each task kind maximises. A trial reports it under its own name and
as ``accuracy``, the objective key the search, its strategies and its Pareto front use."""
SYNTHETIC_SETS: tuple[str, ...] = ("shapes", "presence")
"""``task.synthetic``: the deterministic scenes of :mod:`nas.datasets.synthetic` (three shape
classes; or one class, 'person', among distractor shapes)."""
DATA_PATHS: tuple[str, ...] = ("auto", "memory", "stream")
AUGMENTATIONS: tuple[str, ...] = ("auto", "none", "crop", "crop_flip")
"""``training.augment`` values (:func:`nas.fastdata.augment`); ``auto`` is ``crop_flip`` where a
mirror image is the same class (CIFAR-10, ImageFolder photos) and ``crop`` where it is not (a
mirrored digit is another glyph)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(_Section):
    """What the candidates learn: ``kind`` picks the task (:mod:`nas.tasks`) and the head its
    candidates end in (a classifier, CenterNet detection, LR-ASPP segmentation); ``dataset``
    must be one the kind learns from (:data:`TASK_KINDS`). ``synthetic`` writes the
    deterministic synthetic scenes into ``data_dir`` on first use (detection and segmentation;
    the case-study configs run on them)."""

    kind: Literal["classification", "detection", "segmentation"] = "classification"
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    synthetic: Literal["shapes", "presence"] | None = None
    synthetic_images: int = Field(300, ge=8)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    max_train: int | None = Field(None, ge=1)
    max_val: int | None = Field(None, ge=1)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in DATASETS:
            raise ValueError(f"unknown dataset {value!r}; known: {', '.join(DATASETS)}")
        return value

    @property
    def metric(self) -> str:
        """The validation metric this task maximises (:data:`TASK_METRICS`)."""
        return TASK_METRICS[self.kind]

    @model_validator(mode="after")
    def _dataset_fits_kind(self) -> TaskConfig:
        wanted = TASK_KINDS[self.kind]
        if self.dataset not in wanted:
            raise ValueError(f"a {self.kind} task learns from {' or '.join(wanted)}, not "
                             f"{self.dataset!r}")
        if self.synthetic and self.kind == "classification":
            raise ValueError("synthetic scenes are for detection and segmentation tasks")
        if self.synthetic and not self.data_dir:
            raise ValueError("synthetic needs data_dir: the folder the scenes are written to")
        return self


class SpaceConfig(_Section):
    """``free`` restricts the search to these dimensions (the others keep the space baseline's
    values); ``choices`` narrows a free dimension's values (``{s0_block: [ibn, fibn]}``)."""

    name: str = "mbv2-small"
    curated: bool = True
    free: list[str] | None = None
    choices: dict[str, list[Any]] = Field(default_factory=dict)


class HardwareConfig(_Section):
    """The target: a hardware profile (its parallelism factor curates the space) and the
    learned estimator that predicts latency on it (a folder or a shipped name)."""

    profile: str = "npu32"
    estimator: str = "npu32-mbv2-small"


class BudgetConfig(_Section):
    """Hard constraints checked before training; ``None`` means unconstrained."""

    latency_ms: float | None = Field(None, gt=0)
    peak_activation_mib: float | None = Field(None, gt=0)
    params_m: float | None = Field(None, gt=0, description="parameters, in millions")


class StrategyConfig(_Section):
    name: str = "evolution"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Section):
    """Brief training with early stopping: ASHA (Li et al., "A System for Massively Parallel
    Hyperparameter Tuning", MLSys 2020) stops a trial at a rung (``grace_period`` epochs, then
    times ``reduction_factor``) when its accuracy is below the top 1/``reduction_factor``."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    asha: bool = True
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    surrogate: bool = Field(False, description="score candidates with the training-free NASWOT "
                            "proxy (nas/surrogate.py) instead of training them")
    # The in-memory fast path (nas/fasttrain.py, docs/search.md "Fast training path").
    data_path: str = Field("auto", description="auto: hold the dataset on the trial's device "
                           "(uint8) when it fits memory_cap_mib, else stream it; memory; stream")
    memory_cap_mib: float = Field(1024.0, gt=0, description="largest dataset (uint8 images at "
                                  "the trial's resolution, train + val) auto holds on a device")
    memory_batch_size: int | None = Field(
        None, ge=1, description="batch on the in-memory path (default batch_size); lr is scaled "
        "linearly: lr * memory_batch_size / batch_size")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="in-memory path only")
    augment: str = Field("none", description="in-memory path: none, crop, crop_flip or auto "
                         "(crop_flip, but crop alone on digits); off by default: it slows "
                         "learning in a brief trial (benchmarks/fastpath_accuracy.py)")
    mixed_precision: bool | None = Field(
        None, description="in-memory path autocast: bf16 (fp16 with loss scaling on GPUs "
        "without bf16); default on for CUDA, off on CPU")

    @field_validator("data_path")
    @classmethod
    def _known_data_path(cls, value: str) -> str:
        if value not in DATA_PATHS:
            raise ValueError(f"unknown data_path {value!r}; choose auto (hold the dataset on "
                             "the device when it fits memory_cap_mib), memory or stream")
        return value

    @field_validator("augment")
    @classmethod
    def _known_augment(cls, value: str) -> str:
        if value not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {value!r}; choose one of "
                             f"{', '.join(AUGMENTATIONS)}")
        return value


class ClusterError(ValueError):
    """The Ray cluster cannot run the search as configured: unreachable at the address given,
    or no node has the CPUs and GPUs one trial asks for (``resources``). Bad input, found only
    once the cluster is asked, and reported by the CLI as one line."""


class ResourcesConfig(_Section):
    """Per trial; ``max_concurrent`` caps the trials in flight (default: as many as fit).
    A fraction of a GPU is also the trial's cap on that GPU's memory (:mod:`nas.packing`)."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0, description="fractions (0.25) let trials share one GPU")
    max_failures: int = Field(1, ge=0, description="retries of a trial whose worker died or "
                              "that raised (a lost node); a candidate that fails again is "
                              "recorded as failed")
    max_concurrent: int | None = Field(None, ge=1)
    simulated_memory_mib: float | None = Field(
        None, gt=0, description="test hook (nas/packing.py): an attempt whose batch size x the "
        "candidate's peak activation bytes exceeds this raises torch.OutOfMemoryError before "
        "its first step, so the retry at half the batch runs without a GPU; never set it for a "
        "real search")
    reuse_actors: bool | None = Field(
        None, description="run the next trial in a finished trial's worker (saves starting "
        "one); default: yes on a Ray the search starts itself, no on a cluster it joins, where "
        "Tune would not retry a trial whose reused worker is lost while being reset for it")


class TrackingConfig(_Section):
    """Credentials never go in the URI (it is logged and saved for --resume): MLflow reads
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``."""

    uri: str = "sqlite:///mlflow.db"
    experiment: str = "hwnas"
    reference_latency_ms: float | None = Field(
        None, gt=0, description="hypervolume reference latency; default the latency budget, "
        "else twice the space baseline's predicted latency")


class SearchConfig(_Section):
    name: str = "search"
    seed: int = 0
    trials: int = Field(24, ge=1)
    count_rejected: bool = Field(
        False, description="whether a candidate rejected before training uses up one of "
        "`trials`. false (default): `trials` is how many candidates within the budgets are "
        "trained, whatever the budgets reject on the way (each proposal is priced in the driver "
        "first; at most 10 x trials rejections); true: every proposal counts, so tighter "
        "budgets train fewer (see docs/results.md)")
    task: TaskConfig = TaskConfig()
    space: SpaceConfig = SpaceConfig()
    hardware: HardwareConfig = HardwareConfig()
    budgets: BudgetConfig = BudgetConfig()
    strategy: StrategyConfig = StrategyConfig()
    training: TrainingConfig = TrainingConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    storage_path: str = Field("ray_results", description="where Ray Tune keeps trial state "
                              "(a shared mount on a cluster, for --resume)")

    @field_validator("tracking")
    @classmethod
    def _no_credentials(cls, value: TrackingConfig) -> TrackingConfig:
        from urllib.parse import urlsplit

        if "@" in (urlsplit(value.uri).netloc or ""):
            raise ValueError("the tracking URI holds credentials; set MLFLOW_TRACKING_USERNAME "
                             "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead")
        return value

    @field_validator("storage_path")
    @classmethod
    def _local_storage(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"storage_path must be a filesystem path (on a cluster, a shared "
                             f"mount such as NFS), not the URI {value!r}")
        return value

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: StrategyConfig) -> StrategyConfig:
        get_spec(value.name)  # a one-line error listing the registered names
        return value

    @model_validator(mode="after")
    def _proxies_score_classifiers(self) -> SearchConfig:
        """The training-free proxies (nas/proxies) score a classifier's logits against labels;
        a detector's or segmenter's candidates are trained."""
        if self.task.kind != "classification":
            if self.training.surrogate:
                raise ValueError(f"training.surrogate scores classifiers only; a {self.task.kind} "
                                 f"search trains its candidates")
            family = get_spec(self.strategy.name).family
            if family != "multishot":
                raise ValueError(f"strategy {self.strategy.name!r} ranks candidates by "
                                 f"classifier proxies; a {self.task.kind} search needs one that "
                                 f"trains them (evolution, random, optuna-nsga2, optuna-tpe)")
        return self

    def with_overrides(self, **overrides: Any) -> SearchConfig:
        """A copy with dotted-path overrides (``{"training.epochs": 2}``); ``None`` skips."""
        data = self.model_dump()
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return validate_config(data, "overrides")


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"bad config {source}: {where}: {message}{more}"


def validate_config(data: Any, source: str = "") -> SearchConfig:
    if not isinstance(data, dict):
        raise ValueError(f"bad config {source}: expected a mapping at the top level")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        raise ValueError(_describe(err, source)) from None


def load_config(path: str | Path | None) -> SearchConfig:
    """Read and validate a YAML config; ``None`` gives the defaults."""
    if path is None:
        return SearchConfig()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no config file {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"bad config {path}: not valid YAML ({str(err).splitlines()[0]})"
                         ) from None
    return validate_config(data, str(path))
