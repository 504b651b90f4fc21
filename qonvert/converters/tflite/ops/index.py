"""Ops that answer with positions or read and write at them: ARG_MAX, ARG_MIN, TOPK_V2 (they compare
dequantized values, which order as their integer codes do, so they are exact; indices are cast to
the source dtype), GATHER_ND, SCATTER_ND, REVERSE_V2, REVERSE_SEQUENCE."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, axis_in, out, rank_of, remap_axis
from .math import reduced_perm
from .shape import as_int64, cast_to_source, constant_int, constant_ints, held_dtype, shape_input


@register("tflite", "ARG_MAX", "ARG_MIN")
def arg_max_min(ctx: ConversionContext, op: SourceOp) -> Laid:
    """Both return the first index of the extreme value, as ONNX does by default."""
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    axis = axis_in(constant_int(ctx, op, 1, "axis"), rank)
    x, perm = as_held(ctx, name)
    onnx_op = "ArgMax" if op.type == "ARG_MAX" else "ArgMin"
    y = ctx.b.op(onnx_op, [x], {"axis": remap_axis(axis, rank, perm), "keepdims": 0})
    return Laid(cast_to_source(ctx, y, out(op), produced="int64"), reduced_perm(perm, [axis], False))


@register("tflite", "TOPK_V2")
def top_k(ctx: ConversionContext, op: SourceOp) -> list[Laid]:
    """The k largest along the last axis, sorted, ties to the lower index (TFLite and ONNX alike)."""
    name = arg(op, 0)
    k = constant_int(ctx, op, 1, "k")
    if k < 1:
        raise InputError(f"op {op.label}: k = {k}")
    x, perm = as_held(ctx, name)
    axis = remap_axis(-1, rank_of(ctx, name), perm)
    values, indices = ctx.b.op("TopK", [x, ctx.b.ints([k])], {"axis": axis, "largest": 1, "sorted": 1}, outputs=2)
    return [Laid(values, perm), Laid(cast_to_source(ctx, indices, out(op, 1), produced="int64"), perm)]


@register("tflite", "GATHER_ND")
def gather_nd(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """In the source layout: the index tuples address source axes."""
    return ctx.b.op("GatherND", [ctx.laid_out(arg(op, 0) or ""), as_int64(ctx, arg(op, 1))])


@register("tflite", "SCATTER_ND", opset=first_opset("ScatterND", "reduction"))
def scatter_nd(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """SCATTER_ND(indices, updates, shape): updates summed into zeros, duplicates adding up as in
    TensorFlow (ONNX ScatterND's reduction "add")."""
    updates = ctx.laid_out(arg(op, 1) or "")
    zeros = ctx.b.op("Expand", [ctx.b.const(np.zeros(1, dtype=held_dtype(ctx, arg(op, 1))), "zero"), shape_input(ctx, op, 2)])
    return ctx.b.op("ScatterND", [zeros, as_int64(ctx, arg(op, 0)), updates], {"reduction": "add"})


@register("tflite", "REVERSE_V2")
def reverse(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    axes = sorted({axis_in(int(a), rank) for a in constant_ints(ctx, op, 1, "axes").ravel()})
    x, perm = as_held(ctx, name)
    held_axes = [remap_axis(a, rank, perm) for a in axes]
    n = len(held_axes)
    lowest = -(2**63)
    return Laid(ctx.b.op("Slice", [x, ctx.b.ints([-1] * n), ctx.b.ints([lowest] * n), ctx.b.ints(held_axes), ctx.b.ints([-1] * n)]), perm)


@register("tflite", "REVERSE_SEQUENCE")
def reverse_sequence(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The first seq_lengths[b] steps of each batch entry reversed; ONNX's op takes the batch and
    time axes as 0 and 1, so others are moved there and back."""
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    time, batch = axis_in(op.int_attr("SeqDim", default=1), rank), axis_in(op.int_attr("BatchDim", default=0), rank)
    if time == batch:
        raise InputError(f"op {op.label}: seq_dim and batch_dim are both {time}")
    order = [batch, time, *(a for a in range(rank) if a not in (batch, time))]
    x = ctx.laid_out(name or "")
    moved = order != list(range(rank))
    if moved:
        x = ctx.b.op("Transpose", [x], {"perm": order})
    y = ctx.b.op("ReverseSequence", [x, as_int64(ctx, arg(op, 1))], {"batch_axis": 0, "time_axis": 1})
    return ctx.b.op("Transpose", [y], {"perm": [order.index(a) for a in range(rank)]}) if moved else y
