"""Element-wise activations, softmax, clip, scale, dropout (inference)."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp


def _f(ctx: ConversionContext, v: float) -> ir.Value:
    return ctx.b.const(np.float32(v), "c")


def _simple(onnx_op: str):  # type: ignore[no-untyped-def]
    def mapper(ctx: ConversionContext, op: SourceOp) -> ir.Value:
        return ctx.b.op(onnx_op, [ctx.input(op, "X")])

    return mapper


register("paddle", "relu")(_simple("Relu"))
register("paddle", "sigmoid")(_simple("Sigmoid"))
register("paddle", "tanh")(_simple("Tanh"))
register("paddle", "assign")(_simple("Identity"))


@register("paddle", "relu6")
def relu6(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Clip", [ctx.input(op, "X"), _f(ctx, 0.0), _f(ctx, op.float_attr("threshold", default=6.0))])


@register("paddle", "leaky_relu")
def leaky_relu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("LeakyRelu", [ctx.input(op, "X")], {"alpha": op.float_attr("alpha", "negative_slope", default=0.02)})


@register("paddle", "hardswish", "hard_swish", opset=first_opset("HardSwish"))
def hardswish(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("HardSwish", [ctx.input(op, "X")])


@register("paddle", "hardsigmoid", "hard_sigmoid")
def hardsigmoid(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    attrs = {"alpha": op.float_attr("slope", default=1 / 6), "beta": op.float_attr("offset", default=0.5)}
    return ctx.b.op("HardSigmoid", [ctx.input(op, "X")], attrs)


@register("paddle", "swish", "silu")
def swish(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = ctx.input(op, "X")
    beta = op.float_attr("beta", default=1.0)
    gate_in = x if beta == 1.0 else ctx.b.op("Mul", [x, _f(ctx, beta)])
    return ctx.b.op("Mul", [x, ctx.b.op("Sigmoid", [gate_in])])


@register("paddle", "gelu")
def gelu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    # Decomposed (ONNX Gelu needs opset 20): erf form, or tanh form when approximate.
    x, b = ctx.input(op, "X"), ctx.b
    if op.attr("approximate", default=False):
        cube = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [cube, _f(ctx, 0.044715)])]), _f(ctx, math.sqrt(2 / math.pi))])
        gate = b.op("Add", [b.op("Tanh", [inner]), _f(ctx, 1.0)])
    else:
        gate = b.op("Add", [b.op("Erf", [b.op("Div", [x, _f(ctx, math.sqrt(2.0))])]), _f(ctx, 1.0)])
    return b.op("Mul", [b.op("Mul", [x, gate]), _f(ctx, 0.5)])


@register("paddle", "softmax")
def softmax(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Softmax", [ctx.input(op, "X")], {"axis": op.int_attr("axis", default=-1)})


@register("paddle", "clip")
def clip(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    lo = ctx.const_scalar(op.input("Min"), op, "Min")
    hi = ctx.const_scalar(op.input("Max"), op, "Max")
    lo_v = lo if lo is not None else op.float_attr("min", default=-np.inf)
    hi_v = hi if hi is not None else op.float_attr("max", default=np.inf)
    return ctx.b.op("Clip", [ctx.input(op, "X"), _f(ctx, lo_v), _f(ctx, hi_v)])


@register("paddle", "scale")
def scale(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    given = ctx.const_scalar(op.input("ScaleTensor"), op, "ScaleTensor")
    s = given if given is not None else op.float_attr("scale", default=1.0)
    if op.input("ScaleTensor") is not None and given is None:
        raise InputError(f"op {op.label}: run-time scale tensor is not supported")
    bias = op.float_attr("bias", default=0.0)
    x, b = ctx.input(op, "X"), ctx.b
    if op.attr("bias_after_scale", default=True):
        y = x if s == 1.0 else b.op("Mul", [x, _f(ctx, s)])
        return y if bias == 0.0 else b.op("Add", [y, _f(ctx, bias)])
    y = x if bias == 0.0 else b.op("Add", [x, _f(ctx, bias)])
    return y if s == 1.0 else b.op("Mul", [y, _f(ctx, s)])


@register("paddle", "dropout")
def dropout(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    mode = op.attr("dropout_implementation", "mode", default="upscale_in_train")
    x = ctx.input(op, "X")
    if mode == "upscale_in_train":
        return ctx.b.op("Identity", [x])
    given = ctx.const_scalar(op.input("DropoutProb"), op, "DropoutProb")
    p = given if given is not None else op.float_attr("dropout_prob", "p", default=0.5)
    return ctx.b.op("Mul", [x, _f(ctx, 1.0 - p)])
