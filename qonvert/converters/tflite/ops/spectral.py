"""Spectra: RFFT2D and COMPLEX_ABS (an audio front end's |rfft|). ONNX has no complex tensors: a
complex64 source tensor is held as floats with a trailing axis of 2 (real, imaginary), as ONNX's DFT
writes it, and only COMPLEX_ABS may read one."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from ..layout import arg, out, rank_of
from .shape import constant_vector


def _dft(ctx: ConversionContext, x: ir.Value, length: int, axis: int, onesided: bool) -> ir.Value:
    """ONNX DFT along `axis` (zero-padded or cut to `length`); a later opset moved the axis to an input."""
    if ctx.b.opset >= first_opset("DFT", inputs=3):
        return ctx.b.op("DFT", [x, ctx.b.const(np.int64(length), "length"), ctx.b.const(np.int64(axis), "axis")], {"onesided": int(onesided)})
    return ctx.b.op("DFT", [x, ctx.b.const(np.int64(length), "length")], {"axis": axis, "onesided": int(onesided)})


@register("tflite", "RFFT2D", opset=first_opset("DFT"))
def rfft2d(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The 2-D FFT of a real signal over its last two axes, the last one onesided (fft_length
    pads with zeros or cuts, as ONNX's dft_length does)."""
    name = arg(op, 0)
    _check_complex_readers(ctx, op, out(op))
    height, width = constant_vector(ctx, op, 1, "fft_length", 2)
    rank = rank_of(ctx, name)
    signal = ctx.b.op("Unsqueeze", [ctx.laid_out(name or ""), ctx.b.ints([-1])])  # real: a trailing axis of 1
    rows = _dft(ctx, signal, width, rank - 1, onesided=True)
    return _dft(ctx, rows, height, rank - 2, onesided=False)


def _check_complex_readers(ctx: ConversionContext, op: SourceOp, name: str) -> None:
    """A complex tensor may be reshaped (RESHAPE keeps the trailing axis) and read by COMPLEX_ABS,
    nothing else (another op would read the real and imaginary axis as data)."""
    readers = [o for o in ctx.source.ops if name in o.inputs.get("in", [])[:1]]
    others = sorted({o.type for o in readers} - {"COMPLEX_ABS", "RESHAPE"})
    if name in ctx.source.outputs or others:
        raise InputError(f"op {op.label}: a complex tensor read by {', '.join(others) or 'the graph output'} (only RESHAPE, COMPLEX_ABS)")
    for reader in readers:
        if reader.type == "RESHAPE":
            _check_complex_readers(ctx, op, out(reader))


@register("tflite", "COMPLEX_ABS")
def complex_abs(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.reduce("ReduceL2", ctx.laid_out(arg(op, 0) or ""), [-1], False)
