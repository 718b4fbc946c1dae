from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision

from conftest import run_cli
from estimators.memory import count_macs
from searchspaces.baselines import BASELINES
from searchspaces.export import EXPORT_FORMATS, export_model
from searchspaces.genome import Architecture
from searchspaces.model import build_model
from searchspaces.spaces import get_space

BAD_ARCH = "r224_w1.0_d8:stem_c32_s2-ibn_k3_e6_c24_r2_s9-head_c1280"


def as_json(*args: str) -> object:
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_help_explains_every_command() -> None:
    for args in ([], ["space"], ["arch"], ["space", "show"], ["space", "sample"],
                 ["arch", "info"], ["arch", "export"], ["space", "list"]):
        proc = run_cli(*args, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage" in proc.stdout


@pytest.mark.slow
def test_arch_info_mobilenetv2_json() -> None:
    info = as_json("arch", "info", "mobilenetv2")
    assert info["params"] == 3_504_872
    assert info["macs"] == count_macs(torchvision.models.mobilenet_v2(), (3, 224, 224))
    assert info["resolution"] == 224
    assert info["param_bytes"] == 4 * 3_504_872
    assert info["peak_activation_bytes"] == (96 * 112 * 112 + 96 * 56 * 56) * 4
    ops = [row["op"] for row in info["layers"]]
    assert (ops.count("conv") + ops.count("dwconv"), ops.count("add"), len(ops)) == (52, 10, 64)
    assert info["layers"][-1]["name"] == "classifier"
    small = as_json("arch", "info", "mobilenetv2-cifar", "--num-classes", "10")
    assert small["layers"][-1]["output_shape"] == [10, 1, 1]
    # a dense head's default is its task's usual classes (VOC's 21), not ImageNet's 1000
    seg = as_json("arch", "info", "r32_w1.0_d8:stem_c32_s1-ibn_k3_e6_c32_r2_s2-seg_c64_o2")
    assert seg["num_classes"] == 21 and seg["layers"][-1]["output_shape"] == [21, 32, 32]


@pytest.mark.slow
def test_space_commands_json() -> None:
    spaces = as_json("space", "list")
    assert {s["name"] for s in spaces} >= {"mbv2", "mbv2-small"}
    shown = as_json("space", "show", "mbv2", "--parallelism-factor", "32")
    assert shown["size"] == get_space("mbv2", 32).size() and shown["channel_divisor"] == 32
    unc = as_json("space", "show", "mbv2", "-p", "32", "--uncurated")
    assert unc["channel_divisor"] == 1 and unc["size"] > shown["size"]
    archs = as_json("space", "sample", "mbv2", "-n", "4", "--seed", "3", "-p", "16")
    assert archs == as_json("space", "sample", "mbv2", "-n", "4", "--seed", "3", "-p", "16")
    space = get_space("mbv2", 16)
    for text in archs:
        space.validate(Architecture.from_string(text))
    detailed = as_json("space", "sample", "mbv2", "-n", "2", "--seed", "3", "-p", "16",
                       "--details")
    assert [d["arch"] for d in detailed] == archs[:2]
    assert all(d["params"] > 0 and d["peak_activation_bytes"] > 0 for d in detailed)


@pytest.mark.slow
def test_human_output_is_readable() -> None:
    proc = run_cli("arch", "info", "mobilenetv2", "--summary")
    assert proc.returncode == 0 and "3,504,872" in proc.stdout
    proc = run_cli("space", "show", "mbv2-small", "--uncurated")
    assert proc.returncode == 0 and "s6_channels" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["space", "show", "nope"], "unknown space 'nope'"),
        (["space", "sample", "nope", "-n", "2"], "unknown space 'nope'"),
        (["arch", "info", BAD_ARCH], "stride"),
        (["arch", "info", "mobilenetv3"], "neither a baseline"),
        (["arch", "info", "mobilenetv2", "--space", "mbv2", "-p", "32"], "channel divisor 8"),
        (["arch", "info", "mobilenetv2", "--dtype", "fp7"], "unknown dtype"),
        (["space", "show", "mbv2", "-p", "0"], "parallelism-factor"),
        (["space", "sample", "mbv2", "--bogus"], "--bogus"),
        (["arch", "export", "mobilenetv2", "--format", "tflite", "--out", "x"], "tflite"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    for extra in ([], ["--json"]):
        proc = run_cli(*args, *extra)
        assert proc.returncode == 2
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert message in proc.stderr
        assert len(lines) == 1 and lines[0].startswith("hwnas: error:")


@pytest.mark.slow
def test_export_torchscript_loads_in_plain_torch(tmp_path: Path) -> None:
    out = tmp_path / "mbv2.pt"
    info = as_json("arch", "export", "mobilenetv2", "--format", "torchscript", "--out", str(out))
    assert info["out"] == str(out) and out.stat().st_size == info["bytes"]
    loaded = torch.jit.load(str(out))
    x = torch.randn(2, 3, 224, 224)
    assert Architecture.from_string(info["arch"]) == BASELINES["mobilenetv2"]()
    assert loaded(x).shape == build_model(BASELINES["mobilenetv2"]())(x).shape == (2, 1000)


@pytest.mark.slow
def test_export_onnx_runs_in_onnxruntime(tmp_path: Path) -> None:
    arch = get_space("mbv2-small", 8).sample(np.random.default_rng(5))
    out = tmp_path / "net.onnx"
    proc = run_cli("arch", "export", arch.to_string(), "--format", "onnx", "--out", str(out),
                   "--num-classes", "10", "--in-channels", "1")
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 1, arch.resolution, arch.resolution))
    (y,) = session.run(None, {"input": x.astype(np.float32)})
    assert y.shape == (1, 10)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_exported_model_computes_what_torch_computes(tmp_path: Path, fmt: str) -> None:
    arch = get_space("mbv2-small", 16, False).sample(np.random.default_rng(11))
    model = build_model(arch, num_classes=10).eval()
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    example = torch.zeros(1, 3, arch.resolution, arch.resolution)
    path = export_model(model, example, tmp_path / f"m.{fmt}", fmt)
    with torch.no_grad():
        expected = model(x).numpy()
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run(None, {"input": x[i:i + 1].numpy()})[0]
                              for i in range(2)])
    else:
        got = torch.jit.load(str(path))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_bad_export_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    proc = run_cli("arch", "export", BAD_ARCH, "--format", "onnx", "--out", str(out))
    assert proc.returncode == 2 and not out.exists()
    proc = run_cli("arch", "export", "mobilenetv2", "--format", "tflite", "--out", str(out))
    assert proc.returncode == 2 and not out.exists()
    missing = tmp_path / "no" / "such" / "dir" / "x.pt"
    proc = run_cli("arch", "export", "mobilenetv2", "--format", "torchscript", "--out",
                   str(missing))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _boom(*args: object, **kwargs: object) -> None:
    raise ValueError("boom deep inside")


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_is_a_bug_not_bad_input(
        debug: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A ValueError from deep inside a run (not where the CLI reads the user's input) is a bug:
    exit 1, one line saying so and how to see more; the traceback only with --debug."""
    import estimators.memory
    from nas.cli import main

    monkeypatch.setattr(estimators.memory, "memory_report", _boom)
    argv = ["arch", "info", "mobilenetv2", "--json"]
    assert main(["--debug", *argv] if debug else argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("hwnas: internal error") and "ValueError: boom deep inside" in last
    assert ("Traceback (most recent call last)" in captured.err) is debug
    assert ("--debug" in last) is not debug
    if not debug:
        assert captured.err.count("\n") == 1


def test_user_input_turns_bad_input_into_one_usage_line() -> None:
    from nas.cli._common import UsageError, user_input

    for exc in (ValueError("bad config x.yaml: trials must be >= 1\nmore detail"),
                KeyError("unknown key 'a'"), FileNotFoundError("no file y")):
        with pytest.raises(UsageError) as info, user_input():
            raise exc
        assert "\n" not in str(info.value) and str(info.value)
    assert str(info.value) == "no file y"
    with pytest.raises(RuntimeError), user_input():  # not bad input: passes through
        raise RuntimeError("a bug")


def test_json_output_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli._common import emit_json

    emit_json({"a": float("nan"), "b": [1.5, float("inf")], "c": (2, "x")})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [1.5, None], "c": [2, "x"]}
