"""A complete copy of Tune's last saved experiment state, for ``hwnas search --resume``.

Tune saves its experiment state (``experiment_state-*.json``: the trials;
``search_gen_state-*.json`` and ``searcher-state-*.pkl``: the searcher) in a staging folder,
then copies the files into the experiment folder from a background thread, one by one and
without a rename. A driver killed during that copy leaves a truncated file in the experiment
folder, which ``Tuner.restore`` cannot read: the resumed search then failed with Tune's "Can't
return results as experiment has not been run, yet" (found by ``tests/test_quota.py``, once
in some thirty clean-clone runs; a truncated state file reproduces it every time).

:class:`SnapshotSearchGenerator` is the search algorithm Tune drives: it saves as Tune's
``SearchGenerator`` does and then copies the staging folder's state files of this save into
``<experiment>/.hwnas-tune-state/``, a new folder per save made current by one atomic write.
:func:`restore_snapshot` puts the current copy back before a resume. The copy is never older
than the experiment folder's files: it is taken at the save, before Tune starts copying.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher, SearchGenerator

from searchspaces.files import atomic_write

SNAPSHOT_DIR = ".hwnas-tune-state"
CURRENT = "current"
# the files Tune's save writes for one session (TuneController and SearchGenerator templates)
STATE_PATTERNS = ("experiment_state-{}.json", "search_gen_state-{}.json", "searcher-state-{}.pkl")

_FOLDERS: dict[str, Path] = {}


def register_snapshot_folder(run_name: str, folder: str | Path) -> None:
    """Where the generators of search ``run_name`` in this process keep their snapshot (the
    experiment folder: set again on a resume, so a moved folder is followed)."""
    _FOLDERS[run_name] = Path(folder)


class SnapshotSearchGenerator(SearchGenerator):
    """Tune's ``SearchGenerator`` that also keeps a complete copy of every save it is part of
    (see the module's docstring). ``run_name`` keys :func:`register_snapshot_folder`."""

    def __init__(self, searcher: Searcher, run_name: str) -> None:
        super().__init__(searcher)
        self.run_name = run_name

    def save_to_dir(self, dirpath: str, session_str: str) -> None:
        super().save_to_dir(dirpath, session_str)
        folder = _FOLDERS.get(self.run_name)
        if folder is not None:
            write_snapshot(Path(dirpath), session_str, folder)


def write_snapshot(staging: Path, session_str: str, folder: Path) -> Path | None:
    """Copy ``staging``'s state files of session ``session_str`` into a new folder under
    ``folder/.hwnas-tune-state`` and make it the current one (older ones are removed).
    Returns the new folder, or ``None`` when staging holds no experiment state yet."""
    files = [staging / p.format(session_str) for p in STATE_PATTERNS]
    files = [f for f in files if f.is_file()]
    if not files or not files[0].name.startswith("experiment_state-"):
        return None
    root = folder / SNAPSHOT_DIR
    root.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix="save-", dir=root))
    for f in files:
        shutil.copyfile(f, new / f.name)
    atomic_write(root / CURRENT, new.name)
    for old in root.iterdir():
        if old.is_dir() and old != new:
            shutil.rmtree(old, ignore_errors=True)
    return new


def restore_snapshot(folder: Path) -> list[str]:
    """Put the current snapshot's files back into experiment folder ``folder`` (each replaced
    atomically) and return their names; none when there is no snapshot (a search saved by an
    hwnas without one, or killed before Tune's first save)."""
    root = folder / SNAPSHOT_DIR
    try:
        current = root / (root / CURRENT).read_text().strip()
    except OSError:
        return []
    if not current.name or not current.is_dir():
        return []
    restored = []
    for f in sorted(current.iterdir()):
        atomic_write(folder / f.name, f.read_bytes())
        restored.append(f.name)
    return restored


def saved_trial_ids(tuner: Any, folder: Path) -> set[str]:
    """The ids of the trials with a result in the restored ``tuner``'s saved state; a
    ``ValueError`` naming the folder when Tune cannot read that state."""
    try:
        results = tuner.get_results()
    except RuntimeError:  # Tune swallowed why; ask its reader again for the reason
        from ray.tune import ExperimentAnalysis

        try:
            ExperimentAnalysis(str(folder))
            reason = "Tune could not load it"
        except Exception as err:  # noqa: BLE001 - whatever Tune's reader raised is the reason
            first = (str(err).splitlines() or [""])[0][:300]
            reason = f"{type(err).__name__}: {first}"
        raise ValueError(f"cannot resume from {folder}: Tune's experiment state there is "
                         f"unreadable ({reason})") from None
    return {r.metrics["trial_id"] for r in results if r.metrics and "trial_id" in r.metrics}
