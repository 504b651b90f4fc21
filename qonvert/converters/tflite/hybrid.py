"""LiteRT's hybrid (dynamic-range) kernels. A float input that meets an int8 weight in CONV_2D,
DEPTHWISE_CONV_2D or FULLY_CONNECTED is quantized to int8 on the fly, one scale per batch entry
(per row for FULLY_CONNECTED), and the op runs on those codes (tflite/kernels/conv.cc,
depthwise_conv.cc, fully_connected.cc; portable_tensor_utils.cc):

- asymmetric (DEPTHWISE_CONV_2D; CONV_2D with per-channel weights or groups; FULLY_CONNECTED with
  asymmetric_quantize_inputs): the range [min(0, min x), max(0, max x)] over 255 steps, computed in
  double; the zero point from whichever end has the smaller error, rounded; codes
  round(zp + x * (1 / scale)) in [-128, 127];
- symmetric (the others): scale max|x| / 127, codes round(x * (127 / max|x|)) in [-127, 127];
- an all-zero input gives codes 0. Rounding is half away from zero (std::round).

The graph computes the same codes in float, sums (code - zero point) * weight code as LiteRT does
(whole numbers: a float sum is exact below 2^24) and scales the sums as LiteRT's reference kernels
scale their int32 accumulators, in their order ((acc * w) * s for a per-channel CONV_2D, acc * (s
* w) otherwise), before the float bias (ops/conv.py `_hybrid`). Against LiteRT's own kernels that
is exact op by op; XNNPACK, LiteRT's default delegate, quantizes on the fly its own way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from ..context import ConversionContext
from ..source import SourceOp
from .layout import arg


def hybrid_mode(ctx: ConversionContext, op: SourceOp, groups: int = 1) -> str | None:
    """ "asymmetric" or "symmetric" where LiteRT runs the op as a hybrid kernel, else None."""
    weight = ctx.source.quant.get(arg(op, 1) or "")
    if arg(op, 0) in ctx.source.quant or weight is None or weight.dtype != "int8" or ctx.array(arg(op, 1)) is None:
        return None
    if op.type == "FULLY_CONNECTED":
        return "asymmetric" if op.attr("AsymmetricQuantizeInputs", default=False) else "symmetric"
    per_channel = weight.scale.size > 1 and np.any(weight.scale != weight.scale.ravel()[0])
    return "asymmetric" if op.type == "DEPTHWISE_CONV_2D" or per_channel or groups != 1 else "symmetric"


def _round_away(ctx: ConversionContext, x: ir.Value, dtype: type = np.float32) -> ir.Value:
    half = ctx.b.const(np.asarray(0.5, dtype=dtype), "half")
    return ctx.b.op("Mul", [ctx.b.op("Sign", [x]), ctx.b.op("Floor", [ctx.b.op("Add", [ctx.b.op("Abs", [x]), half])])])


def _clip(ctx: ConversionContext, x: ir.Value, lo: float, hi: float, dtype: type = np.float32) -> ir.Value:
    return ctx.b.op("Clip", [x, ctx.b.const(np.asarray(lo, dtype), "lo"), ctx.b.const(np.asarray(hi, dtype), "hi")])


def hybrid_codes(ctx: ConversionContext, x: ir.Value, axes: Sequence[int], mode: str) -> tuple[ir.Value, ir.Value]:
    """`x` as the hybrid kernel quantizes it, one scale per entry of the axes it keeps: the codes
    less their zero point (whole numbers, as floats) and the scale (float32, reduced axes kept)."""
    b = ctx.b
    low, high = b.reduce("ReduceMin", x, axes, True), b.reduce("ReduceMax", x, axes, True)
    zero, one = b.const(np.float32(0.0), "zero"), b.const(np.float32(1.0), "one")
    if mode == "symmetric":
        extent = b.op("Max", [b.op("Abs", [low]), b.op("Abs", [high])])
        extent = b.op("Where", [b.op("Equal", [extent, zero]), one, extent])  # all zero: codes 0 either way
        steps = b.const(np.float32(127.0), "steps")
        codes = _clip(ctx, _round_away(ctx, b.op("Mul", [x, b.op("Div", [steps, extent])])), -127.0, 127.0)
        return codes, b.op("Div", [extent, steps])
    rmin = b.op("Cast", [b.op("Min", [low, zero])], {"to": ir.DataType.DOUBLE})
    rmax = b.op("Cast", [b.op("Max", [high, zero])], {"to": ir.DataType.DOUBLE})
    empty = b.op("Equal", [rmin, rmax])
    span = b.op("Where", [empty, b.const(np.float64(255.0), "span"), b.op("Sub", [rmax, rmin])])
    scale = b.op("Div", [span, b.const(np.float64(255.0), "steps")])
    from_min, from_max = b.op("Div", [rmin, scale]), b.op("Div", [rmax, scale])
    err_min = b.op("Add", [b.const(np.float64(128.0), "qmin"), b.op("Abs", [from_min])])
    err_max = b.op("Add", [b.const(np.float64(127.0), "qmax"), b.op("Abs", [from_max])])
    zp_min = b.op("Sub", [b.const(np.float64(-128.0), "lo"), from_min])
    zp_max = b.op("Sub", [b.const(np.float64(127.0), "hi"), from_max])
    chosen = b.op("Where", [b.op("Less", [err_min, err_max]), zp_min, zp_max])
    zp = _clip(ctx, _round_away(ctx, chosen, np.float64), -128.0, 127.0, np.float64)
    zp = b.op("Cast", [b.op("Where", [empty, b.const(np.float64(0.0), "none"), zp])], {"to": ir.DataType.FLOAT})
    scale = b.op("Cast", [scale], {"to": ir.DataType.FLOAT})
    codes = _clip(ctx, _round_away(ctx, b.op("Add", [zp, b.op("Mul", [x, b.op("Div", [one, scale])])])), -128.0, 127.0)
    return b.op("Sub", [codes, zp]), scale
