"""Elementwise arithmetic and reductions: ADD, SUB, MUL, DIV, POW, FLOOR_DIV, FLOOR_MOD, ATAN2, ADD_N,
SQUARE, SQUARED_DIFFERENCE, RSQRT, the rounding and trigonometric unary ops, CUMSUM, MEAN, SUM,
REDUCE_MAX / MIN / PROD."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....opsets.versions import first_opset
from ...context import NP_TO_IR, ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, axis_in, finish, operands, rank_of, remap_axis
from .shape import constant_int, constant_ints

# MAXIMUM / MINIMUM have no fused activation: `finish` leaves them as they are.
_BINARY = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Max", "MINIMUM": "Min", "POW": "Pow"}


@register("tflite", *_BINARY)
def binary(ctx: ConversionContext, op: SourceOp) -> Laid:
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    return finish(ctx, op, ctx.b.op(_BINARY[op.type], [a, b]), perm)


@register("tflite", "ADD_N")
def add_n(ctx: ConversionContext, op: SourceOp) -> Laid:
    values, perm = operands(ctx, op.variadic("in"))
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


_UNARY = {
    "NEG": "Neg",
    "SQRT": "Sqrt",
    "EXP": "Exp",
    "ABS": "Abs",
    "LOG": "Log",
    "FLOOR": "Floor",
    "CEIL": "Ceil",
    "ROUND": "Round",  # half to even, in both
    "SIGN": "Sign",
    "SIN": "Sin",
    "COS": "Cos",
}


@register("tflite", *_UNARY)
def unary(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(ctx.b.op(_UNARY[op.type], [x]), perm)


@register("tflite", "FLOOR_DIV", "FLOOR_MOD")
def floor_div_mod(ctx: ConversionContext, op: SourceOp) -> Laid:
    """Division rounded toward minus infinity, and the remainder with the divisor's sign. Integers
    are divided in double (exact for int32), as ONNX's Div truncates them."""
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    dtype = ctx.source.dtypes.get(arg(op, 0) or "", "float32")
    integer = dtype.startswith(("int", "uint")) and arg(op, 0) not in ctx.source.quant
    if integer and op.type == "FLOOR_MOD":
        return Laid(ctx.b.op("Mod", [a, b], {"fmod": 0}), perm)  # Python's remainder, for integers
    if integer:
        a, b = (ctx.b.op("Cast", [v], {"to": ir.DataType.DOUBLE}) for v in (a, b))
    floor = ctx.b.op("Floor", [ctx.b.op("Div", [a, b])])
    if op.type == "FLOOR_MOD":
        return Laid(ctx.b.op("Sub", [a, ctx.b.op("Mul", [floor, b])]), perm)
    return Laid(ctx.b.op("Cast", [floor], {"to": NP_TO_IR[dtype]}) if integer else floor, perm)


@register("tflite", "BITWISE_XOR", opset=first_opset("BitwiseXor"))
def bitwise_xor(ctx: ConversionContext, op: SourceOp) -> Laid:
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    return Laid(ctx.b.op("BitwiseXor", [a, b]), perm)


@register("tflite", "RIGHT_SHIFT")
def right_shift(ctx: ConversionContext, op: SourceOp) -> Laid:
    """An arithmetic shift (signed: toward minus infinity), as floor(x / 2^y) in double."""
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    dtype = ctx.source.dtypes.get(arg(op, 0) or "", "int32")
    a, b = (ctx.b.op("Cast", [v], {"to": ir.DataType.DOUBLE}) for v in (a, b))
    shifted = ctx.b.op("Floor", [ctx.b.op("Div", [a, ctx.b.op("Pow", [ctx.b.const(np.float64(2.0), "two"), b])])])
    return Laid(ctx.b.op("Cast", [shifted], {"to": NP_TO_IR[dtype]}), perm)


@register("tflite", "ATAN2")
def atan2(ctx: ConversionContext, op: SourceOp) -> Laid:
    """atan(y / x) moved to the quadrant of (x, y); x = 0 gives +-pi/2 (0 where y is 0 too)."""
    (y, x), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    zero = ctx.b.const(np.float32(0.0), "zero")
    pi = ctx.b.const(np.float32(np.pi), "pi")
    half_pi = ctx.b.const(np.float32(np.pi / 2), "half_pi")
    x_zero = ctx.b.op("Equal", [x, zero])
    safe_x = ctx.b.op("Where", [x_zero, ctx.b.const(np.float32(1.0), "one"), x])
    base = ctx.b.op("Atan", [ctx.b.op("Div", [y, safe_x])])
    y_negative = ctx.b.op("Less", [y, zero])
    turned = ctx.b.op("Add", [base, ctx.b.op("Where", [y_negative, ctx.b.op("Neg", [pi]), pi])])
    moved = ctx.b.op("Where", [ctx.b.op("Less", [x, zero]), turned, base])
    on_axis = ctx.b.op("Mul", [ctx.b.op("Sign", [y]), half_pi])
    return Laid(ctx.b.op("Where", [x_zero, on_axis, moved]), perm)


@register("tflite", "CUMSUM")
def cumsum(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    axis = axis_in(constant_int(ctx, op, 1, "the axis"), rank)
    x, perm = as_held(ctx, name)
    attrs = {"exclusive": int(bool(op.attr("Exclusive", default=False))), "reverse": int(bool(op.attr("Reverse", default=False)))}
    return Laid(ctx.b.op("CumSum", [x, ctx.b.ints([remap_axis(axis, rank, perm)])], attrs), perm)


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
    rank = rank_of(ctx, name)
    axes = sorted({axis_in(int(a), rank) for a in np.ravel(constant_ints(ctx, op, 1, "reduction axes"))})
    x, perm = as_held(ctx, name)
    keep = bool(op.attr("KeepDims", default=False))
    onnx_axes = [remap_axis(a, rank, perm) for a in axes]
    y = ctx.b.reduce(_REDUCE[op.type], x, sorted(onnx_axes), keep)
    return Laid(y, reduced_perm(perm, axes, keep))
