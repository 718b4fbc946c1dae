"""Tune's state files saved whole beside the experiment folder, and put back for --resume
(``nas/tune_state.py``); the kill during Tune's copy is exercised end to end by
``tests/test_quota.py::test_killed_and_resumed_search_still_trains_its_quota``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.tune_state import CURRENT, SNAPSHOT_DIR, restore_snapshot, saved_trial_ids, write_snapshot


def staging_save(staging: Path, session: str, tag: str) -> None:
    staging.mkdir(exist_ok=True)
    (staging / f"experiment_state-{session}.json").write_text(f'{{"trials": "{tag}"}}')
    (staging / f"search_gen_state-{session}.json").write_text(f"gen {tag}")
    (staging / f"searcher-state-{session}.pkl").write_bytes(f"searcher {tag}".encode())
    (staging / "callback-states-other.pkl").write_text("not ours")


def test_the_last_save_is_put_back_over_truncated_files(tmp_path: Path) -> None:
    staging, folder = tmp_path / "staging", tmp_path / "exp"
    folder.mkdir()
    staging_save(staging, "s1", "first")
    first = write_snapshot(staging, "s1", folder)
    staging_save(staging, "s1", "second")
    second = write_snapshot(staging, "s1", folder)
    assert first is not None and second is not None and not first.exists()  # one kept
    assert (folder / SNAPSHOT_DIR / CURRENT).read_text() == second.name
    assert sorted(p.name for p in second.iterdir()) == [
        "experiment_state-s1.json", "search_gen_state-s1.json", "searcher-state-s1.pkl"]
    (folder / "experiment_state-s1.json").write_text('{"tri')  # Tune's copy, cut short
    (folder / "experiment_state-s0.json").write_text("an earlier session's")
    assert restore_snapshot(folder) == sorted(p.name for p in second.iterdir())
    assert (folder / "experiment_state-s1.json").read_text() == '{"trials": "second"}'
    assert (folder / "searcher-state-s1.pkl").read_bytes() == b"searcher second"
    assert (folder / "experiment_state-s0.json").read_text() == "an earlier session's"


def test_nothing_to_snapshot_or_restore(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "search_gen_state-s1.json").write_text("gen")  # no experiment state yet
    assert write_snapshot(staging, "s1", tmp_path) is None
    assert not (tmp_path / SNAPSHOT_DIR).exists()
    assert restore_snapshot(tmp_path) == []  # a search saved by an hwnas without snapshots
    (tmp_path / SNAPSHOT_DIR).mkdir()
    (tmp_path / SNAPSHOT_DIR / CURRENT).write_text("save-gone")  # pointer to nothing
    assert restore_snapshot(tmp_path) == []


class _NeverRan:
    def get_results(self) -> None:
        raise RuntimeError("Can't return results as experiment has not been run, yet.")


def test_an_unreadable_state_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "experiment_state-s1.json").write_text('{"trial_data": [[')
    with pytest.raises(ValueError, match=rf"cannot resume from {tmp_path}: Tune's experiment "
                                         r"state there is unreadable \(\w+Error") as err:
        saved_trial_ids(_NeverRan(), tmp_path)
    assert "\n" not in str(err.value)
