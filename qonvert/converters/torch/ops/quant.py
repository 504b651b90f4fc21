"""quantized_decomposed.* (PT2E's Q/DQ ops) -> QuantizeLinear / DequantizeLinear.

PT2E gives each Q/DQ its own (scale, zero point, quant_min, quant_max, dtype); a quant_min/max
narrower than the dtype becomes a float Clip before the Q (the builder). Weights arrive as int8
constants (convert_pt2e folds their quantize) or as float constants with their quantize_per_channel,
which is folded here exactly as PyTorch computes it: clamp(round(w / s) + zp).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import QuantParams
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, tensor_name

_PER_TENSOR = ("scale", "zero_point", "quant_min", "quant_max", "dtype")
_PER_CHANNEL = ("scales", "zero_points", "axis", "quant_min", "quant_max", "dtype")


def _number_or_constant(array: Callable[[str | None], np.ndarray | None], op: SourceOp, index: int, name: str) -> np.ndarray:
    value = literal(op, index, name)
    if value is None:
        value = array(tensor_name(op, index, name))
    if value is None:
        raise InputError(f"op {op.label}: {name} is computed at run time, and not by choose_qparams")
    return np.asarray(value)


def qparams(op: SourceOp, array: Callable[[str | None], np.ndarray | None], shape: tuple[int, ...] | None) -> QuantParams:
    """The op's quantization; `array` gives a constant's value, `shape` is the input's."""
    per_channel = "per_channel" in op.type
    names = _PER_CHANNEL if per_channel else _PER_TENSOR
    scale = _number_or_constant(array, op, 1, names[0]).astype(np.float32)
    zero_point = _number_or_constant(array, op, 2, names[1]).astype(np.int64)
    offset = 1 if per_channel else 0
    axis = int(literal(op, 3, "axis")) if per_channel else None
    qmin, qmax = (int(literal(op, 3 + offset + k, names[2 + offset + k])) for k in range(2))
    dtype = literal(op, 5 + offset, "dtype")
    if dtype not in ("int8", "uint8", "int16", "uint16"):
        raise InputError(f"op {op.label}: quantized dtype {dtype} is not supported")
    if axis is not None and axis < 0 and shape is not None:
        axis += len(shape)
    if zero_point.size != scale.size or (not per_channel and scale.size != 1):  # as PyTorch's kernels require
        raise InputError(f"op {op.label}: {scale.size} scales and {zero_point.size} zero points")
    return QuantParams(
        scale.reshape(-1) if per_channel else scale.reshape(()),
        zero_point.reshape(scale.shape) if per_channel else zero_point.reshape(()),
        dtype,
        axis,
        qmin,
        qmax,
    )


@register("torch", "quantized_decomposed.choose_qparams.tensor")
def choose_qparams(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    """Dynamic quantization: PyTorch's scale (max(x, 0) - min(x, 0)) / 255 and zero point
    qmin - round(min / scale) are DynamicQuantizeLinear's, its uint8 codes PyTorch's int8 ones + 128
    (the same reals). Returns (scale, zero point); the quantize that uses them takes the codes."""
    qmin, qmax, dtype = literal(op, 1, "quant_min"), literal(op, 2, "quant_max"), literal(op, 4, "dtype")
    if (qmin, qmax, dtype) not in ((-128, 127, "int8"), (0, 255, "uint8")):
        raise InputError(f"op {op.label}: dynamic quantization to [{qmin}, {qmax}] {dtype} is not supported (only the full 8-bit range)")
    _, scale, zero_point = ctx.b.op("DynamicQuantizeLinear", [ctx.value(tensor_name(op, 0, "input"))], outputs=3)
    return [scale, zero_point]


def _dynamic(ctx: ConversionContext, op: SourceOp) -> tuple[ir.Value, ir.Value, ir.Value] | None:
    """(codes, scale, zero point) where the op's scale is a choose_qparams result, else None."""
    name = tensor_name(op, 1, "scale")
    producer = ctx.values[name].producer() if name in ctx.values else None
    if producer is None or producer.op_type != "DynamicQuantizeLinear":
        return None
    codes, scale, zero_point = producer.outputs
    return codes, scale, zero_point


@register("torch", *(f"quantized_decomposed.quantize_per_{k}" for k in ("tensor.default", "tensor.tensor", "tensor.tensor2", "channel.default")))
def quantize(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    dynamic = _dynamic(ctx, op)
    if dynamic is not None:
        return dynamic[0]
    x = tensor_name(op, 0, "input")
    qp = qparams(op, ctx.array, ctx.shape(x))
    data = ctx.array(x)
    if data is not None:  # a float weight: PyTorch's own rounding, kept as integer data
        shape = [-1 if i == qp.axis else 1 for i in range(data.ndim)] if qp.per_axis else []
        scale = qp.scale.reshape(shape) if shape else qp.scale
        zp = qp.zero_point.reshape(shape) if shape else qp.zero_point
        codes = np.clip(np.rint(data / scale) + zp, qp.qmin, qp.qmax)
        return ctx.b.const(codes.astype(qp.dtype), f"{op.output('out')}_codes")
    qp.validate(x or "?", ctx.shape(x))
    return ctx.b.quantize(ctx.value(x), qp)


@register("torch", *(f"quantized_decomposed.dequantize_per_{k}" for k in ("tensor.default", "tensor.tensor", "tensor.tensor2", "channel.default")))
def dequantize(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    dynamic = _dynamic(ctx, op)
    if dynamic is not None:
        return ctx.b.op("DequantizeLinear", list(dynamic))
    x = tensor_name(op, 0, "input")
    qp = qparams(op, ctx.array, ctx.shape(x))
    data = ctx.array(x)
    name = op.output("out") or "dq"
    if data is not None:  # an integer weight
        return ctx.int_weight(data.astype(np.int64), qp, x or "?", name)
    qp.validate(x or "?", ctx.shape(x))
    return ctx.b.dequantize(ctx.value(x), qp)
