"""Normalisations: L2_NORMALIZATION (last axis), LOCAL_RESPONSE_NORMALIZATION (channels)."""

from __future__ import annotations

import numpy as np

from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import NCHW, arg, as_held, finish, rank_of, remap_axis, spatial

L2_EPSILON = 1e-6  # LiteRT's reference: x / sqrt(max(sum(x^2), 1e-6))


@register("tflite", "L2_NORMALIZATION")
def l2_normalization(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0)
    x, perm = as_held(ctx, name)
    axis = remap_axis(-1, rank_of(ctx, name), perm)
    sum_sq = ctx.b.reduce("ReduceSum", ctx.b.op("Mul", [x, x]), [axis], True)
    norm = ctx.b.op("Sqrt", [ctx.b.op("Max", [sum_sq, ctx.b.const(np.float32(L2_EPSILON), "eps")])])
    return finish(ctx, op, ctx.b.op("Div", [x, norm]), perm)


@register("tflite", "LOCAL_RESPONSE_NORMALIZATION")
def local_response_normalization(ctx: ConversionContext, op: SourceOp) -> Laid:
    """TFLite: x / (bias + alpha * sum of squares over 2r+1 channels)^beta; ONNX's alpha is
    divided by the window size, so it is given alpha * size."""
    radius = op.int_attr("Radius", default=5)
    size = 2 * radius + 1
    attrs = {
        "size": size,
        "alpha": op.float_attr("Alpha", default=1.0) * size,
        "beta": op.float_attr("Beta", default=0.5),
        "bias": op.float_attr("Bias", default=1.0),
    }
    return Laid(ctx.b.op("LRN", [spatial(ctx, op)], attrs), NCHW)
