"""batch_norm (inference) and layer_norm."""

from __future__ import annotations

import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp


@register("paddle", "batch_norm")
def batch_norm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    ins = [ctx.input(op, s) for s in ("X", "Scale", "Bias", "Mean", "Variance")]
    return ctx.b.op("BatchNormalization", ins, {"epsilon": op.float_attr("epsilon", default=1e-5)})


@register("paddle", "layer_norm", opset=first_opset("LayerNormalization"))
def layer_norm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = ctx.input(op, "X")
    rank = ctx.rank(op, "X")
    axis = op.int_attr("begin_norm_axis", default=1, low=-rank, high=rank - 1) % max(rank, 1)
    if op.input("Scale") is None or op.input("Bias") is None:
        raise InputError(f"op {op.label}: layer_norm without scale and bias is not supported")
    scale, bias = ctx.input(op, "Scale"), ctx.input(op, "Bias")
    if rank - axis != 1:  # Paddle stores flattened [prod(normalized dims)] scale/bias
        shape = ctx.shape(op.input("X")) or ()
        scale = ctx.b.op("Reshape", [scale, ctx.b.ints(shape[axis:])])
        bias = ctx.b.op("Reshape", [bias, ctx.b.ints(shape[axis:])])
    attrs = {"axis": axis, "epsilon": op.float_attr("epsilon", default=1e-5)}
    return ctx.b.op("LayerNormalization", [x, scale, bias], attrs)
