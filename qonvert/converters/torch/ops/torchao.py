"""torchao's quantize_ (torch.export of a quantize_'d module): torchao.choose_qparams_affine /
quantize_affine / dequantize_affine, and the integer matmul its int8 kernels decompose to.

torchao quantizes in blocks (`block_size`, one entry per dim): a dim whose block is 1 keeps one
scale per element, a dim whose block is the whole dim shares one. Weights arrive as the inner
tensors of a tensor subclass (qdata int8 codes, scale, zero_point; int4 held in int8), and
become integer initializers (INT4 for [-8, 7]) behind a DequantizeLinear: per-tensor, per-axis,
or blocked (ONNX 21's block_size, torchao's PerGroup). Dynamic activations get torchao's own
per-token parameters computed in the graph (not ORT's per-tensor DynamicQuantizeLinear, which
is another quantization).

torchao's int8 kernels keep the scales out of the integer product (`_int_mm` of the codes, then
the float result times the activation's and the weight's scales; weight-only int8 casts the codes
to float, multiplies, then scales). So integer codes read as floats are DequantizeLinear with
scale 1 and zero point 0 (exact: DQ(q, 1, 0) == float(q)), the products run as MatMul of those
DQs (exact below 2^24, ORT fuses them to an integer kernel), and the scales follow as torchao
applies them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.builder import ONNX_QDTYPES
from ....opsets.graph_edit import LAYOUT_OPS
from ....opsets.qparams import QDTYPES, QuantParams
from ....opsets.versions import blocked_qdq_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, tensor, tensor_name


def code_dtype(op: SourceOp, qmin: int, qmax: int, container: str) -> str:
    """The ONNX dtype of torchao's codes: the narrowest that holds [qmin, qmax] (int4 in an int8
    container is INT4), else the container's."""
    for name in ("int4", "uint4", "int8", "uint8", "int16"):
        lo, hi = QDTYPES[name]
        if lo <= qmin and qmax <= hi and (name in ("int4", "uint4") or name == container):
            return name
    raise InputError(f"op {op.label}: codes in [{qmin}, {qmax}] as {container} are not supported")


def _range(op: SourceOp, first: int) -> tuple[int, int]:
    qmin, qmax = literal(op, first, "quant_min"), literal(op, first + 1, "quant_max")
    if not isinstance(qmin, int) or not isinstance(qmax, int):
        raise InputError(f"op {op.label}: quant_min / quant_max must be given as integers, got {qmin!r}, {qmax!r}")
    return qmin, qmax


def _blocks(op: SourceOp, shape: tuple[int, ...] | None, index: int = 1) -> tuple[int | None, int | None]:
    """(axis, block size) of a block_size over `shape`: (None, None) for one block over the whole
    tensor (per-tensor); else the one axis whose block spans more than one element, every other
    dim in blocks of 1 (per-token rows, per-channel weights, PerGroup groups)."""
    block = literal(op, index, "block_size")
    if shape is None or not isinstance(block, list) or len(block) != len(shape) or any(not isinstance(b, int) or b < 1 for b in block):
        raise InputError(f"op {op.label}: block_size {block!r} does not fit a tensor of shape {list(shape or [])}")
    wide = [i for i, b in enumerate(block) if b > 1]
    if all(b == d for b, d in zip(block, shape, strict=True)):
        return None, None
    if len(wide) > 1:
        raise InputError(f"op {op.label}: block_size {block} spans more than one axis of {list(shape)}; not supported")
    return (wide[0], block[wide[0]]) if wide else (len(shape) - 1, 1)


