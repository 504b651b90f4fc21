"""Layout and shape ops: reshape, transpose, flatten, squeeze/unsqueeze, concat, split, slice,
shape, fill_constant/full, interpolation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp, check_built

_NUMERIC = {ir.DataType.BOOL, ir.DataType.BFLOAT16, ir.DataType.FLOAT16, ir.DataType.FLOAT, ir.DataType.DOUBLE}
_NUMERIC |= {getattr(ir.DataType, f"{sign}INT{bits}") for sign in ("", "U") for bits in (8, 16, 32, 64)}
_FILL_DTYPES = {0: np.bool_, 2: np.int32, 3: np.int64, 5: np.float32, 6: np.float64, 21: np.int8, 20: np.uint8}


def _const_list(ctx: ConversionContext, op: SourceOp, slot: str, *attr_names: str) -> list[int] | None:
    """An int list given either as a constant input tensor (PIR, ShapeTensor) or an attribute."""
    names = op.inputs.get(slot) or []
    if names:
        parts = [ctx.const_ints(n, op, slot) for n in names]
        if any(p is None for p in parts):
            raise InputError(f"op {op.label}: {slot} is computed at run time; only constants are supported")
        return [v for p in parts for v in p or []]
    if op.attr(*attr_names, default=None) is None:
        return None
    return op.ints_attr(*attr_names, default=None, scalar=True)


def _runtime_ints(ctx: ConversionContext, op: SourceOp, slot: str) -> ir.Value | None:
    """An int list input of 1-element tensors, some computed at run time (Paddle's
    shape -> slice -> reshape2 of a dynamic batch), as one int64 1-D value; None where absent."""
    names = op.inputs.get(slot) or []
    if not names:
        return None
    parts = []
    for n in names:
        data = ctx.const_ints(n, op, slot)
        if data is not None:
            parts.append(ctx.b.ints(data))
            continue
        part = ctx.b.op("Cast", [ctx.value(n)], {"to": ir.DataType.INT64})
        parts.append(ctx.b.op("Reshape", [part, ctx.b.ints([-1])]))
    return parts[0] if len(parts) == 1 else ctx.b.op("Concat", parts, {"axis": 0})


@register("paddle", "reshape2", "reshape")
def reshape(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = ctx.input(op, "X")
    if any(ctx.array(n) is None for slot in ("ShapeTensor", "Shape") for n in op.inputs.get(slot) or []):
        target = _runtime_ints(ctx, op, "ShapeTensor") or _runtime_ints(ctx, op, "Shape")
        if target is None:
            raise InputError(f"op {op.label}: a run-time shape that is neither ShapeTensor nor Shape")
        return ctx.b.op("Reshape", [x, target])
    shape = _const_list(ctx, op, "ShapeTensor", "shape") or _const_list(ctx, op, "Shape")
    if shape is None:
        raise InputError(f"op {op.label}: no target shape")
    return ctx.b.op("Reshape", [x, ctx.b.ints(shape, "shape")])


@register("paddle", "transpose2", "transpose")
def transpose(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Transpose", [ctx.input(op, "X")], {"perm": op.ints_attr("axis", "perm", default=None)})


@register("paddle", "flatten_contiguous_range", "flatten")
def flatten(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    rank = ctx.rank(op, "X")
    start = op.int_attr("start_axis", default=1) % max(rank, 1)
    stop = op.int_attr("stop_axis", default=-1) % max(rank, 1)
    shape = [0] * start + [-1] + [0] * (rank - stop - 1)
    return ctx.b.op("Reshape", [ctx.input(op, "X"), ctx.b.ints(shape, "shape")])


@register("paddle", "squeeze2", "squeeze")
def squeeze(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    axes = _const_list(ctx, op, "AxesTensor", "axes")
    x = ctx.input(op, "X")
    if not axes:
        return ctx.b.op("Squeeze", [x])
    shape = ctx.shape(op.input("X"))
    if shape is not None:  # Paddle ignores axes whose size is not 1
        if any(not -len(shape) <= a < len(shape) for a in axes):
            raise InputError(f"op {op.label}: axes {axes} out of range for an input of rank {len(shape)}")
        axes = [a for a in axes if shape[a] in (1, -1)]
    return ctx.b.op("Squeeze", [x, ctx.b.ints(axes, "axes")]) if axes else ctx.b.op("Identity", [x])


@register("paddle", "unsqueeze2", "unsqueeze")
def unsqueeze(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    axes = _const_list(ctx, op, "AxesTensor", "axes")
    return ctx.b.op("Unsqueeze", [ctx.input(op, "X"), ctx.b.ints(axes or [], "axes")])


@register("paddle", "concat")
def concat(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    axis = (_const_list(ctx, op, "AxisTensor", "axis") or [0])[0]
    return ctx.b.op("Concat", [ctx.value(n) for n in op.variadic("X")], {"axis": axis})


@register("paddle", "split", "split_with_num")
def split(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    axis = (_const_list(ctx, op, "AxisTensor", "axis") or [0])[0]
    shape = ctx.shape(op.input("X"))
    n_out = len(op.outputs.get("Out", []))
    sections = _const_list(ctx, op, "SectionsTensor", "sections") or []
    if shape is None or not -len(shape) <= axis < len(shape) or shape[axis] < 0:
        raise InputError(f"op {op.label}: split axis {axis} is out of range or of unknown size (input shape {shape})")
    dim = shape[axis]
    if not sections and not n_out:
        raise InputError(f"op {op.label}: splits into no outputs")
    if not sections:
        sections = [dim // n_out] * n_out
    if -1 in sections:
        sections[sections.index(-1)] = dim - sum(s for s in sections if s != -1)
    outs = ctx.b.op("Split", [ctx.input(op, "X"), ctx.b.ints(sections, "split")], {"axis": axis}, outputs=len(sections))
    return list(outs) if isinstance(outs, tuple) else [outs]


@register("paddle", "slice", "strided_slice")
def slice_(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    axes = op.ints_attr("axes", default=[])
    starts = _const_list(ctx, op, "StartsTensor", "starts") or []
    ends = _const_list(ctx, op, "EndsTensor", "ends") or []
    ends = [max(min(e, 2**62), -(2**62)) for e in ends]
    b = ctx.b
    inputs = [ctx.input(op, "Input"), b.ints(starts, "starts"), b.ints(ends, "ends"), b.ints(axes, "axes")]
    strides = _const_list(ctx, op, "StridesTensor", "strides")
    if strides and any(s != 1 for s in strides):
        inputs.append(b.ints(strides, "steps"))
    out = b.op("Slice", inputs)
    dec = op.ints_attr("decrease_axis", default=[])
    return b.op("Squeeze", [out, b.ints(dec, "axes")]) if dec else out


@register("paddle", "shape", "shape64")
def shape(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    out = ctx.b.op("Shape", [ctx.input(op, "Input")])
    return out if op.type == "shape64" else ctx.b.op("Cast", [out], {"to": ir.DataType.INT32})


def _fill_dtype(op: SourceOp, *names: str) -> Any:
    """A dtype attribute: ProgramDesc's VarType enum or PIR's dtype name."""
    dtype_attr = op.attr(*(names or ("dtype",)), default=5)
    if isinstance(dtype_attr, int):
        if dtype_attr not in _FILL_DTYPES:
            raise InputError(f"op {op.label}: dtype {dtype_attr} is not supported")
        return _FILL_DTYPES[dtype_attr]
    try:
        dtype = np.dtype(str(dtype_attr).removeprefix("paddle."))
        onnx_type = ir.DataType.from_numpy(dtype)
    except (TypeError, ValueError):  # not a dtype name, or one ONNX has no type for
        onnx_type = None
    if onnx_type not in _NUMERIC:
        raise InputError(f"op {op.label}: dtype {dtype_attr!r} is not supported")
    return dtype


@register("paddle", "cast")
def cast(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """.astype(): a cast to the same dtype is an Identity; float -> int truncates in both."""
    dtype = np.dtype(_fill_dtype(op, "out_dtype", "dtype"))
    x = ctx.input(op, "X")
    if x.dtype is not None and x.dtype.numpy() == dtype:
        return ctx.b.op("Identity", [x])
    return ctx.b.op("Cast", [x], {"to": ir.DataType.from_numpy(dtype)})


def _fill_value(op: SourceOp) -> float:
    """The fill value: str_value (ProgramDesc writes "inf", "nan" so) or value, any real number."""
    text, value = op.attr("str_value", default=""), op.attr("value", default=0.0)
    try:
        if isinstance(text, str) and text:
            return float(text)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
    except (ValueError, OverflowError):
        pass
    raise InputError(f"op {op.label}: fill value {str(text or value)[:40]!r} is not a number")


@register("paddle", "fill_constant", "full", "full_with_tensor")
def fill_constant(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    dtype = _fill_dtype(op)
    value = _fill_value(op)
    given = ctx.const_scalar(op.input("ValueTensor"), op, "ValueTensor")
    if given is not None:
        value = given
    slot = next((s for s in ("ShapeTensor", "Shape") if op.input(s)), "ShapeTensor")
    shape_input = op.input(slot)
    if shape_input is not None and ctx.array(shape_input) is None:  # shape known only at run time
        shape_value = ctx.b.op("Cast", [ctx.value(shape_input)], {"to": ir.DataType.INT64})
        fill = ir.tensor(np.asarray([float(value)]).astype(dtype))
        return ctx.b.op("ConstantOfShape", [shape_value], {"value": fill})
    shape = _const_list(ctx, op, slot, "shape") or []
    if any(d < 0 for d in shape):
        raise InputError(f"op {op.label}: run-time shaped constant is not supported")
    check_built(shape, f"op {op.label}")
    return ctx.b.const(np.full(shape, float(value)).astype(dtype), "fill")


@register("paddle", "assign_value")
def assign_value(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    values: list[Any] = next((op.attrs[k] for k in ("values", "fp32_values", "int32_values", "int64_values", "bool_values") if op.attrs.get(k)), [])
    shape = op.ints_attr("shape", default=[len(values)], low=0)
    if math.prod(shape) != len(values):
        raise InputError(f"op {op.label}: {len(values)} values for shape {shape}")
    return ctx.b.const(np.asarray(values).astype(_fill_dtype(op)).reshape(shape), "assign_value")


@register("paddle", "bilinear_interp_v2", "nearest_interp_v2", "bilinear_interp", "nearest_interp")
def interp(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    b = ctx.b
    x = ctx.input(op, "X")
    nearest = op.type.startswith("nearest") or op.attr("interp_method", default="") == "nearest"
    align = bool(op.attr("align_corners", default=False))
    if nearest:
        attrs = {
            "mode": "nearest",
            "coordinate_transformation_mode": "align_corners" if align else "asymmetric",
            "nearest_mode": "round_prefer_ceil" if align else "floor",
        }
    else:
        half = op.int_attr("align_mode", default=1) == 0
        mode = "align_corners" if align else ("half_pixel" if half else "asymmetric")
        attrs = {"mode": "linear", "coordinate_transformation_mode": mode}
    size = _const_list(ctx, op, "SizeTensor") or _const_list(ctx, op, "OutSize")
    out_hw = size or [op.int_attr("out_h", default=-1), op.int_attr("out_w", default=-1)]
    scale = op.floats_attr("scale", default=[], scalar=True)
    if len(scale) == 1:
        scale = [scale[0], scale[0]]
    empty = b.const(np.zeros([0], np.float32), "roi")
    if all(v > 0 for v in out_hw):
        nc = b.op("Slice", [b.op("Shape", [x]), b.ints([0]), b.ints([2])])
        sizes = b.op("Concat", [nc, b.ints(out_hw, "hw")], {"axis": 0})
        return b.op("Resize", [x, empty, empty, sizes], attrs)
    if scale and all(s > 0 for s in scale):
        scales = b.const(np.asarray([1.0, 1.0, *scale], np.float32), "scales")
        return b.op("Resize", [x, empty, scales], attrs)
    raise InputError(f"op {op.label}: output size is computed at run time")
