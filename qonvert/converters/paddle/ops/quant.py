"""quantize_linear / dequantize_linear (the legacy fake ops are rewritten into these first)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import QuantParams
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp, check_built
from ..quant import fold_quantize, qparams


def _qparams(ctx: ConversionContext, op: SourceOp, validate: bool = True) -> QuantParams:
    x = op.input("X")
    scale = ctx.array(op.input("Scale"))
    if scale is None:
        raise InputError(f"op {op.label}: scale is not a constant")
    zp = ctx.array(op.input("ZeroPoint"))
    return qparams(op, scale, zp, ctx.shape(x), x or "?", validate)


def _zero_constant(ctx: ConversionContext, op: SourceOp) -> ir.Value | None:
    """A zero Scale: Paddle's PTQ gives all-zero tensors (an untrained bias) scale 0, and its
    dequantize_linear (q * Scale / bnt) then yields exact zeros whatever q is."""
    scale = ctx.array(op.input("Scale"))
    shape = ctx.shape(op.input("X"))
    if scale is None or np.any(scale) or shape is None or any(d < 0 for d in shape):
        return None
    check_built(shape, f"op {op.label}")
    return ctx.b.const(np.zeros(shape, np.float32), f"{op.output('Y')}_zeros")


@register("paddle", "quantize_linear")
def quantize_linear(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    zeros = _zero_constant(ctx, op)
    if zeros is not None:
        return zeros
    data = ctx.array(op.input("X"))
    qp = _qparams(ctx, op, validate=data is None)
    if data is not None:  # a float weight: fold as Paddle computes it
        folded = fold_quantize(op, data, qp)
        return ctx.b.const(folded.astype(np.float32), f"{op.output('Y')}_folded")
    codes = ctx.b.quantize(ctx.input(op, "X"), qp)  # clamped first where the range is narrow
    y = op.output("Y") or ""
    readers = {o.type for o in ctx.readers(y)}
    if y not in ctx.source.outputs and readers <= {"dequantize_linear"}:
        return codes
    if "dequantize_linear" in readers:
        raise InputError(f"op {op.label}: its codes are read both by dequantize_linear and as values ({', '.join(sorted(readers))}); not supported")
    # Paddle's quantize_linear gives the codes as floats, and these are read as such (a Cast, the
    # program's output): a DQ of scale 1 gives exactly them
    return ctx.b.dequantize(codes, QuantParams.unit(qp.dtype))


@register("paddle", "dequantize_linear")
def dequantize_linear(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    zeros = _zero_constant(ctx, op)
    if zeros is not None:
        return zeros
    name = op.output("Y") or "dq"
    data = ctx.array(op.input("X"))
    qp = _qparams(ctx, op, validate=data is None)
    if data is not None:  # weight: integer values stored as float (QAT) or int8 (PTQ)
        if data.dtype.kind == "f" and not np.array_equal(data, np.rint(data)):
            raise InputError(f"op {op.label}: weight {op.input('X')!r} is not integer-valued")
        if data.size and (data.min() < qp.qmin or data.max() > qp.qmax):
            raise InputError(f"op {op.label}: weight {op.input('X')!r} exceeds [{qp.qmin}, {qp.qmax}]")
        return ctx.int_weight(data, qp, op.input("X") or "?", name)
    return ctx.b.dequantize(ctx.input(op, "X"), qp)
