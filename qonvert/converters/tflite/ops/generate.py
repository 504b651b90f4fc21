"""Tensors made from shapes and values: FILL, ZEROS_LIKE, BROADCAST_TO, RANGE, ONE_HOT,
MATRIX_DIAG, MATRIX_SET_DIAG. They run in the source (NHWC) layout: their shape operands are
written in it."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ...context import NP_TO_IR, ConversionContext, Laid
from ...registry import register
from ...source import SourceOp, check_built
from ..layout import arg, as_held, axis_in, out, rank_of
from .shape import codes_as_output, constant_int, held_dtype, shape_input


@register("tflite", "FILL")
def fill(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    value = ctx.b.op("Reshape", [ctx.laid_out(arg(op, 1) or ""), ctx.b.ints([])])  # a scalar, as Expand wants
    return ctx.b.op("Expand", [value, shape_input(ctx, op, 0)])


@register("tflite", "ZEROS_LIKE")
def zeros_like(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    zero = ctx.b.const(np.zeros(1, dtype=held_dtype(ctx, out(op))), "zero")
    return Laid(ctx.b.op("Expand", [zero, ctx.b.op("Shape", [x])]), perm)


@register("tflite", "BROADCAST_TO")
def broadcast_to(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Expand", [ctx.laid_out(arg(op, 0) or ""), shape_input(ctx, op, 1)])


@register("tflite", "RANGE")
def range_(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    start, limit, delta = (ctx.b.op("Reshape", [ctx.laid_out(arg(op, i) or ""), ctx.b.ints([])]) for i in range(3))
    return ctx.b.op("Range", [start, limit, delta])


@register("tflite", "ONE_HOT")
def one_hot(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """ONE_HOT(indices, depth, on, off); an index outside [0, depth) gives a row of `off` in both."""
    indices = arg(op, 0)
    axis = axis_in(op.int_attr("Axis", default=-1), rank_of(ctx, indices) + 1)
    depth = ctx.b.ints([constant_int(ctx, op, 1, "depth")])
    on, off = (ctx.b.op("Reshape", [codes_as_output(ctx, arg(op, i) or "", out(op)), ctx.b.ints([1])]) for i in (2, 3))
    values = ctx.b.op("Concat", [off, on], {"axis": 0})
    # ONNX counts a negative index from the end; TFLite gives it a row of `off`
    raw = ctx.laid_out(indices or "")
    index_type = np.dtype(ctx.source.dtypes.get(indices or "", "int32"))
    if index_type.kind not in "iu":
        raise InputError(f"op {op.label}: indices {indices!r} are {index_type}: ONE_HOT takes integer indices")
    outside = ctx.b.op("Less", [raw, ctx.b.const(np.zeros((), dtype=index_type))])
    safe = ctx.b.op("Where", [outside, ctx.b.const(np.asarray(np.iinfo(index_type).max, dtype=index_type)), raw])
    y = ctx.b.op("OneHot", [safe, depth, values], {"axis": axis})
    dtype = ctx.source.dtypes.get(out(op), "float32")
    return y if out(op) in ctx.source.quant or dtype == "float32" else ctx.b.op("Cast", [y], {"to": NP_TO_IR[dtype]})


def _eye(ctx: ConversionContext, op: SourceOp, name: str | None) -> ir.Value:
    """Where the main diagonal is, as wide as `name`'s last axis (the size must be known)."""
    size = (ctx.shape(name) or (-1,))[-1]
    if size < 0:
        raise InputError(f"op {op.label}: a diagonal of dynamic length")
    check_built((size, size), f"op {op.label}")
    return ctx.b.const(np.eye(size, dtype=bool), "eye")


@register("tflite", "MATRIX_DIAG")
def matrix_diag(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """[..., N] -> [..., N, N] with the values on the diagonal, zeros elsewhere."""
    name = arg(op, 0)
    d = ctx.b.op("Unsqueeze", [ctx.laid_out(name or ""), ctx.b.ints([-1])])
    return ctx.b.op("Where", [_eye(ctx, op, name), d, ctx.b.const(np.zeros((), held_dtype(ctx, name)), "zero")])


@register("tflite", "MATRIX_SET_DIAG")
def matrix_set_diag(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The input with its main diagonal replaced (a selection: exact)."""
    d = ctx.b.op("Unsqueeze", [ctx.laid_out(arg(op, 1) or ""), ctx.b.ints([-1])])
    return ctx.b.op("Where", [_eye(ctx, op, arg(op, 1)), d, ctx.laid_out(arg(op, 0) or "")])
