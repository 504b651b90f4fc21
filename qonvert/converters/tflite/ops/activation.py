"""SOFTMAX, LOG_SOFTMAX, LOGISTIC, TANH, HARD_SWISH, ELU, RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, PRELU."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....opsets.versions import first_opset
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held, clip, operands, rank_of, remap_axis

_UNARY = {"LOGISTIC": "Sigmoid", "TANH": "Tanh", "RELU": "Relu", "HARD_SWISH": "HardSwish", "ELU": "Elu"}
_CLIPS = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _input(ctx: ConversionContext, op: SourceOp) -> tuple[ir.Value, tuple[int, ...] | None]:
    return as_held(ctx, arg(op, 0))


def unary(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = _input(ctx, op)
    return Laid(ctx.b.op(_UNARY[op.type], [x]), perm)


register("tflite", *(n for n in _UNARY if n != "HARD_SWISH"))(unary)
register("tflite", "HARD_SWISH", opset=first_opset("HardSwish"))(unary)


@register("tflite", *_CLIPS)
def relu_n(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = _input(ctx, op)
    return Laid(clip(ctx, x, *_CLIPS[op.type]), perm)


@register("tflite", "LEAKY_RELU")
def leaky_relu(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = _input(ctx, op)
    return Laid(ctx.b.op("LeakyRelu", [x], {"alpha": op.float_attr("Alpha", default=0.2)}), perm)


@register("tflite", "PRELU")
def prelu(ctx: ConversionContext, op: SourceOp) -> Laid:
    (x, alpha), perm = operands(ctx, [arg(op, 0), arg(op, 1)])
    return Laid(ctx.b.op("PRelu", [x, alpha]), perm)


@register("tflite", "SOFTMAX", "LOG_SOFTMAX")
def softmax(ctx: ConversionContext, op: SourceOp) -> Laid:
    """(log-)softmax(beta * x) over the last source axis (LiteRT's int8 kernels fix the output
    quantization: the tensor's own parameters say so)."""
    x, perm = _input(ctx, op)
    beta = op.float_attr("Beta", default=1.0)
    if beta != 1.0:
        x = ctx.b.op("Mul", [x, ctx.b.const(np.float32(beta), "beta")])
    axis = remap_axis(-1, rank_of(ctx, arg(op, 0)), perm)
    return Laid(ctx.b.op("Softmax" if op.type == "SOFTMAX" else "LogSoftmax", [x], {"axis": axis}), perm)
