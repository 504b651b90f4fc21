"""QUANTIZE and DEQUANTIZE. Values are held real (dequantized) and every integer tensor gets its
Q -> DQ where it is bound, so QUANTIZE (float -> int, or int -> int requantisation) passes its
real input on to be quantized at its output's parameters, and DEQUANTIZE passes it on unquantized."""

from __future__ import annotations

import onnx_ir as ir

from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import arg, as_held


@register("tflite", "QUANTIZE", "DEQUANTIZE")
def requantize(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    if x.dtype == ir.DataType.FLOAT16:  # fp16 weights of a float16-quantized model
        x = ctx.b.op("Cast", [x], {"to": ir.DataType.FLOAT})
    return Laid(ctx.b.op("Identity", [x]), perm)
