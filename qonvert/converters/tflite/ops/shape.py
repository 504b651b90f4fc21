"""Data movement: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, CONCATENATION, SPLIT(_V), (STRIDED_)SLICE,
PAD(V2), GATHER, SHAPE, PACK, UNPACK, CAST. Ops that keep the rank run in the held layout
with their axes remapped; ops that change the rank run in the source (NHWC) layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import QuantParams
from ...context import NP_TO_IR, ConversionContext, Laid
from ...registry import register
from ...source import MAX_CONST_INTS, SourceOp
from ..layout import arg, as_held, axis_in, finish, held, operands, out, rank_of, remap_axis

_INT_MAX = 2**63 - 1


def constant_ints(ctx: ConversionContext, op: SourceOp, index: int, what: str) -> np.ndarray:
    name = arg(op, index)
    values = ctx.const_ints(name, op, what)  # integers only: a float or NaN entry is the file's
    if values is None:
        raise InputError(f"op {op.label}: {what} is not a constant")
    data = ctx.array(name)
    return np.asarray(values, np.int64).reshape(data.shape if data is not None else (-1,))


def constant_vector(ctx: ConversionContext, op: SourceOp, index: int, what: str, length: int | None = None) -> list[int]:
    """A constant operand of one dimension (or a scalar) as ints, of `length` entries if given:
    its shape checked before a mapper indexes or iterates it."""
    data = constant_ints(ctx, op, index, what)
    if data.ndim > 1 or (length is not None and data.size != length):
        wanted = f"{length} entries" if length is not None else "a vector"
        raise InputError(f"op {op.label}: {what} has shape {list(data.shape)}, expected {wanted}")
    return [int(v) for v in data.ravel()]


def constant_int(ctx: ConversionContext, op: SourceOp, index: int, what: str) -> int:
    """A constant operand holding one integer (a scalar or a 1-entry vector)."""
    data = constant_ints(ctx, op, index, what)
    if data.size != 1:
        raise InputError(f"op {op.label}: {what} has shape {list(data.shape)}, expected one integer")
    return int(data.ravel()[0])


def shape_input(ctx: ConversionContext, op: SourceOp, index: int) -> ir.Value:
    """A shape operand as int64: a constant, or a run-time tensor (SHAPE -> ... -> PACK) cast."""
    values = ctx.const_ints(arg(op, index), op, "shape")  # a float or NaN entry is the file's
    if values is not None:
        return ctx.b.ints(values)
    declared = ctx.shape(arg(op, index)) or ()
    if any(d > MAX_CONST_INTS for d in declared):  # a rank of 2^31: ONNX's shape inference would build it
        raise InputError(f"op {op.label}: shape operand {arg(op, index)!r} declares {list(declared)} entries")
    return ctx.b.op("Cast", [ctx.laid_out(arg(op, index) or "")], {"to": ir.DataType.INT64})


@register("tflite", "RESHAPE")
def reshape(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = ctx.laid_out(arg(op, 0) or "")
    if arg(op, 1) is not None:
        target = shape_input(ctx, op, 1)
    else:
        target = ctx.b.ints(op.attr("NewShape", default=None) or list(ctx.shape(out(op)) or ()))
    if ctx.source.dtypes.get(arg(op, 0) or "") == "complex64":  # held with a trailing (real, imaginary) axis
        target = ctx.b.op("Concat", [target, ctx.b.ints([2])], {"axis": 0})
    return ctx.b.op("Reshape", [x, target])


@register("tflite", "SQUEEZE")
def squeeze(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = ctx.laid_out(arg(op, 0) or "")
    shape = ctx.shape(arg(op, 0)) or ()
    dims = op.ints_attr("SqueezeDims", default=[], low=-len(shape), high=len(shape) - 1) if shape else op.ints_attr("SqueezeDims", default=[])
    if not dims:
        dims = [i for i, d in enumerate(shape) if d == 1]
    if shape and any(shape[d] not in (1, -1) for d in dims):
        raise InputError(f"op {op.label}: squeezes dims {dims} of shape {list(shape)}, not all of size 1")
    return ctx.b.op("Squeeze", [x, ctx.b.ints(dims)])


@register("tflite", "EXPAND_DIMS")
def expand_dims(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    axis = constant_int(ctx, op, 1, "axis")
    rank = rank_of(ctx, arg(op, 0))
    return ctx.b.op("Unsqueeze", [ctx.laid_out(arg(op, 0) or ""), ctx.b.ints([axis_in(axis, rank + 1)])])


@register("tflite", "TRANSPOSE")
def transpose(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The source tensor transposed by perm is a layout of it: laid_out composes with how it is held."""
    perm = constant_vector(ctx, op, 1, "perm")
    return ctx.laid_out(arg(op, 0) or "", perm)


