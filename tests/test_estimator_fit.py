"""``estimator fit``: an estimator from measurement tables on disk, no back end needed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, strict_loads
from estimators.build import (
    BLOCK_COLUMNS,
    BLOCK_TABLE,
    NETWORK_TABLE,
    build_estimator,
    fit_estimator,
)
from estimators.latency import MANIFEST, LatencyEstimator, file_sha256
from searchspaces.spaces import get_space


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "built"
    build_estimator("roofline-npu32", "mbv2", 150, out, networks=6, seed=0)
    return out


def test_fit_reproduces_a_build_and_carries_its_tables(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "refit"
    est, report = fit_estimator(built, "roofline-npu32", "mbv2", out)
    for name in (BLOCK_TABLE, NETWORK_TABLE):
        assert (out / name).read_bytes() == (built / name).read_bytes()
    manifest = strict_loads((out / MANIFEST).read_text())
    source = manifest["fit_from_tables"]
    assert source["tables"] == str(built)
    assert source[BLOCK_TABLE] == file_sha256(built / BLOCK_TABLE)
    assert manifest["environment"]["profile"] == "roofline-npu32"
    assert (manifest["samples"], manifest["seed"]) == (150, 0)  # from the build's manifest
    assert report["block_rows"] == manifest["build"]["block_rows"]
    space = get_space("mbv2", 32, curated=False)
    archs = [space.sample(np.random.default_rng(s)) for s in range(40)]
    np.testing.assert_allclose(LatencyEstimator.load(out).predict_many(archs),
                               LatencyEstimator.load(built).predict_many(archs), rtol=1e-12)


def _rewrite(path: Path, edit: dict[str, str]) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{**r, **edit} for r in rows])


def test_fit_refuses_tables_it_cannot_trust(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no tables folder"):
        fit_estimator(tmp_path / "nope", "roofline-npu32", "mbv2", out)
    with pytest.raises(ValueError, match=f"has no {BLOCK_TABLE}"):
        fit_estimator(tmp_path, "roofline-npu32", "mbv2", out)
    with pytest.raises(ValueError, match="measured with profile 'roofline-npu32'"):
        fit_estimator(built, "npu32", "mbv2", out)
    with pytest.raises(ValueError, match="outside space 'mbv2-small'"):
        fit_estimator(built, "roofline-npu32", "mbv2-small", out)
    other = tmp_path / "other"
    shutil.copytree(built, other)
    _rewrite(other / NETWORK_TABLE, {"profile": "h200-fp16", "backend": "torch-cuda"})
    with pytest.raises(ValueError, match=f"{NETWORK_TABLE} was measured with profile 'h200"):
        fit_estimator(other, "roofline-npu32", "mbv2", out)
    bare = tmp_path / "bare"
    bare.mkdir()
    lines = (built / BLOCK_TABLE).read_text().splitlines()
    cut = len(BLOCK_COLUMNS)
    (bare / BLOCK_TABLE).write_text("\n".join(",".join(x.split(",")[:cut]) for x in lines))
    with pytest.raises(ValueError, match="lacks the columns backend"):
        fit_estimator(bare, "roofline-npu32", "mbv2", out)
    assert not out.exists()


@pytest.mark.slow
def test_fit_cli_prints_strict_json_and_one_line_errors(built: Path, tmp_path: Path) -> None:
    proc = run_cli("estimator", "fit", "--tables", str(built), "--profile", "roofline-npu32",
                   "--space", "mbv2", "--out", str(tmp_path / "cli"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = strict_loads(proc.stdout)
    assert summary["profile"] == "roofline-npu32" and summary["cv_error"]["pool"]["mape"] is None
    proc = run_cli("estimator", "fit", "--tables", str(built), "--profile", "npu32",
                   "--space", "mbv2", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "measured with profile" in proc.stderr and not (tmp_path / "x").exists()


def test_fits_in_several_processes_are_the_fits_in_one(built: Path) -> None:
    """``jobs`` changes only how long a fit takes: the models, their ensembles and the
    cross-validated report are the same as fitted one after another in this process."""
    from estimators.build import fit_from_tables
    from estimators.fitpool import fit_jobs
    from estimators.profiles import load_profile

    profile = load_profile("roofline-npu32")
    one, report_one = fit_from_tables(built, "mbv2", profile, members=2, jobs=1)
    seen: list[tuple[int, int]] = []
    two, report_two = fit_from_tables(built, "mbv2", profile, members=2, jobs=2,
                                      progress=lambda _s, done, total: seen.append((done, total)))
    assert report_two == report_one
    kinds = len(report_one["rows_per_kind"])
    assert seen[-1] == (kinds * (2 + 1 + 2),) * 2 and len(seen) == kinds * 5 + 1
    space = get_space("mbv2", 32, curated=False)
    archs = [space.sample(np.random.default_rng(s)) for s in range(40)]
    np.testing.assert_array_equal(two.predict_many(archs), one.predict_many(archs))
    np.testing.assert_array_equal(two.predict_interval(archs), one.predict_interval(archs))
    assert fit_jobs(None, 10) == 1 and fit_jobs(3, 10) == 3
    with pytest.raises(ValueError, match="must be >= 1"):
        fit_jobs(0, 10)
