"""Element-wise arithmetic, matmul / mul, reductions."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp

_BINARY = {
    "elementwise_add": "Add",
    "add": "Add",
    "elementwise_sub": "Sub",
    "subtract": "Sub",
    "elementwise_mul": "Mul",
    "multiply": "Mul",
    "elementwise_div": "Div",
    "divide": "Div",
    "elementwise_max": "Max",
    "maximum": "Max",
    "elementwise_min": "Min",
    "minimum": "Min",
    "elementwise_pow": "Pow",
}


def _binary(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x, y = ctx.input(op, "X"), ctx.input(op, "Y")
    xr, yr = ctx.shape(op.input("X")), ctx.shape(op.input("Y"))
    axis = op.int_attr("axis", default=-1, low=-1, high=len(xr) if xr is not None else 64)
    if axis != -1 and xr is not None and yr is not None and len(yr) < len(xr) and axis + len(yr) != len(xr):
        # legacy broadcast: Y's dims line up with X's starting at `axis`
        trailing = list(range(len(yr), len(xr) - axis))
        y = ctx.b.op("Unsqueeze", [y, ctx.b.ints(trailing)])
    return ctx.b.op(_BINARY[op.type], [x, y])


for _name in _BINARY:
    register("paddle", _name)(_binary)


def _transpose_last2(ctx: ConversionContext, v: ir.Value, rank: int) -> ir.Value:
    if rank < 2:  # the file asks to transpose a vector (its declared rank)
        raise InputError(f"tensor {v.name!r}: transpose_x / transpose_y of a rank-{rank} input")
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return ctx.b.op("Transpose", [v], {"perm": perm})


@register("paddle", "matmul_v2", "matmul")
def matmul(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x, y = ctx.input(op, "X"), ctx.input(op, "Y")
    if op.attr("trans_x", "transpose_x", "transpose_X", default=False):
        x = _transpose_last2(ctx, x, ctx.rank(op, "X"))
    if op.attr("trans_y", "transpose_y", "transpose_Y", default=False):
        y = _transpose_last2(ctx, y, ctx.rank(op, "Y"))
    out = ctx.b.op("MatMul", [x, y])
    alpha = op.float_attr("alpha", default=1.0)
    return out if alpha == 1.0 else ctx.b.op("Mul", [out, ctx.b.const(np.float32(alpha))])


@register("paddle", "mul")
def mul(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    xs, ys = ctx.shape(op.input("X")), ctx.shape(op.input("Y"))
    if xs is None or ys is None:
        raise InputError(f"op {op.label}: input shapes unknown")
    # the leading dims kept: a count of X's axes (a list of that length is built from it)
    xn = op.int_attr("x_num_col_dims", default=1, low=1, high=max(len(xs) - 1, 1))
    yn = op.int_attr("y_num_col_dims", default=1, low=1, high=max(len(ys) - 1, 1))
    x, y = ctx.input(op, "X"), ctx.input(op, "Y")
    if len(ys) != yn + 1 or yn != 1:
        raise InputError(f"op {op.label}: mul with y_num_col_dims={yn} on rank {len(ys)} is not supported")
    if len(xs) != xn + 1:
        x = ctx.b.op("Reshape", [x, ctx.b.ints([0] * xn + [-1])])
    return ctx.b.op("MatMul", [x, y])


def _axes(ctx: ConversionContext, op: SourceOp) -> list[int] | None:
    axes = ctx.const_ints(op.input("AxisTensor"), op, "AxisTensor")
    if axes is None:
        axes = op.ints_attr("dim", "axis", default=[], scalar=True)
    if op.attr("reduce_all", default=False) or not axes:
        return None
    return axes


_REDUCE = {
    "mean": "ReduceMean",
    "reduce_mean": "ReduceMean",
    "sum": "ReduceSum",
    "reduce_sum": "ReduceSum",
    "max": "ReduceMax",
    "reduce_max": "ReduceMax",
}


def _reduce(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    keep = bool(op.attr("keepdim", "keep_dim", default=False))
    return ctx.b.reduce(_REDUCE[op.type], ctx.input(op, "X"), _axes(ctx, op), keep)


for _name in _REDUCE:
    register("paddle", _name)(_reduce)
