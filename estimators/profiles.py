"""Hardware profiles: one YAML file per target under ``estimators/profiles/``.

A profile names its back end, the target's parallelism factor P (what the curated search space
reads) and back-end specific settings. Example (``estimators/profiles/torch-cpu.yaml``)::

    name: torch-cpu
    backend: torch-cpu
    parallelism_factor: 8
    description: This machine's CPU through PyTorch eager, 1 thread, fp32.
    settings: {threads: 1, warmup: 3, repeats: 15}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

SETTINGS_CONFIG = ConfigDict(extra="forbid", strict=True)
"""Profiles and back-end settings: unknown keys are errors (a typo must not fall back to a
default) and values keep their YAML type (``"yes"`` is no bool, ``1.5`` no int; an int is a
float)."""

S = TypeVar("S")


def _first_error(err: ValidationError) -> tuple[str, str]:
    """The key and the message of a validation error's first problem, on one line."""
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] != "missing":
        message += f", got {first['input']!r}"
    return key, " ".join(message.split())


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class HardwareProfile:
    """One target: its back end, its parallelism factor P (what the curated search space reads)
    and the back end's own ``settings``, validated by the back end's settings model
    (:func:`parse_settings`)."""

    name: str = Field(min_length=1)
    backend: str = Field(min_length=1)
    parallelism_factor: int = Field(ge=1)
    description: str = ""
    settings: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    path: Path | None = dataclasses.field(default=None, compare=False, hash=False)

    def resolve_path(self, relative: str) -> Path:
        """A file named in the settings, relative to the profile's folder."""
        base = self.path.parent if self.path is not None else PROFILE_DIR
        return (base / relative).resolve()


def parse_settings(cls: type[S], profile: HardwareProfile) -> S:
    """The back end's frozen settings model ``cls`` filled from ``profile.settings``.

    Missing keys take the field defaults; an unknown key, a value of the wrong type or out of
    range raises a one-line ``ValueError`` naming the profile and the key.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(profile.settings) - set(names))
    if unknown:
        raise ValueError(f"profile {profile.name!r}: unknown setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(names)}")
    try:
        return cls(**profile.settings)
    except ValidationError as err:
        key, message = _first_error(err)
        raise ValueError(f"profile {profile.name!r}: setting {key!r}: {message}") from None


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if "." not in p.stem)


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """A shipped profile by name (``npu32``) or a YAML file by path.

    Unknown names and malformed files raise a one-line ``ValueError``.
    """
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.exists()):
        path = PROFILE_DIR / f"{text}.yaml"
        if not path.exists():
            raise ValueError(f"unknown hardware profile {text!r}; known: "
                             f"{', '.join(list_profiles())} (or a path to a YAML file)")
    if not path.is_file():
        raise ValueError(f"hardware profile file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"hardware profile {path} is not valid YAML: "
                         f"{' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"hardware profile {path} must be a mapping")
    if "path" in data:  # where the file lies, not a key of it
        raise ValueError(f"hardware profile {path}: path: Unexpected keyword argument")
    try:
        return HardwareProfile(**{**data, "settings": data.get("settings") or {},
                                  "path": path.resolve()})
    except ValidationError as err:
        key, message = _first_error(err)
        raise ValueError(f"hardware profile {path}: {key}: {message}") from None
