"""The analytical roofline back end: the shared contract, and its cycle counts by hand."""

from __future__ import annotations

import pytest

from backend_contract import BackendContract
from estimators.backends import create_backend
from estimators.backends.roofline import RooflineBackend
from estimators.profiles import HardwareProfile
from searchspaces.layers import LayerSpec


@pytest.fixture(scope="module")
def npu32() -> RooflineBackend:
    backend = create_backend("roofline-npu32")
    assert isinstance(backend, RooflineBackend)
    return backend


class TestRooflineContract(BackendContract):
    deterministic = True

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, npu32: RooflineBackend) -> RooflineBackend:
        return npu32


def test_conv_cycles_by_hand(npu32: RooflineBackend) -> None:
    """28x28 3x3 conv from 32 channels on the 32x32 array: compute-bound, 784 * 9 cycles a
    pass; one output channel past a multiple of 32 costs a whole extra pass."""
    c32, c33 = (npu32.layer_cycles(LayerSpec("x", "conv", 32, c, 3, 1, 1, 28, 28))
                for c in (32, 33))
    assert c32 == 784 * 9 + 200 and c33 == 2 * 784 * 9 + 200
    assert npu32.layer_cycles(LayerSpec("x", "conv", 32, 16, 3, 1, 1, 28, 28)) == c32


def test_depthwise_uses_one_row(npu32: RooflineBackend) -> None:
    dw = npu32.layer_cycles(LayerSpec("d", "dwconv", 64, 64, 3, 1, 64, 28, 28))
    assert dw == 784 * 2 * 9 + 200  # 64 channels across, no reduction down the array


@pytest.mark.parametrize(("settings", "match"), [({"clock": 800}, "unknown setting.*clock"),
                                                 ({"clock_mhz": 0}, "clock_mhz"),
                                                 ({"bytes_per_element": "1"}, "bytes_per_element")])
def test_bad_settings_raise(settings: dict, match: str) -> None:
    profile = HardwareProfile(name="bad", backend="roofline", parallelism_factor=32,
                              settings=settings)
    with pytest.raises(ValueError, match=match) as err:
        RooflineBackend(profile)
    assert "\n" not in str(err.value)
