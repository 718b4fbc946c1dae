"""The rules file that ``hwnas expert mine`` writes and ``hwnas expert apply`` reads.

A rule says: at this relative stage position, set this knob to this value. Positions split the
stages of a network in thirds (``early``, ``middle``, ``late``); global knobs have position
``global``. Knobs:

- per stage: ``block`` (ibn | fibn | conv), ``kernel``, ``expansion``, ``repeats``,
  ``channels_aligned`` (true: the built channel count is a multiple of the parallelism factor);
- global: ``width_mult``.

Each rule carries its support (how many Pareto-optimal and dominated architectures it was read
from, and the share of each that has the value) and its effect size (median latency change in
percent and median accuracy change in points between architectures with and without the value).
The file is YAML, validated with pydantic: a wrong field or value is one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from searchspaces.files import atomic_write

FORMAT_VERSION = 1
POSITIONS = ("early", "middle", "late", "global")
STAGE_KNOBS = ("block", "kernel", "expansion", "repeats", "channels_aligned")
GLOBAL_KNOBS = ("width_mult",)
KNOBS = STAGE_KNOBS + GLOBAL_KNOBS


def position_of(stage: int, num_stages: int) -> str:
    """``early`` / ``middle`` / ``late``: the stage's third of the network (stage 0 is early)."""
    if not 0 <= stage < num_stages:
        raise ValueError(f"stage {stage} out of range for a network of {num_stages} stages")
    third = stage * 3 // num_stages
    return POSITIONS[third]


def stages_at(position: str, num_stages: int) -> list[int]:
    """The stage indices of a position (all of them for ``global``)."""
    if position not in POSITIONS:
        raise ValueError(f"unknown position {position!r}; expected one of {', '.join(POSITIONS)}")
    if position == "global":
        return list(range(num_stages))
    return [i for i in range(num_stages) if position_of(i, num_stages) == position]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Support(_Strict):
    """Where a rule comes from."""

    searches: int  # searches (MLflow parent runs) that contain architectures with the value
    pareto: int  # Pareto-optimal architectures with the value
    dominated: int  # dominated architectures with the value
    pareto_share: float  # share of all Pareto-optimal architectures that have the value
    dominated_share: float  # share of all dominated architectures that have the value

    @property
    def lift(self) -> float:
        """How much more common the value is among Pareto-optimal than dominated nets."""
        return self.pareto_share - self.dominated_share


class Effect(_Strict):
    """Median difference, architectures with the value minus those without."""

    latency_pct: float  # percent of the median latency without the value
    accuracy_points: float  # accuracy points (0.01 accuracy = 1 point)


class Rule(_Strict):
    position: Literal["early", "middle", "late", "global"]
    knob: Literal["block", "kernel", "expansion", "repeats", "channels_aligned", "width_mult"]
    value: bool | int | float | str
    support: Support
    effect: Effect
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if (self.knob in GLOBAL_KNOBS) != (self.position == "global"):
            raise ValueError(f"knob {self.knob!r} needs position "
                             f"{'global' if self.knob in GLOBAL_KNOBS else 'early/middle/late'}, "
                             f"got {self.position!r}")
        return self

    @property
    def label(self) -> str:
        return f"{self.position}: {self.knob} = {self.value}"


class RuleSet(_Strict):
    hwnas_rules: int = FORMAT_VERSION
    space: str  # the search space the rules were mined in
    profile: str  # hardware profile of the searches' latency estimates
    parallelism_factor: int
    source: dict[str, Any] = {}  # experiments, searches, architectures, the command
    rules: list[Rule]

    @model_validator(mode="after")
    def _version(self) -> RuleSet:
        if self.hwnas_rules != FORMAT_VERSION:
            raise ValueError(f"rules format {self.hwnas_rules} is not supported (this hwnas "
                             f"reads {FORMAT_VERSION})")
        return self


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; any problem is one ``ValueError`` line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rules file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a rules file is a mapping with 'rules', got "
                         f"{type(data).__name__}")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


def save_rules(rules: RuleSet, path: str | Path) -> Path:
    """Write ``rules`` as YAML (atomically: a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, yaml.safe_dump(rules.model_dump(mode="json"), sort_keys=False, width=100))
    return path
