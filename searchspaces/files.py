"""Atomic file writes, as Ray's ``Searcher.save_to_dir`` does them: write beside the target
under a temporary name, then ``os.replace`` it into place, so a crash or a kill never leaves a
half-written file (a checkpoint, an estimator, a rules file, an exported model) behind. The
lowest layer that writes files holds the one copy."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    """This process's umask: read from ``/proc/self/status`` on Linux, without changing it;
    elsewhere set and put back at once (``os.umask`` has no read-only form)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for the block to write; renamed onto ``path`` when
    the block ends normally, removed when it raises. The file gets the permissions of the one
    it replaces, or of a file made with ``open`` (0666 less the umask), not the owner-only
    0600 of :func:`tempfile.mkstemp`: an estimator or a rules file is shared."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
