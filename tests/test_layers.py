"""The layers point one way: searchspaces -> estimators -> nas (search, analysis, expert) -> cli.

Each check imports every module of a layer in a fresh interpreter and lists the modules of the
layers above it that came along; a lower layer reaching upward (or the library importing the
CLI) fails here, whichever module does it. Loading a config must not start the heavy stacks
(Ray, torch): it is read before anything runs.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # each test imports a layer in a fresh interpreter


def _modules(package: str) -> list[str]:
    """Every module of ``package``, found on disk (``__main__`` modules run, so they are left
    out)."""
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return found


def _loaded_after(modules: list[str]) -> set[str]:
    """The top-level names and first-party modules loaded after importing ``modules``."""
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(("layer", "above"), [
    ("searchspaces", ("estimators", "nas")),
    ("estimators", ("nas",)),
])
def test_a_lower_layer_imports_no_higher_one(layer: str, above: tuple[str, ...]) -> None:
    loaded = _loaded_after(_modules(layer))
    assert sorted(m for m in loaded if m.split(".")[0] in above) == []


def test_the_library_never_imports_the_cli() -> None:
    library = [m for m in _modules("nas") if not m.startswith("nas.cli")]
    assert "nas.search" in library and "nas.analysis.landscape" in library
    loaded = _loaded_after(library)
    assert sorted(m for m in loaded if m == "nas.cli" or m.startswith("nas.cli.")) == []


def test_loading_a_config_starts_neither_ray_nor_torch() -> None:
    loaded = _loaded_after(["nas.config"])
    assert sorted(m for m in loaded if m.split(".")[0] in ("ray", "torch")) == []
    assert "nas.config" in loaded


def test_a_classification_trial_does_not_import_torchvision() -> None:
    """torchvision costs a trial worker ~2 s to import (its ops pull in torch._dynamo); only
    detection (boxes, NMS) and image files use it, so each imports it where it is used."""
    loaded = _loaded_after(["nas.trial", "nas.tasks", "nas.search", "nas.data",
                            "nas.datasets", "nas.detection", "nas.detection_metrics",
                            "nas.surrogate", "nas.proxies.scorer"])
    assert "nas.detection" in loaded and "nas.datasets.detection" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] == "torchvision") == []
