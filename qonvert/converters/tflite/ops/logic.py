"""Comparisons, logic and selection: EQUAL, NOT_EQUAL, GREATER(_EQUAL), LESS(_EQUAL), LOGICAL_AND /
OR / NOT, SELECT, SELECT_V2, WHERE, REDUCE_ALL / ANY. Two 8-bit inputs of different quantization
are compared as LiteRT compares them, on fixed-point rescalings of their codes (tflite/quant.py);
the booleans a comparison gives are not quantized."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import QuantParams
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, axis_in, operands, out, rank_of, remap_axis
from ..quant import comparison_values
from .math import reduced_perm
from .shape import cast_to_source, code_steps, constant_ints

_COMPARE = {"EQUAL": "Equal", "GREATER": "Greater", "GREATER_EQUAL": "GreaterOrEqual", "LESS": "Less", "LESS_EQUAL": "LessOrEqual"}


@register("tflite", *_COMPARE, "NOT_EQUAL")
def compare(ctx: ConversionContext, op: SourceOp) -> Laid:
    names = [arg(op, 0), arg(op, 1)]
    (a, b), perm = operands(ctx, names)
    qa, qb = (ctx.source.quant.get(n or "") for n in names)
    if qa is not None and qb is not None and not qa.same_as(qb):
        ta, tb = comparison_values(qa), comparison_values(qb)
        if ta is not None and tb is not None:  # LiteRT compares fixed-point rescalings of the two
            a, b = _looked_up(ctx, a, qa, ta), _looked_up(ctx, b, qb, tb)  # (reals within its rounding are equal)
    if op.type == "NOT_EQUAL":
        return Laid(ctx.b.op("Not", [ctx.b.op("Equal", [a, b])]), perm)
    return Laid(ctx.b.op(_COMPARE[op.type], [a, b]), perm)


def _looked_up(ctx: ConversionContext, value: ir.Value, qp: QuantParams, table: np.ndarray) -> ir.Value:
    """The value's code (recovered exactly from its DQ) indexing LiteRT's comparison value."""
    lo, _ = qp.code_range
    index = ctx.b.op("Add", [code_steps(ctx, value, qp), ctx.b.const(np.float32(int(qp.zero_point) - lo), "offset")])
    return ctx.b.op("Gather", [ctx.b.const(table, "compared"), ctx.b.op("Cast", [index], {"to": ir.DataType.INT64})], {"axis": 0})


_LOGICAL = {"LOGICAL_AND": "And", "LOGICAL_OR": "Or"}


@register("tflite", *_LOGICAL)
def logical(ctx: ConversionContext, op: SourceOp) -> Laid:
    (a, b), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    return Laid(ctx.b.op(_LOGICAL[op.type], [a, b]), perm)


@register("tflite", "LOGICAL_NOT")
def logical_not(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(ctx.b.op("Not", [x]), perm)


@register("tflite", "SELECT", "SELECT_V2")
def select(ctx: ConversionContext, op: SourceOp) -> Laid:
    """SELECT_V2 broadcasts its three inputs; SELECT (v1) also takes a 1-D condition that picks
    whole rows of higher-rank x and y."""
    cond, x, y = (arg(op, i) for i in range(3))
    if op.type == "SELECT" and rank_of(ctx, cond) == 1 and rank_of(ctx, x) > 1:
        rows = ctx.b.op("Reshape", [ctx.laid_out(cond or ""), ctx.b.ints([-1] + [1] * (rank_of(ctx, x) - 1))])
        return Laid(ctx.b.op("Where", [rows, ctx.laid_out(x or ""), ctx.laid_out(y or "")]), None)
    (c, a, b), perm = operands(ctx, [cond, x, y])
    return Laid(ctx.b.op("Where", [c, a, b]), perm)


@register("tflite", "WHERE")
def where(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The coordinates of the true (non-zero) elements, one row each, in row-major order of the
    source layout (ONNX NonZero gives them one column each)."""
    if arg(op, 1) is not None:
        raise InputError(f"op {op.label}: WHERE with x and y (write it as SELECT_V2)")
    coords = ctx.b.op("Transpose", [ctx.b.op("NonZero", [ctx.laid_out(arg(op, 0) or "")])], {"perm": [1, 0]})
    return cast_to_source(ctx, coords, out(op), produced="int64")


@register("tflite", "REDUCE_ALL", "REDUCE_ANY")
def reduce_bool(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    axes = sorted({axis_in(int(a), rank) for a in np.ravel(constant_ints(ctx, op, 1, "reduction axes"))})
    x, perm = as_held(ctx, name)
    keep = bool(op.attr("KeepDims", default=False))
    as_int = ctx.b.op("Cast", [x], {"to": ir.DataType.INT32})
    reduced = ctx.b.reduce("ReduceMin" if op.type == "REDUCE_ALL" else "ReduceMax", as_int, sorted(remap_axis(a, rank, perm) for a in axes), keep)
    return Laid(ctx.b.op("Cast", [reduced], {"to": ir.DataType.BOOL}), reduced_perm(perm, axes, keep))
