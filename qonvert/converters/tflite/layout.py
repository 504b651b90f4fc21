"""TFLite's NHWC activations held NCHW inside the ONNX graph, padding, fused activations.

A 4-D activation produced by a layout-sensitive op (conv, pool, resize) is held as
transpose(x, NCHW); ctx.perms records it and ctx.laid_out gives any other layout. Elementwise
ops run in whatever layout their runtime inputs are held in, so a network of convs, adds and
activations carries no Transpose at all; ops that move axes remap their axes instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from ...errors import InputError
from ..context import ConversionContext, Laid
from ..source import SourceOp

NCHW = (0, 3, 1, 2)  # ONNX holds a source NHWC tensor x as transpose(x, NCHW)


def arg(op: SourceOp, index: int) -> str | None:
    """The op's positional input `index`, None where absent or optional and left out."""
    names = op.inputs.get("in") or []
    return names[index] or None if index < len(names) else None


def out(op: SourceOp, index: int = 0) -> str:
    names = op.outputs.get("out") or []
    if index >= len(names):
        raise InputError(f"op {op.label}: has no output {index}")
    return names[index]


def axis_in(axis: int, rank: int) -> int:
    """`axis` (negative from the end) as a position in a rank-`rank` tensor, checked."""
    if not -rank <= axis < rank:
        raise InputError(f"axis {axis} is outside a tensor of rank {rank}")
    return axis % rank


def declared_shape(ctx: ConversionContext, op: SourceOp, index: int, rank: int, what: str) -> tuple[int, ...]:
    """The shape the file declares for the op's input `index`, of `rank` dims: what the mappers
    index (a filter's OHWI, an input's channels) is checked against the file first."""
    name = arg(op, index)
    shape = ctx.shape(name)
    if shape is None or len(shape) != rank:
        declared = "no shape" if shape is None else f"shape {list(shape)}"
        raise InputError(f"op {op.label}: {what} {name!r} has {declared}, expected {rank} dimensions")
    return shape


def rank_of(ctx: ConversionContext, name: str | None) -> int:
    shape = ctx.shape(name)
    if shape is None:
        raise InputError(f"tensor {name!r}: rank unknown")
    return len(shape)


def held(ctx: ConversionContext, name: str | None) -> tuple[int, ...] | None:
    return ctx.perms.get(name or "")


def as_held(ctx: ConversionContext, name: str | None) -> tuple[ir.Value, tuple[int, ...] | None]:
    """The tensor's value as it is held, and how (ops that do not care about layout)."""
    return ctx.value(name), held(ctx, name)


def spatial(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The op's first input in NCHW."""
    name = arg(op, 0)
    if rank_of(ctx, name) != 4:
        raise InputError(f"op {op.label}: expected a 4-D NHWC input")
    return ctx.laid_out(name or "", NCHW)


def operands(ctx: ConversionContext, names: Sequence[str | None]) -> tuple[list[ir.Value], tuple[int, ...] | None]:
    """Inputs of an elementwise (broadcasting) op, all in one layout: the held layout of its
    4-D runtime inputs when one is held NCHW, else the source layout. Lower-rank operands are
    given leading 1s (numpy broadcasting) and transposed the same way."""
    ranks = [rank_of(ctx, n) for n in names]
    perm = next((held(ctx, n) for n in names if held(ctx, n) is not None), None)
    if perm is None or max(ranks) != len(perm):
        return [ctx.laid_out(n or "") for n in names], None
    values = []
    for n, r in zip(names, ranks, strict=True):
        if r == len(perm):
            values.append(ctx.laid_out(n or "", perm))
            continue
        shape = ctx.shape(n) or ()
        if any(d < 0 for d in shape):
            raise InputError(f"tensor {n!r}: broadcasting a dynamic {list(shape)} against an NHWC tensor")
        full = (1,) * (len(perm) - r) + tuple(shape)
        v = ctx.b.op("Reshape", [ctx.value(n), ctx.b.ints(full)]) if r else ctx.value(n)
        values.append(ctx.b.op("Transpose", [v], {"perm": list(perm)}) if r and max(full) > 1 else v)
    return values, perm


def same_pads(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding: the total split with the extra pixel at the end (= ONNX SAME_UPPER)."""
    out_size = (in_size + stride - 1) // stride
    total = max((out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    return total // 2, total - total // 2


def conv_pads(ctx: ConversionContext, op: SourceOp, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> dict[str, Any]:
    """ONNX pads for the op's Padding option (0 SAME, 1 VALID), explicit where sizes are known."""
    padding = op.attr("Padding", default=1)
    if padding == 1:
        return {"pads": [0, 0, 0, 0]}
    shape = ctx.shape(arg(op, 0)) or ()
    if len(shape) != 4 or min(shape[1:3]) < 0:
        return {"auto_pad": "SAME_UPPER"}
    (t, b), (left, r) = (same_pads(shape[1 + i], kernel[i], strides[i], dilations[i]) for i in range(2))
    return {"pads": [t, left, b, r]}


def clip(ctx: ConversionContext, y: ir.Value, lo: float, hi: float) -> ir.Value:
    """RELU6 / RELU_N1_TO_1, standalone or fused."""
    return ctx.b.op("Clip", [y, ctx.b.const(np.float32(lo), "lo"), ctx.b.const(np.float32(hi), "hi")])


# FusedActivationFunction: 0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6, 4 TANH, 5 SIGN_BIT
def fused_activation(ctx: ConversionContext, op: SourceOp, y: ir.Value) -> ir.Value:
    act = op.attr("FusedActivationFunction", default=0)
    if act == 0:
        return y
    if act == 1:
        return ctx.b.op("Relu", [y])
    if act in (2, 3):
        return clip(ctx, y, *((-1.0, 1.0) if act == 2 else (0.0, 6.0)))
    if act == 4:
        return ctx.b.op("Tanh", [y])
    raise InputError(f"op {op.label}: fused activation {act} is not supported")


def finish(ctx: ConversionContext, op: SourceOp, y: ir.Value, perm: tuple[int, ...] | None) -> Laid:
    """The op's output after its fused activation, held in `perm`."""
    return Laid(fused_activation(ctx, op, y), perm)


def remap_axis(axis: int, rank: int, perm: tuple[int, ...] | None) -> int:
    """Where source axis `axis` sits in a value held transposed by `perm`."""
    axis = axis_in(axis, rank)
    return perm.index(axis) if perm is not None else axis
