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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    backend: str
    parallelism_factor: int
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    path: Path | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a hardware profile needs a name")
        if not isinstance(self.parallelism_factor, int) or self.parallelism_factor < 1:
            raise ValueError(f"profile {self.name!r}: parallelism_factor must be a positive "
                             f"integer, got {self.parallelism_factor!r}")
        if not isinstance(self.settings, dict):
            raise ValueError(f"profile {self.name!r}: settings must be a mapping")

    def resolve_path(self, relative: str) -> Path:
        """A file named in the settings, relative to the profile's folder."""
        base = self.path.parent if self.path is not None else PROFILE_DIR
        return (base / relative).resolve()


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
    missing = {"name", "backend", "parallelism_factor"} - data.keys()
    if missing:
        raise ValueError(f"hardware profile {path} lacks {', '.join(sorted(missing))}")
    unknown = set(data) - {"name", "backend", "parallelism_factor", "description", "settings"}
    if unknown:
        raise ValueError(f"hardware profile {path} has unknown keys {', '.join(sorted(unknown))}")
    return HardwareProfile(
        name=data["name"],
        backend=data["backend"],
        parallelism_factor=data["parallelism_factor"],
        description=data.get("description", ""),
        settings=data.get("settings") or {},
        path=path.resolve(),
    )