@register("tflite", "CONCATENATION")
def concatenation(ctx: ConversionContext, op: SourceOp) -> Laid:
    names = op.variadic("in")
    values, perm = operands(ctx, names)  # inputs of one rank: all in the first one's held layout
    axis = remap_axis(op.int_attr("Axis", default=0), rank_of(ctx, names[0]), perm)
    return finish(ctx, op, ctx.b.op("Concat", values, {"axis": axis}), perm)


def _split(ctx: ConversionContext, op: SourceOp, name: str, axis: int, sizes: list[int]) -> list[Laid]:
    x, perm = as_held(ctx, name)
    rank = rank_of(ctx, name)
    parts = ctx.b.op("Split", [x, ctx.b.ints(sizes)], {"axis": remap_axis(axis, rank, perm)}, outputs=len(sizes))
    return [Laid(p, perm) for p in (parts if len(sizes) > 1 else (parts,))]


@register("tflite", "SPLIT")
def split(ctx: ConversionContext, op: SourceOp) -> list[Laid]:
    """Inputs: axis, x; NumSplits equal parts."""
    name = arg(op, 1) or ""
    shape = ctx.shape(name) or ()
    axis = axis_in(constant_int(ctx, op, 0, "axis"), len(shape))
    n = op.int_attr("NumSplits", default=len(op.outputs["out"]), low=1)
    length = shape[axis]
    if length < 0 or length % n:
        raise InputError(f"op {op.label}: cannot split length {length} in {n}")
    return _split(ctx, op, name, axis, [length // n] * n)


@register("tflite", "SPLIT_V")
def split_v(ctx: ConversionContext, op: SourceOp) -> list[Laid]:
    """Inputs: x, size_splits (one may be -1), axis."""
    name = arg(op, 0) or ""
    sizes = constant_vector(ctx, op, 1, "size_splits")
    axis = constant_int(ctx, op, 2, "axis")
    if -1 in sizes:
        length = (ctx.shape(name) or ())[axis_in(axis, rank_of(ctx, name))]
        sizes[sizes.index(-1)] = length - sum(s for s in sizes if s != -1)
    return _split(ctx, op, name, axis, sizes)


def _check_slice(ctx: ConversionContext, op: SourceOp, name: str, *bounds: list[int]) -> None:
    """One begin, end (and stride) per axis of the input, at most: what _slice indexes."""
    rank = rank_of(ctx, name)
    if len({len(b) for b in bounds}) != 1 or len(bounds[0]) > rank:
        raise InputError(f"op {op.label}: {'/'.join(str(len(b)) for b in bounds)} slice bounds for an input of rank {rank}")


def _slice(ctx: ConversionContext, name: str, begin: list[int], end: list[int], steps: list[int], shrink: list[int]) -> Any:
    """Slice every source axis (in the held layout), then squeeze the `shrink` axes (source layout)."""
    rank = len(begin)
    perm = held(ctx, name) if not shrink else None
    axes = [remap_axis(a, rank, perm) for a in range(rank)]
    x = ctx.laid_out(name, perm)
    y = ctx.b.op("Slice", [x, ctx.b.ints(begin), ctx.b.ints(end), ctx.b.ints(axes), ctx.b.ints(steps)])
    if shrink:
        y = ctx.b.op("Squeeze", [y, ctx.b.ints(shrink)])
    return Laid(y, perm)


@register("tflite", "STRIDED_SLICE")
def strided_slice(ctx: ConversionContext, op: SourceOp) -> Any:
    name = arg(op, 0) or ""
    begin, end, steps = (constant_vector(ctx, op, i, what) for i, what in ((1, "begin"), (2, "end"), (3, "strides")))
    _check_slice(ctx, op, name, begin, end, steps)
    if op.attr("EllipsisMask", default=0) or op.attr("NewAxisMask", default=0):
        raise InputError(f"op {op.label}: ellipsis and new-axis masks are not supported")
    if op.attr("Offset", default=False):
        end = [b + e for b, e in zip(begin, end, strict=True)]
    bmask, emask, smask = (op.attr(k, default=0) for k in ("BeginMask", "EndMask", "ShrinkAxisMask"))
    shrink = []
    for i, step in enumerate(steps):
        if bmask >> i & 1:
            begin[i] = 0 if step > 0 else _INT_MAX
        if emask >> i & 1:
            end[i] = _INT_MAX if step > 0 else -_INT_MAX
        if smask >> i & 1:
            end[i] = begin[i] + 1 if begin[i] != -1 else _INT_MAX
            steps[i] = 1
            shrink.append(i)
    return _slice(ctx, name, begin, end, steps, shrink)


@register("tflite", "SLICE")
def slice_(ctx: ConversionContext, op: SourceOp) -> Any:
    begin = constant_vector(ctx, op, 1, "begin")
    size = constant_vector(ctx, op, 2, "size")
    _check_slice(ctx, op, arg(op, 0) or "", begin, size)
    end = [_INT_MAX if s == -1 else b + s for b, s in zip(begin, size, strict=True)]
    return _slice(ctx, arg(op, 0) or "", begin, end, [1] * len(begin), [])


@register("tflite", "PAD", "PADV2")
def pad(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0) or ""
    raw = constant_ints(ctx, op, 1, "paddings")
    rank = rank_of(ctx, name)
    # TFLite pads are [rank, 2] and non-negative; ONNX's native shape inference aborts the whole
    # process on some others, so nothing else gets that far.
    if raw.size != 2 * rank or raw.min(initial=0) < 0 or raw.max(initial=0) >= 1 << 31:
        raise InputError(f"op {op.label}: paddings {raw.ravel().tolist()[:16]} are not [{rank}, 2] non-negative sizes")
    pads = raw.reshape(-1, 2)
    x, perm = as_held(ctx, name)
    order = list(perm) if perm else list(range(len(pads)))
    onnx_pads = [int(pads[a, 0]) for a in order] + [int(pads[a, 1]) for a in order]
    inputs = [x, ctx.b.ints(onnx_pads)]
    value = ctx.float_array(arg(op, 2))
    if value is not None:
        inputs.append(ctx.b.const(np.float32(np.ravel(value)[0]), "pad_value"))
    elif name in ctx.source.quant:  # TFLite pads a quantized tensor with its zero point, i.e. real 0
        inputs.append(ctx.b.const(np.float32(0.0), "pad_value"))
    return Laid(ctx.b.op("Pad", inputs), perm)


@register("tflite", "GATHER")
def gather(ctx: ConversionContext, op: SourceOp) -> Laid:
    name = arg(op, 0) or ""
    if op.attr("BatchDims", default=0):
        raise InputError(f"op {op.label}: batch_dims is not supported")
    rank = rank_of(ctx, name)
    indices = arg(op, 1)
    idx_rank = rank_of(ctx, indices)
    perm = held(ctx, name) if idx_rank == 1 else None  # a 1-D index keeps the rank: stay in the held layout
    axis = remap_axis(op.int_attr("Axis", default=0), rank, perm)
    data = ctx.array(indices)
    if data is not None and data.dtype.kind not in "iu":
        raise InputError(f"op {op.label}: indices {indices!r} are {data.dtype}: GATHER takes integer indices")
    idx = ctx.b.ints(np.ravel(data).tolist()) if data is not None and idx_rank == 1 else ctx.laid_out(indices or "")
    return Laid(ctx.b.op("Gather", [ctx.laid_out(name, perm), idx], {"axis": axis}), perm)


@register("tflite", "SHAPE")
def shape(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """The source shape: the held value's shape gathered back into source order."""
    name = arg(op, 0) or ""
    perm = held(ctx, name)
    s = ctx.b.op("Shape", [ctx.value(name)])
    if perm:
        s = ctx.b.op("Gather", [s, ctx.b.ints([perm.index(i) for i in range(len(perm))])], {"axis": 0})
    return cast_to_source(ctx, s, out(op))


def cast_to_source(ctx: ConversionContext, value: ir.Value, name: str, produced: str | None = None) -> ir.Value:
    """A cast to the source tensor's dtype (none where `value` is `produced` in it already); an
    integer tensor of a quantized model stays real."""
    if name in ctx.source.quant:
        return value
    dtype = ctx.source.dtypes.get(name, "float32")
    return value if dtype == produced else ctx.b.op("Cast", [value], {"to": NP_TO_IR[dtype]})


@register("tflite", "PACK")
def pack(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    names = op.variadic("in")
    axis = axis_in(op.int_attr("Axis", default=0), rank_of(ctx, names[0]) + 1)
    parts = [ctx.b.op("Unsqueeze", [ctx.laid_out(n), ctx.b.ints([axis])]) for n in names]
    return ctx.b.op("Concat", parts, {"axis": axis})


@register("tflite", "UNPACK")
def unpack(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    name = arg(op, 0) or ""
    axis = axis_in(op.int_attr("Axis", default=0), rank_of(ctx, name))
    n = len(op.outputs.get("out", []))
    length = (ctx.shape(name) or ())[axis]
    if n < 1 or (length >= 0 and length != n):
        raise InputError(f"op {op.label}: {n} outputs for an axis of {length}")
    parts = ctx.b.op("Split", [ctx.laid_out(name), ctx.b.ints([1] * n)], {"axis": axis}, outputs=n)
    parts = parts if n > 1 else (parts,)
    return [ctx.b.op("Squeeze", [p, ctx.b.ints([axis])]) for p in parts]


@register("tflite", "CAST")
def cast(ctx: ConversionContext, op: SourceOp) -> Laid:
    x, perm = as_held(ctx, arg(op, 0))
    return Laid(cast_to_source(ctx, x, out(op)), perm)


def held_dtype(ctx: ConversionContext, name: str | None) -> np.dtype:
    """The dtype a source tensor has in the ONNX graph: a quantized one is real (float32) there."""
    return np.dtype("float32" if name in ctx.source.quant else ctx.source.dtypes.get(name or "", "float32"))


def as_int64(ctx: ConversionContext, name: str | None) -> ir.Value:
    """An index or id operand in the source layout, as the int64 ONNX's indexing ops take."""
    return ctx.b.op("Cast", [ctx.laid_out(name or "")], {"to": ir.DataType.INT64})


def code_steps(ctx: ConversionContext, value: ir.Value, qp: QuantParams) -> ir.Value:
    """A dequantized per-tensor value's code less its zero point, recovered exactly (as floats)."""
    return ctx.b.op("Round", [ctx.b.op("Div", [value, ctx.b.const(np.float32(qp.scale), "scale")])])


def codes_as_output(ctx: ConversionContext, name: str, output: str) -> ir.Value:
    """LiteRT's quantized ONE_HOT and SPARSE_TO_DENSE copy their value operands' codes into the
    output, whose quantization may differ: the reals they give are those codes read in the
    output's quantization."""
    given, written = ctx.source.quant.get(name), ctx.source.quant.get(output)
    value = ctx.laid_out(name)
    if given is None or written is None or given.same_as(written):
        return value
    moved = ctx.b.const(np.float32(int(given.zero_point) - int(written.zero_point)), "zero_points")
    shifted = ctx.b.op("Add", [code_steps(ctx, value, given), moved])
    return ctx.b.op("Mul", [shifted, ctx.b.const(np.float32(written.scale), "scale")])
