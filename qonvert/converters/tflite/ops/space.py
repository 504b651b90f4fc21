"""Moving blocks between space, depth and batch, and repeating: DEPTH_TO_SPACE, SPACE_TO_DEPTH,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND, MIRROR_PAD, TILE. Pure data movement on the dequantized
values between the source's Q/DQ: exact."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp, check_built
from ..layout import NCHW, arg, as_held, rank_of, remap_axis, spatial
from .shape import constant_ints, constant_vector


@register("tflite", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH")
def depth_space(ctx: ConversionContext, op: SourceOp) -> Laid:
    """TFLite's channel order (i * block + j) * C + c is ONNX's DCR order."""
    block = op.int_attr("BlockSize", default=0)
    if block < 1:
        raise InputError(f"op {op.label}: block size {block}")
    x = spatial(ctx, op)
    if op.type == "DEPTH_TO_SPACE":
        return Laid(ctx.b.op("DepthToSpace", [x], {"blocksize": block, "mode": "DCR"}), NCHW)
    return Laid(ctx.b.op("SpaceToDepth", [x], {"blocksize": block}), NCHW)


def _static_nhwc(ctx: ConversionContext, op: SourceOp) -> tuple[int, ...]:
    shape = ctx.shape(arg(op, 0)) or ()
    if len(shape) != 4 or min(shape) < 1:
        raise InputError(f"op {op.label}: needs a static 4-D NHWC input, got {list(shape)}")
    return shape


def _block(ctx: ConversionContext, op: SourceOp, what: str) -> tuple[int, int, np.ndarray]:
    """The 2-D block shape and the [2, 2] paddings or crops, checked."""
    block = np.asarray(constant_vector(ctx, op, 1, "block shape"), np.int64)
    edges = constant_ints(ctx, op, 2, what)
    if block.size != 2 or min(block) < 1 or edges.size != 4 or edges.min() < 0:
        raise InputError(f"op {op.label}: expected a 2-D block shape >= 1 and 2x2 {what} >= 0, got {block.tolist()} and {edges.tolist()}")
    return int(block[0]), int(block[1]), edges.reshape(2, 2)


@register("tflite", "SPACE_TO_BATCH_ND")
def space_to_batch(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """Pad H and W (with real 0: TFLite pads a quantized tensor with its zero point), then move each
    (i, j) offset of a block into the batch: out[(i * bw + j) * N + n, h, w, c] = x[n, h*bh+i, w*bw+j, c]."""
    n, h, w, c = _static_nhwc(ctx, op)
    bh, bw, pads = _block(ctx, op, "paddings")
    hp, wp = h + int(pads[0].sum()), w + int(pads[1].sum())
    if hp % bh or wp % bw:
        raise InputError(f"op {op.label}: padded size {hp}x{wp} is not a multiple of block {bh}x{bw}")
    x = ctx.laid_out(arg(op, 0) or "")
    onnx_pads = [0, int(pads[0, 0]), int(pads[1, 0]), 0, 0, int(pads[0, 1]), int(pads[1, 1]), 0]
    x = ctx.b.op("Pad", [x, ctx.b.ints(onnx_pads), ctx.b.const(np.float32(0.0), "pad_value")])
    x = ctx.b.op("Reshape", [x, ctx.b.ints([n, hp // bh, bh, wp // bw, bw, c])])
    x = ctx.b.op("Transpose", [x], {"perm": [2, 4, 0, 1, 3, 5]})
    return ctx.b.op("Reshape", [x, ctx.b.ints([bh * bw * n, hp // bh, wp // bw, c])])


@register("tflite", "BATCH_TO_SPACE_ND")
def batch_to_space(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The inverse of SPACE_TO_BATCH_ND, then crop."""
    n, h, w, c = _static_nhwc(ctx, op)
    bh, bw, crops = _block(ctx, op, "crops")
    if n % (bh * bw) or crops[0].sum() >= h * bh or crops[1].sum() >= w * bw:
        raise InputError(f"op {op.label}: batch {n} and crops {crops.tolist()} do not fit block {bh}x{bw} of {h}x{w}")
    x = ctx.laid_out(arg(op, 0) or "")
    x = ctx.b.op("Reshape", [x, ctx.b.ints([bh, bw, n // (bh * bw), h, w, c])])
    x = ctx.b.op("Transpose", [x], {"perm": [2, 3, 0, 4, 1, 5]})
    x = ctx.b.op("Reshape", [x, ctx.b.ints([n // (bh * bw), h * bh, w * bw, c])])
    begin = [int(crops[0, 0]), int(crops[1, 0])]
    end = [h * bh - int(crops[0, 1]), w * bw - int(crops[1, 1])]
    return ctx.b.op("Slice", [x, ctx.b.ints(begin), ctx.b.ints(end), ctx.b.ints([1, 2])])


@register("tflite", "MIRROR_PAD")
def mirror_pad(ctx: ConversionContext, op: SourceOp) -> Laid:
    """REFLECT (mode 0) leaves the edge out of the mirror, SYMMETRIC (1) repeats it. ONNX Pad has
    no symmetric mode, so each padded axis is its mirrored rows gathered on either side (Concat)."""
    name = arg(op, 0) or ""
    shape = ctx.shape(name) or ()
    pads = constant_ints(ctx, op, 1, "paddings")
    if pads.size != 2 * len(shape):
        raise InputError(f"op {op.label}: {pads.size} padding values for a rank-{len(shape)} input")
    pads = pads.reshape(-1, 2)
    symmetric = op.int_attr("Mode", default=0) == 1
    x, perm = as_held(ctx, name)
    for axis, (before, after) in enumerate(pads.tolist()):
        if not before and not after:
            continue
        size = shape[axis]
        limit = size if symmetric else size - 1
        if size < 1 or before > limit or after > limit or min(before, after) < 0:
            raise InputError(f"op {op.label}: padding {before, after} does not fit axis {axis} of length {size}")
        shift = 0 if symmetric else 1
        check_built((before + after,), f"op {op.label}: mirrored indices")
        onnx_axis = remap_axis(axis, len(shape), perm)
        # only the mirrored rows are gathered, their indices numpy ranges (an index over the whole
        # axis cost 800 MB for a corrupt file's 15M entries; a Python list of 2^24 of them, 1.8 GB)
        head = [ctx.b.op("Gather", [x, ctx.b.ints(before - 1 + shift - np.arange(before))], {"axis": onnx_axis})] if before else []
        tail = [ctx.b.op("Gather", [x, ctx.b.ints(size - 1 - shift - np.arange(after))], {"axis": onnx_axis})] if after else []
        x = ctx.b.op("Concat", [*head, x, *tail], {"axis": onnx_axis})
    return Laid(x, perm)


@register("tflite", "TILE")
def tile(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0) or ""
    repeats = constant_vector(ctx, op, 1, "multiples")
    x, perm = as_held(ctx, name)
    order = list(perm) if perm else list(range(rank_of(ctx, name)))
    if len(repeats) != len(order):
        raise InputError(f"op {op.label}: {len(repeats)} multiples for an input of rank {len(order)}")
    return Laid(ctx.b.op("Tile", [x, ctx.b.ints([repeats[a] for a in order])]), perm)
