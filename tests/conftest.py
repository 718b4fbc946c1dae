from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hwnas`` entry point as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=300,
    )
