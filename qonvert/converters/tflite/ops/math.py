"""Elementwise arithmetic and reductions: ADD, SUB, MUL, DIV, ADD_N, SQUARE, SQUARED_DIFFERENCE, RSQRT, MEAN,
SUM, REDUCE_MAX / MIN / PROD."""

from __future__ import annotations

import numpy as np

from ....errors import QonvertError
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, axis_in, finish, operands, rank_of, remap_axis

# MAXIMUM / MINIMUM have no fused activation: `finish` leaves them as they are.
_BINARY = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Max", "MINIMUM": "Min"}


@register("tflite", *_BINARY)
def binary(ctx: ConversionContext, op: SourceOp) -> Laid:
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    return finish(ctx, op, ctx.b.op(_BINARY[op.type], [a, b]), perm)


@register("tflite", "ADD_N")
def add_n(ctx: ConversionContext, op: SourceOp) -> Laid:
    values, perm = operands(ctx, [n for n in op.inputs["in"] if n])
    return Laid(ctx.b.op("Sum", values), perm)


@register("tflite", "SQUARE")
def square(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(ctx.b.op("Mul", [x, x]), perm)


@register("tflite", "SQUARED_DIFFERENCE")
def squared_difference(ctx: ConversionContext, op: SourceOp) -> Laid:
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    d = ctx.b.op("Sub", [a, b])
    return Laid(ctx.b.op("Mul", [d, d]), perm)


_UNARY = {"NEG": "Neg", "SQRT": "Sqrt", "EXP": "Exp", "ABS": "Abs", "LOG": "Log"}


@register("tflite", *_UNARY)
def unary(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(ctx.b.op(_UNARY[op.type], [x]), perm)


@register("tflite", "RSQRT")
def rsqrt(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(ctx.b.op("Reciprocal", [ctx.b.op("Sqrt", [x])]), perm)


def reduced_perm(perm: tuple[int, ...] | None, axes: list[int], keepdims: bool) -> tuple[int, ...] | None:
    """How the output of a reduction over source `axes` is held when its input is held in `perm`."""
    if perm is None or keepdims:
        return perm
    kept = [p for p in perm if p not in axes]
    order = sorted(kept)
    new = tuple(order.index(p) for p in kept)
    return None if new == tuple(range(len(new))) else new


_REDUCE = {"MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax", "REDUCE_MIN": "ReduceMin", "REDUCE_PROD": "ReduceProd"}


@register("tflite", *_REDUCE)
def reduce(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0) or ""
    axes_arr = ctx.array(arg(op, 1))
    if axes_arr is None:
        raise QonvertError(f"op {op.label}: reduction axes are not a constant")
    rank = rank_of(ctx, name)
    axes = sorted({axis_in(int(a), rank) for a in np.ravel(axes_arr)})
    x, perm = as_held(ctx, name)
    keep = bool(op.attr("KeepDims", default=False))
    onnx_axes = [remap_axis(a, rank, perm) for a in axes]
    y = ctx.b.reduce(_REDUCE[op.type], x, sorted(onnx_axes), keep)
    return Laid(y, reduced_perm(perm, axes, keep))