def _weight_params(ctx: ConversionContext, op: SourceOp, codes: np.ndarray) -> QuantParams:
    scale = ctx.array(tensor_name(op, 2, "scale"))
    zero_point = ctx.array(tensor_name(op, 3, "zero_point")) if tensor_name(op, 3, "zero_point") else None
    if scale is None:
        raise InputError(f"op {op.label}: the weight's scale is computed at run time; not supported")
    qmin, qmax = _range(op, 5)
    dtype = code_dtype(op, qmin, qmax, str(codes.dtype))
    zero_point = np.zeros(scale.shape, np.int64) if zero_point is None else zero_point
    axis, block = _blocks(op, codes.shape)
    if axis is None:
        return QuantParams(scale.reshape(()), zero_point.reshape(()), dtype, None, qmin, qmax)
    if block == codes.shape[axis] or block == 1:  # one scale per row (or per element of one axis)
        other = [i for i in range(codes.ndim) if i != axis and codes.shape[i] > 1]
        if len(other) == 1:
            return QuantParams(scale.reshape(-1), zero_point.reshape(-1), dtype, other[0], qmin, qmax)
    shape = tuple(-(-d // block) if i == axis else d for i, d in enumerate(codes.shape))  # type: ignore[operator]
    return QuantParams(scale.reshape(shape), zero_point.reshape(shape), dtype, axis, qmin, qmax, block)


def _unit_dq(ctx: ConversionContext, codes: ir.Value, dtype: str) -> ir.Value:
    """Integer codes read as floats: DQ(q, 1, 0) == float(q), exactly."""
    return ctx.b.dequantize(codes, QuantParams.unit(dtype))


@register("torch", "torchao.dequantize_affine.default", opset=blocked_qdq_opset())
def dequantize_affine(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """(input - zero_point) * scale per block: a weight's codes as an integer initializer behind
    a DQ; at run time (the codes of quantize_affine) the same Q's codes through a DQ."""
    name = tensor_name(op, 0, "input")
    codes = ctx.array(name)
    if codes is not None:
        return ctx.int_weight(codes.astype(np.int64), _weight_params(ctx, op, codes), name or "?", op.output("out") or "weight")
    unit = ctx.value(name).producer()
    q = unit.inputs[0] if unit is not None and unit.op_type == "DequantizeLinear" else None
    if q is None or q.producer() is None or q.producer().op_type != "QuantizeLinear":  # type: ignore[union-attr]
        raise InputError(f"op {op.label}: dequantizes codes that no quantize_affine made; not supported")
    scale, zero_point, attrs = _run_time_params(ctx, op, name)
    return ctx.b.op("DequantizeLinear", [q, scale, zero_point], attrs)


def _run_time_params(ctx: ConversionContext, op: SourceOp, x: str | None) -> tuple[ir.Value, ir.Value, dict[str, Any]]:
    """A run-time Q/DQ's scale, zero point and attributes: scalars for one block over the whole
    tensor, else blocked along the one axis (the scale keeps the tensor's rank)."""
    axis, block = _blocks(op, ctx.shape(x))
    scale, zero_point = tensor(ctx, op, 2, "scale"), tensor(ctx, op, 3, "zero_point")
    if axis is None:
        scalar = ctx.b.ints([], "scalar")
        return ctx.b.op("Reshape", [scale, scalar]), ctx.b.op("Reshape", [zero_point, scalar]), {}
    return scale, zero_point, {"axis": axis, "block_size": block}


@register("torch", "torchao.quantize_affine.default", opset=blocked_qdq_opset())
def quantize_affine(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """clamp(round(x * (1 / scale)) + zero_point) per block, exactly as torchao rounds it: x times
    the scale's reciprocal (not x / scale, which differs at a row's extreme, where x / scale is
    -127.5 exactly) into a QuantizeLinear of unit scale with the chosen zero point. Its output is
    named as the source tensor (per-layer cuts there); the codes go on as floats (a unit DQ)."""
    x = tensor_name(op, 0, "input")
    if ctx.array(x) is not None:
        raise InputError(f"op {op.label}: quantizes a constant at run time; not supported")
    qmin, qmax = _range(op, 5)
    dtype = code_dtype(op, qmin, qmax, str(literal(op, 4, "output_dtype")))
    if (qmin, qmax) != QDTYPES[dtype]:
        raise InputError(f"op {op.label}: run-time codes in [{qmin}, {qmax}], narrower than {dtype}; not supported")
    scale, zero_point, attrs = _run_time_params(ctx, op, x)
    scaled = ctx.b.op("Mul", [ctx.value(x), ctx.b.op("Reciprocal", [scale])])
    unit = ctx.b.op("Expand", [ctx.b.const(np.float32(1.0)), ctx.b.op("Shape", [zero_point])])  # ONNX: scale shaped as the zero point
    q = ctx.b.op("QuantizeLinear", [scaled, unit, zero_point], attrs, name=op.output("out"))
    return _unit_dq(ctx, q, dtype)


@register("torch", "torchao.choose_qparams_affine.default", opset=blocked_qdq_opset())
def choose_qparams_affine(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    """torchao's own per-block parameters, in the graph: min/max over each block (kept dims, the
    blocks shape), then SYMMETRIC max(|min|, max) / ((qmax - qmin) / 2) with zero point
    (qmax + qmin + 1) // 2, or ASYMMETRIC (max - min) / (qmax - qmin) with zero point
    qmin - round(min / scale); the scale clamped at eps below."""
    x = tensor_name(op, 0, "input")
    shape = ctx.shape(x)
    mapping = literal(op, 1, "mapping_type")
    qmin, qmax = _range(op, 4)
    dtype = code_dtype(op, qmin, qmax, str(literal(op, 3, "target_dtype")))
    if shape is None:
        raise InputError(f"op {op.label}: the shape of {x!r} is unknown")
    axis, block = _blocks(op, shape, 2)
    if axis is not None and block != shape[axis]:
        raise InputError(f"op {op.label}: run-time blocks of {block} along axis {axis} (only whole rows); not supported")
    axes = list(range(len(shape))) if axis is None else [axis]
    value = ctx.value(x)
    zero = ctx.b.const(np.float32(0.0))
    low = ctx.b.op("Min", [ctx.b.reduce("ReduceMin", value, axes, keepdims=True), zero])
    high = ctx.b.op("Max", [ctx.b.reduce("ReduceMax", value, axes, keepdims=True), zero])
    eps = literal(op, 6, "eps")
    eps = np.float32(np.finfo(np.float32).smallest_normal if eps is None else eps)
    if mapping == "SYMMETRIC":
        scale = ctx.b.op("Div", [ctx.b.op("Max", [ctx.b.op("Neg", [low]), high]), ctx.b.const(np.float32((qmax - qmin) / 2))])
        scale = ctx.b.op("Max", [scale, ctx.b.const(eps)])
        middle = ctx.b.const(np.float32(int((qmax + qmin + 1) / 2)))
        zp = ctx.b.op("Add", [ctx.b.op("Mul", [scale, zero]), middle])  # the middle code, shaped like the scale
    elif mapping == "ASYMMETRIC":
        scale = ctx.b.op("Div", [ctx.b.op("Sub", [high, low]), ctx.b.const(np.float32(qmax - qmin))])
        scale = ctx.b.op("Max", [scale, ctx.b.const(eps)])
        zp = ctx.b.op("Sub", [ctx.b.const(np.float32(qmin)), ctx.b.op("Round", [ctx.b.op("Div", [low, scale])])])
        zp = ctx.b.op("Clip", [zp, ctx.b.const(np.float32(qmin)), ctx.b.const(np.float32(qmax))])
    else:
        raise InputError(f"op {op.label}: mapping type {mapping!r} is not supported")
    return [scale, ctx.b.op("Cast", [zp], {"to": ONNX_QDTYPES[dtype]})]  # the codes' own dtype (Q saturates to it)


def _as_float(ctx: ConversionContext, op: SourceOp, index: int) -> ir.Value:
    """An int8 operand as floats: codes a unit DQ already reads (quantize_affine's, through layout
    ops) as they are, integer ones (a weight's codes, transposed) through a unit DQ."""
    value = tensor(ctx, op, index)
    node = value.producer()
    while node is not None and node.op_type in LAYOUT_OPS and node.inputs[0] is not None:
        node = node.inputs[0].producer()
    if node is not None and node.op_type == "DequantizeLinear":
        return value
    dtype = ctx.source.dtypes.get(tensor_name(op, index) or "", "")
    if dtype not in ("int8", "uint8"):
        raise InputError(f"op {op.label}: argument {index} is {dtype or 'of unknown dtype'}, not int8 codes")
    return _unit_dq(ctx, value, dtype)


@register("torch", "aten._int_mm.default")
def int_mm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """int8 x int8 -> int32: the product of the codes, read as floats by unit DQs."""
    out = ctx.b.op("MatMul", [_as_float(ctx, op, 0), _as_float(ctx, op, 1)])
    out.type = ir.TensorType(ir.DataType.FLOAT)  # held in float (exact below 2^24): `to` keeps it
    return out
