"""Ops that answer with positions: ARG_MAX, ARG_MIN, TOPK_V2. They compare dequantized values,
which order as their integer codes do, so they are exact; indices are cast to the source dtype."""

from __future__ import annotations

from ....errors import QonvertError
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, axis_in, out, rank_of, remap_axis
from .math import reduced_perm
from .shape import cast_to_source, constant_ints


@register("tflite", "ARG_MAX", "ARG_MIN")
def arg_max_min(ctx: ConversionContext, op: SourceOp) -> Laid:
    """Both return the first index of the extreme value, as ONNX does by default."""
    name = arg(op, 0)
    rank = rank_of(ctx, name)
    axis = axis_in(int(constant_ints(ctx, op, 1, "axis").ravel()[0]), rank)
    x, perm = as_held(ctx, name)
    onnx_op = "ArgMax" if op.type == "ARG_MAX" else "ArgMin"
    y = ctx.b.op(onnx_op, [x], {"axis": remap_axis(axis, rank, perm), "keepdims": 0})
    return Laid(cast_to_source(ctx, y, out(op), produced="int64"), reduced_perm(perm, [axis], False))


@register("tflite", "TOPK_V2")
def top_k(ctx: ConversionContext, op: SourceOp) -> list[Laid]:
    """The k largest along the last axis, sorted, ties to the lower index (TFLite and ONNX alike)."""
    name = arg(op, 0)
    k = int(constant_ints(ctx, op, 1, "k").ravel()[0])
    if k < 1:
        raise QonvertError(f"op {op.label}: k = {k}")
    x, perm = as_held(ctx, name)
    axis = remap_axis(-1, rank_of(ctx, name), perm)
    values, indices = ctx.b.op("TopK", [x, ctx.b.ints([k])], {"axis": axis, "largest": 1, "sorted": 1}, outputs=2)
    return [Laid(values, perm), Laid(cast_to_source(ctx, indices, out(op, 1), produced="int64"), perm)]
