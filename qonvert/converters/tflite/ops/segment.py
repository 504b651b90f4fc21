"""Writes by index: SEGMENT_SUM, UNSORTED_SEGMENT_SUM / MAX / MIN / PROD, SPARSE_TO_DENSE, and
UNIQUE. They run in the source layout: their indices address source rows."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import SCATTER_MIN_MAX_OPSET, first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from ..layout import arg, out
from .shape import as_int64, cast_to_source, codes_as_output, constant_int, held_dtype, shape_input

# what an empty segment holds, as TensorFlow fills it, and the reduction that fills the others
_SEGMENT = {"SUM": ("add", "zero"), "PROD": ("mul", "one"), "MAX": ("max", "lowest"), "MIN": ("min", "highest")}


def _filled(ctx: ConversionContext, op: SourceOp, empty: str, dtype: np.dtype, shape: ir.Value) -> ir.Value:
    if dtype.kind not in "fiu":  # LiteRT's kernels take float32 and int32 data
        raise InputError(f"op {op.label}: data of dtype {dtype}; a segment reduction takes numbers")
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    value = {"zero": 0, "one": 1, "lowest": info.min, "highest": info.max}[empty]
    return ctx.b.op("Expand", [ctx.b.const(np.asarray([value], dtype=dtype), "fill"), shape])


def _segments(ctx: ConversionContext, op: SourceOp, reduction: str, empty: str, count: ir.Value) -> ir.Value:
    """data rows reduced into `count` rows by their segment id."""
    data = arg(op, 0)
    rows = ctx.b.op("Shape", [ctx.laid_out(data or "")], {"start": 1})
    shape = ctx.b.op("Concat", [count, rows], {"axis": 0})
    ids = ctx.b.op("Unsqueeze", [as_int64(ctx, arg(op, 1)), ctx.b.ints([-1])])
    start = _filled(ctx, op, empty, held_dtype(ctx, data), shape)
    return ctx.b.op("ScatterND", [start, ids, ctx.laid_out(data or "")], {"reduction": reduction})


@register("tflite", "SEGMENT_SUM", opset=first_opset("ScatterND", "reduction"))
def segment_sum(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """Sorted segment ids: as many rows as the largest id + 1."""
    count = ctx.b.op("Add", [ctx.b.reduce("ReduceMax", as_int64(ctx, arg(op, 1)), [0], True), ctx.b.ints([1])])
    return _segments(ctx, op, "add", "zero", count)


@register("tflite", *(f"UNSORTED_SEGMENT_{kind}" for kind in _SEGMENT), opset=SCATTER_MIN_MAX_OPSET)
def unsorted_segment(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    reduction, empty = _SEGMENT[op.type.rsplit("_", 1)[1]]
    count = ctx.b.ints([constant_int(ctx, op, 2, "num_segments")])
    return _segments(ctx, op, reduction, empty, count)


@register("tflite", "SPARSE_TO_DENSE", opset=first_opset("Shape", "start"))
def sparse_to_dense(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """SPARSE_TO_DENSE(indices, output_shape, values, default): the default everywhere, then the
    values (one, or one per index) written at the indices (a repeated index: the last write)."""
    indices = as_int64(ctx, arg(op, 0))
    if len(ctx.shape(arg(op, 0)) or ()) < 2:  # scalar or 1-D indices address the first axis
        indices = ctx.b.op("Reshape", [indices, ctx.b.ints([-1, 1])])
    default = ctx.b.op("Reshape", [codes_as_output(ctx, arg(op, 3) or "", out(op)), ctx.b.ints([])])
    dense = ctx.b.op("Expand", [default, shape_input(ctx, op, 1)])
    count = ctx.b.op("Shape", [indices], {"start": 0, "end": 1})
    values = ctx.b.op("Expand", [ctx.b.op("Reshape", [codes_as_output(ctx, arg(op, 2) or "", out(op)), ctx.b.ints([-1])]), count])
    return ctx.b.op("ScatterND", [dense, indices, values])


@register("tflite", "UNIQUE")
def unique(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    """The distinct values of a 1-D tensor in order of first appearance, and each element's index
    among them (ONNX Unique, unsorted)."""
    name = arg(op, 0) or ""
    dtype = ctx.source.dtypes.get(name, "float32")
    x = ctx.laid_out(name)
    if dtype.startswith(("int", "uint")) and name not in ctx.source.quant:  # ORT's Unique takes int64, not int32
        x, dtype = ctx.b.op("Cast", [x], {"to": ir.DataType.INT64}), "int64"
    values, _, inverse, _ = ctx.b.op("Unique", [x], {"sorted": 0}, outputs=4)
    return [cast_to_source(ctx, values, out(op), produced=dtype), cast_to_source(ctx, inverse, out(op, 1), produced="int64")]
