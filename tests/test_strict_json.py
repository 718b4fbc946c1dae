"""Every ``--json`` output is strict JSON (no NaN / Infinity); the shipped manifests are checked
in ``test_shipped_estimators.py``.

The commands run in this process (``nas.cli.main``) on the instant roofline back end with tiny
sizes; the tiny build has too few pool and classifier rows to cross-validate, which is what used
to print ``NaN``. Not run here: ``search``, ``compare``, ``ablation`` and ``expert mine`` (they
run searches); they print through the same ``emit_json``, which writes non-finite numbers as
``null`` and refuses to write ``NaN``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, strict_loads
from nas.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    capsys.readouterr()
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return strict_loads(captured.out)


def test_cheap_json_commands_print_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("space", "list"), ("space", "show", "mbv2"),
                 ("space", "sample", "mbv2", "-n", "3"), ("arch", "info", "mobilenetv2"),
                 ("estimator", "list"), ("latency", "mobilenetv2", "-e", "npu32-mbv2")):
        assert run_json(capsys, *args) is not None, args


@pytest.mark.slow
def test_estimator_json_commands_print_strict_json(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """build, fit and everything that reads the estimator they make (a fit takes seconds)."""
    tiny = tmp_path / "est"
    build = run_json(capsys, "estimator", "build", "--profile", "roofline-npu32", "--space",
                     "mbv2", "--samples", "40", "--networks", "4", "--out", str(tiny))
    assert build["cv_error"]["classifier"]["mape"] is None  # too few rows: null, not NaN
    fit = run_json(capsys, "estimator", "fit", "--tables", str(tiny), "--profile",
                   "roofline-npu32", "--space", "mbv2", "--out", str(tmp_path / "fit"))
    assert fit["block_rows"] == build["block_rows"]
    est = str(tiny)
    commands = [
        ("space", "sample", "mbv2", "-n", "3", "-p", "32", "--details", "-e", est),
        ("space", "landscape", "mbv2", "-e", est, "--stages", "3", "--kinds", "ibn",
         "--starts", "0"),
        ("estimator", "eval", "-e", est, "--archs", "3"),
        ("latency", "mobilenetv2", "-e", est, "--per-layer"),
        ("expert", "explain", "mobilenetv2", "-e", est, "--png", str(tmp_path / "x.png")),
        ("expert", "apply", "mobilenetv2", "--rules",
         str(ROOT / "configs" / "expert_rules_npu32.yaml"), "-e", est),
    ]
    for args in commands:
        assert run_json(capsys, *args) is not None, args


@pytest.mark.slow
def test_arch_export_json_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "arch", "export", "mobilenetv2", "--format", "torchscript", "--out",
                    str(tmp_path / "m.pt"))
    assert info["bytes"] > 0
