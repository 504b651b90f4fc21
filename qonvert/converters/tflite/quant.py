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

from ...errors import QonvertError
from ...opsets.qparams import QuantParams

_QDTYPES = {"INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32", "INT64": "int64"}


def tensor_qparams(
    quant: Any, name: str, shape: tuple[int, ...], type_name: str, data: np.ndarray | None = None
) -> tuple[QuantParams | None, np.ndarray | None, str | None]:
    """The tensor's QuantParams, validated (None for a float tensor or one with min/max only), its
    constant data (dead channels of scale 0 revived, contract item 9) and a remark if they were."""
    if quant is None or not quant.ScaleLength() or type_name not in _QDTYPES:
        return None, data, None
    scale = quant.ScaleAsNumpy().astype(np.float32)
    zp = quant.ZeroPointAsNumpy() if quant.ZeroPointLength() else np.zeros(scale.shape, np.int64)
    if zp.size != scale.size:
        raise QonvertError(f"tensor {name!r}: {scale.size} scales but {zp.size} zero points")
    dtype = _QDTYPES[type_name]
    if dtype == "int64":  # 16x8 biases: checked here, made int32 by `bias`
        dtype = "int32"
    if dtype == "int32" and np.any(zp != 0):  # biases: TFLite's kernels take zero point 0 only
        raise QonvertError(f"tensor {name!r}: an int32 (bias) quantization with zero point {int(np.ravel(zp)[np.ravel(zp) != 0][0])}, not 0")
    if scale.size == 1:
        return QuantParams(scale.reshape(()), zp.reshape(()), dtype).validate(name), data, None
    axis = int(quant.QuantizedDimension())
    if not 0 <= axis < len(shape):
        raise QonvertError(f"tensor {name!r}: quantized_dimension {axis} out of range for shape {list(shape)}")
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
