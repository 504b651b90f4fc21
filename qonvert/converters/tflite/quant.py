"""Every TFLite quantization convention, in one place.

- Quantization lives on tensors: scale[], zero_point[], quantized_dimension. One scale is
  per-tensor whatever quantized_dimension says; more are per-axis along it.
- The tensor's type is the quantized dtype: int8 (activations asymmetric, weights symmetric
  in [-127, 127]), uint8 (legacy asymmetric), int16 (16x8 mode, symmetric activations).
- Int32 biases are at s_in * s_w, zero point 0; 16x8 mode stores int64 biases.
- Weight layouts and their per-channel dimension: CONV_2D OHWI (0), DEPTHWISE_CONV_2D 1HWC (3),
  TRANSPOSE_CONV OHWI (0), FULLY_CONNECTED [O, I] (0). `weight` transposes the integer data to
  the ONNX layout and follows the axis through the permutation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ...opsets.qparams import QuantParams

_QDTYPES = {"INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32", "INT64": "int64"}


def tensor_qparams(
    quant: Any, name: str, shape: tuple[int, ...], type_name: str, data: np.ndarray | None = None
) -> tuple[QuantParams | None, np.ndarray | None, str | None]:
    """The tensor's QuantParams, validated (None for a float tensor or one with min/max only), its
    constant data (dead channels of scale 0 revived: docs/design.md, "Dead channels") and a remark if they were."""
    if quant is None or not quant.ScaleLength() or type_name not in _QDTYPES:
        return None, data, None
    scale = quant.ScaleAsNumpy().astype(np.float32)
    zp = quant.ZeroPointAsNumpy() if quant.ZeroPointLength() else np.zeros(scale.shape, np.int64)
    if zp.size != scale.size:
        raise InputError(f"tensor {name!r}: {scale.size} scales but {zp.size} zero points")
    dtype = _QDTYPES[type_name]
    if dtype in ("int32", "int64") and data is None:
        return None, data, None  # a run-time integer tensor: LiteRT's kernels read it as integers (only biases use it)
    if dtype == "int64":  # 16x8 biases: checked here, made int32 by `bias`
        dtype = "int32"
    if dtype == "int32" and np.any(zp != 0):  # biases: TFLite's kernels take zero point 0 only
        raise InputError(f"tensor {name!r}: an int32 (bias) quantization with zero point {int(np.ravel(zp)[np.ravel(zp) != 0][0])}, not 0")
    if scale.size == 1:
        return QuantParams(scale.reshape(()), zp.reshape(()), dtype).validate(name), data, None
    axis = int(quant.QuantizedDimension())
    if not 0 <= axis < len(shape):
        raise InputError(f"tensor {name!r}: quantized_dimension {axis} out of range for shape {list(shape)}")
    qp, remark = QuantParams(scale, zp, dtype, axis), None
    if data is not None:
        qp, data, remark = qp.revive_dead_channels(data, name)
    return qp.validate(name, shape), data, remark


def weight(data: np.ndarray, qp: QuantParams | None, perm: Sequence[int]) -> tuple[np.ndarray, QuantParams | None]:
    """Integer (or float) weight data transposed by `perm`, its per-channel axis following."""
    moved = np.ascontiguousarray(np.transpose(data, perm))
    if qp is None or not qp.per_axis:
        return moved, qp
    return moved, qp.with_axis(list(perm).index(qp.axis or 0))


def bias(data: np.ndarray, qp: QuantParams | None) -> tuple[np.ndarray, QuantParams | None]:
    """A bias as int32 data (16x8 int64 biases when they fit) or, failing that, dequantized float."""
    if qp is None:
        return data, None
    if data.dtype == np.int64 and np.abs(data).max(initial=0) >= 2**31:
        return qp.dequantize(data), None
    return data.astype(np.int32), qp


# LiteRT's fixed-point arithmetic (tflite/kernels/internal/common.h, quantization_util.cc), for the
# kernels whose results depend on it: a quantized comparison rescales both sides to a common
# fixed-point value before comparing (comparisons.cc), so two reals within its rounding compare equal.
def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = np.frexp(real)
    multiplier = int(np.floor(abs(float(fraction)) * (1 << 31) + 0.5)) * (1 if fraction >= 0 else -1)
    if multiplier == 1 << 31:
        multiplier, shift = multiplier // 2, shift + 1
    if shift < -31:  # every bit shifted out: LiteRT flushes the multiplier to 0
        return 0, 0
    return multiplier, int(shift)


def doubling_high_mul(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul (a, b int32; C++ division truncating toward zero)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudged = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return abs(nudged) // (1 << 31) * (1 if nudged >= 0 else -1)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent, halves away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier: how an integer kernel (FULLY_CONNECTED, BATCH_MATMUL, CONV)
    rescales its int32 accumulator to the output's steps."""
    return rounding_divide_by_pot(doubling_high_mul(x * (1 << max(shift, 0)), multiplier), max(-shift, 0))


COMPARISON_LEFT_SHIFT = 8


def comparison_values(qp: QuantParams) -> np.ndarray | None:
    """What LiteRT's quantized comparison compares, for each code of a per-tensor 8-bit tensor
    (lowest code first): (code - zero point) << 8, times the scale in fixed point. None where
    LiteRT compares otherwise (16 bits, per-axis) or not at all (a scale of 1 or more)."""
    if qp.per_axis or qp.dtype not in ("int8", "uint8") or not 0.0 < float(qp.scale) < 1.0:
        return None
    multiplier, shift = quantize_multiplier(float(qp.scale))
    lo, hi = qp.code_range
    zero_point = int(qp.zero_point)
    shifted = [(code - zero_point) << COMPARISON_LEFT_SHIFT for code in range(lo, hi + 1)]
    return np.asarray([rounding_divide_by_pot(doubling_high_mul(v, multiplier), -shift) for v in shifted], np.int32)
