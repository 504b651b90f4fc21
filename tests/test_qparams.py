"""QuantParams.revive_dead_channels (contract item 9): the rewrites keep every weight's real value."""

from __future__ import annotations

import numpy as np
import pytest

from qonvert.errors import QonvertError
from qonvert.opsets.qparams import QuantParams


def _reals(qp: QuantParams, data: np.ndarray) -> np.ndarray:
    return (data.astype(np.float64) - qp.zero_point.reshape(-1, 1)) * qp.scale.reshape(-1, 1).astype(np.float64)


def test_dead_and_idle_channels_keep_their_values() -> None:
    """A scale-0 channel and an all-zero channel stored at zero point 127 (PyTorch's symmetric
    per-channel fake quantization does that) become valid and symmetric, with the same reals."""
    qp = QuantParams(np.array([0.1, 0.2, 0.0], np.float32), np.array([0, 127, 0]), "int8", 0, -128, 127)
    data = np.array([[1, -2], [127, 127], [5, 6]], np.int8)
    revived, codes, remark = qp.revive_dead_channels(data, "w")
    assert remark is not None and "zero point 0" in remark and "dead" in remark
    assert np.all(revived.scale > 0) and not np.any(revived.zero_point)
    revived.validate("w", codes.shape)
    # channel 2 had scale 0: its reals were 0 whatever its codes said, and are 0 now
    assert np.array_equal(_reals(revived, codes)[:2], _reals(qp, data)[:2]) and not _reals(revived, codes)[2].any()


def test_live_channels_are_left_alone() -> None:
    qp = QuantParams(np.array([0.1, 0.2], np.float32), np.array([0, 3]), "int8", 0, -128, 127)
    data = np.array([[1, -2], [3, 4]], np.int8)  # channel 1: non-zero zero point, but not all zero reals
    revived, codes, remark = qp.revive_dead_channels(data, "w")
    assert remark is None and revived is qp and codes is data


def test_blocked_params_dequantize_per_group_and_transpose() -> None:
    """Block (group-wise) quantization: one scale per `block_size` elements along the axis."""
    scale = np.array([[0.5, 2.0], [1.0, 4.0]], np.float32)  # 2 rows, 2 groups of 3 along axis 1
    qp = QuantParams(scale, np.zeros((2, 2), np.int64), "int4", 1, block_size=3)
    codes = np.array([[1, 1, 1, 1, 1, 1], [-1, 2, -3, 4, -5, 6]], np.int8)
    assert qp.validate("w", codes.shape) is qp and qp.min_opset == 21
    reals = qp.dequantize(codes)
    assert np.array_equal(reals, [[0.5, 0.5, 0.5, 2.0, 2.0, 2.0], [-1, 2, -3, 16, -20, 24]])
    moved = qp.transposed([1, 0])
    assert moved.axis == 0 and moved.scale.shape == (2, 2)
    assert np.array_equal(moved.dequantize(codes.T), reals.T)


def test_blocked_params_that_do_not_fit_are_named() -> None:
    qp = QuantParams(np.ones((2, 3), np.float32), np.zeros((2, 3), np.int64), "int8", 1, block_size=32)
    with pytest.raises(QonvertError, match="block scales of shape \\[2, 3\\] for shape \\[2, 64\\]"):
        qp.validate("w", (2, 64))  # 64 in blocks of 32 is 2 blocks, not 3


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "float64"])
def test_dequantize_is_onnx_dequantize_linear(dtype: str) -> None:
    """(code - zero point) exactly, then float32, times the scale in float32: what ONNX's
    DequantizeLinear computes, for every code width (the narrow ones take a one-buffer path; a
    frontend may hold whole-number codes in a float array: PyTorch's PReLU weight)."""
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype if dtype != "float64" else "int8")
    codes = rng.integers(info.min, info.max, (64, 33), endpoint=True).astype(dtype)
    scale = rng.uniform(1e-4, 1, 64).astype(np.float32)
    zero = rng.integers(info.min, info.max, 64, endpoint=True) // (1 if dtype != "int32" else 2**20)
    qp = QuantParams(scale, zero.astype(np.int64), dtype if dtype != "float64" else "int8", 0)
    want = ((codes.astype(np.int64) - zero[:, None]).astype(np.float32) * scale[:, None]).astype(np.float32)
    np.testing.assert_array_equal(qp.dequantize(codes), want)


def test_a_subnormal_scale_is_the_files_error() -> None:
    """A scale below float32's smallest normal number (a fuzzer's input scale of 1e-41): the int32
    bias scale s_x * s_w underflows to 0 from it, so it is refused where it is read."""
    with pytest.raises(QonvertError, match="below float32's smallest normal number"):
        QuantParams(np.asarray(1e-41, np.float32), np.asarray(0), "int8").validate("x")
    QuantParams(np.asarray(2e-38, np.float32), np.asarray(0), "int8").validate("x")  # the smallest normal ones pass
