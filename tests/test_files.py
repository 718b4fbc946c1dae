"""Atomic file writes (searchspaces.files): all or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from searchspaces.files import atomic_path, atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_permissions_open_would_give(tmp_path: Path) -> None:
    """Not mkstemp's owner-only 0600: an estimator folder or a rules file is read by others."""
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "manifest.json", "{}\n")
        assert path.read_text() == "{}\n"
        assert _mode(path) == 0o644
        os.umask(0o077)
        assert _mode(atomic_write(tmp_path / "private.json", b"{}")) == 0o600
    finally:
        os.umask(old)


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
