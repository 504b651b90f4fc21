"""CONV_2D, CONV_3D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, BATCH_MATMUL, pools."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import MIN_SCALE, QuantParams
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from .. import quant
from ..hybrid import hybrid_codes, hybrid_mode
from ..layout import NCHW, arg, conv_pads, declared_shape, finish, rank_of, same_pads, spatial


def _weight(ctx: ConversionContext, op: SourceOp, index: int, perm: tuple[int, ...]) -> ir.Value:
    """A constant weight in the ONNX layout: integer data transposed, read through its DQ."""
    name = arg(op, index)
    data = ctx.array(name)
    if data is None:
        return ctx.laid_out(name or "", perm)  # computed at run time: transposed as a tensor
    if data.ndim != len(perm):  # its declared shape may say otherwise: the data is what is transposed
        raise InputError(f"op {op.label}: weight {name!r} holds rank-{data.ndim} data, expected rank {len(perm)}")
    moved, qp = quant.weight(data, ctx.source.quant.get(name or ""), perm)
    if qp is not None and qp.dtype in ("int8", "int4", "int16") and np.any(qp.zero_point != 0):  # TFLite's kernels check this too
        raise InputError(f"op {op.label}: weight {name!r} has zero point {int(np.ravel(qp.zero_point)[np.ravel(qp.zero_point) != 0][0])}, not 0")
    if qp is None:
        return ctx.b.const(moved, f"{name}_onnx")
    return ctx.b.int_weight(moved, qp, f"{name}_onnx")


def _conv_filter(ctx: ConversionContext, op: SourceOp, perm: tuple[int, ...]) -> ir.Value:
    """A conv or fully-connected filter: TFLite's quantized kernels take a constant integer one."""
    name = arg(op, 1) or ""
    if arg(op, 0) in ctx.source.quant and (ctx.array(name) is None or name not in ctx.source.quant):
        raise InputError(f"op {op.label}: a quantized input with a filter that is not a constant quantized tensor")
    return _weight(ctx, op, 1, perm)


def _bias(ctx: ConversionContext, op: SourceOp, index: int) -> ir.Value | None:
    name = arg(op, index)
    data = ctx.array(name)
    if name is None:
        return None
    x_name = arg(op, 2 if op.type == "TRANSPOSE_CONV" else 0) or ""
    if data is None and x_name in ctx.source.quant and arg(op, 1) in ctx.source.quant:
        raise InputError(f"op {op.label}: bias {name!r} is computed at run time; a quantized op's bias must be a constant")
    if data is None:
        return ctx.value(name)
    if data.ndim != 1 or not (data.dtype.kind == "f" or data.dtype in (np.int32, np.int64)):
        shape = list(data.shape)
        raise InputError(f"op {op.label}: bias {name!r} is a {data.dtype} tensor of shape {shape}; a bias is a 1-D int32, int64 or float vector")
    x_qp, w_qp = ctx.source.quant.get(x_name), ctx.source.quant.get(arg(op, 1) or "")
    bias_qp = ctx.source.quant.get(name)
    quantized_op = x_qp is not None and w_qp is not None
    if bias_qp is None and quantized_op and data.dtype.kind == "f":
        raise InputError(f"op {op.label}: bias {name!r} is {data.dtype} on a quantized op: LiteRT's integer kernels add an int32 bias")
    if bias_qp is None and data.dtype.kind != "f":  # integer codes with no parameters: LiteRT adds them all the same
        if not quantized_op:
            raise InputError(f"op {op.label}: bias {name!r} is {data.dtype} but the op computes in float")
        axis = 0 if w_qp.scale.size > 1 else None  # type: ignore[union-attr]
        bias_qp = QuantParams(np.ones(w_qp.scale.shape, np.float32), np.zeros(w_qp.scale.shape, np.int64), "int32", axis)  # type: ignore[union-attr]
    values, qp = quant.bias(data, bias_qp)
    if qp is None:
        return ctx.b.const(values, name)
    if x_qp is None and qp.dtype == "int32":  # LiteRT's float and hybrid kernels add a float bias
        raise InputError(f"op {op.label}: bias {name!r} is quantized int32 but the op's input {x_name!r} is float")
    # TFLite's kernels add the int32 bias to the s_x * s_w accumulator whatever scale the file
    # records for it (the converter writes that product): so does the ONNX model.
    if x_qp is not None and x_qp.scale.size != 1:  # no one s_x to scale the integer bias by
        raise InputError(f"op {op.label}: its input {x_name!r} is quantized per channel; a quantized op's input has one scale")
    if w_qp is not None and w_qp.scale.size not in (1, values.size):
        raise InputError(f"op {op.label}: a bias of {values.size} values for {w_qp.scale.size} weight scales")
    if x_qp is not None and w_qp is not None and qp.dtype == "int32":
        scale = (x_qp.scale.astype(np.float64) * w_qp.scale.astype(np.float64)).astype(np.float32)
        if np.any(scale < MIN_SCALE):
            raise InputError(f"op {op.label}: input scale times weight scale underflows float32 ({float(scale.min()):.3g}): no bias scale")
        qp = QuantParams(scale, np.zeros(scale.shape, np.int64), "int32", 0 if scale.size > 1 else None)
    return ctx.b.int_weight(values, qp, name)


def _hybrid(ctx: ConversionContext, op: SourceOp, x: ir.Value, mode: str, perm: tuple[int, ...], run: Any) -> ir.Value:
    """LiteRT's hybrid kernel (tflite/hybrid.py): `x` quantized on the fly per batch entry (per row
    for FULLY_CONNECTED), its codes summed against the weight's codes by `run(codes, weight)` (Conv
    or Gemm, no bias), the sums scaled by weight scale * input scale, then the float bias added."""
    conv = op.type != "FULLY_CONNECTED"
    codes, input_scale = hybrid_codes(ctx, x, [1, 2, 3] if conv else [1], mode)
    name = arg(op, 1) or ""
    moved, qp = quant.weight(np.asarray(ctx.array(name)), ctx.source.quant[name], perm)
    assert qp is not None  # hybrid_mode checked it
    if np.any(qp.zero_point != 0):  # LiteRT's hybrid kernels take symmetric weights only
        raise InputError(f"op {op.label}: weight {name!r} has a zero point other than 0")
    y = run(codes, ctx.b.int_weight(moved, QuantParams.unit("int8"), f"{name}_codes"))
    shape = [1, -1, 1, 1] if conv else [1, -1]
    weight_scale = ctx.b.const(qp.scale.astype(np.float32).reshape(shape if qp.scale.size > 1 else []), "weight_scale")
    if op.type == "CONV_2D" and mode == "asymmetric":  # rounded as LiteRT's kernels write it:
        y = ctx.b.op("Mul", [ctx.b.op("Mul", [y, weight_scale]), input_scale])  # (acc * w) * s
    else:  # the per-tensor conv, depthwise and fully connected: acc * (s * w)
        y = ctx.b.op("Mul", [y, ctx.b.op("Mul", [input_scale, weight_scale])])
    bias = _bias(ctx, op, 2)
    if bias is not None and conv:
        bias = ctx.b.op("Reshape", [bias, ctx.b.ints(shape)])  # along the channel axis of NCHW
    return ctx.b.op("Add", [y, bias]) if bias is not None else y


def _conv_attrs(ctx: ConversionContext, op: SourceOp, kernel: tuple[int, int]) -> dict[str, Any]:
    strides = [op.int_attr("StrideH", default=1, low=1), op.int_attr("StrideW", default=1, low=1)]
    dilations = [op.int_attr("DilationHFactor", default=1, low=1), op.int_attr("DilationWFactor", default=1, low=1)]
    return {"strides": strides, "dilations": dilations, **conv_pads(ctx, op, kernel, strides, dilations)}


@register("tflite", "CONV_2D")
def conv_2d(ctx: ConversionContext, op: SourceOp) -> Laid:
    x = spatial(ctx, op)
    shape = declared_shape(ctx, op, 1, 4, "filter")  # OHWI
    in_channels = declared_shape(ctx, op, 0, 4, "input")[3]
    group = in_channels // shape[3] if shape[3] and in_channels > 0 else 1
    attrs = {**_conv_attrs(ctx, op, (shape[1], shape[2])), "group": group}
    mode = hybrid_mode(ctx, op, group)
    if mode:
        return finish(ctx, op, _hybrid(ctx, op, x, mode, (0, 3, 1, 2), lambda codes, w: ctx.b.op("Conv", [codes, w], attrs)), NCHW)
    w = _conv_filter(ctx, op, (0, 3, 1, 2))
    y = ctx.b.op("Conv", [x, w, _bias(ctx, op, 2)], attrs)
    return finish(ctx, op, y, NCHW)


NCDHW = (0, 4, 1, 2, 3)  # how an NDHWC tensor is held for ONNX's Conv


@register("tflite", "CONV_3D")
def conv_3d(ctx: ConversionContext, op: SourceOp) -> Laid:
    """NDHWC input, DHWIO filter (LiteRT runs it in float only)."""
    name = arg(op, 0)
    shape, kernel = ctx.shape(name) or (), (ctx.shape(arg(op, 1)) or ())[:3]
    if len(shape) != 5 or len(kernel) != 3:
        raise InputError(f"op {op.label}: expected a 5-D NDHWC input and a DHWIO filter")
    strides = [op.int_attr(f"Stride{axis}", default=1, low=1) for axis in "DHW"]
    dilations = [op.int_attr(f"Dilation{axis}Factor", default=1, low=1) for axis in "DHW"]
    if op.attr("Padding", default=1) == 1:
        pads = [0] * 6
    elif min(shape[1:4]) < 0:
        raise InputError(f"op {op.label}: SAME padding of a dynamic size")
    else:
        begin, end = zip(*(same_pads(shape[1 + i], kernel[i], strides[i], dilations[i]) for i in range(3)), strict=True)
        pads = [*begin, *end]
    w = _weight(ctx, op, 1, (4, 3, 0, 1, 2))
    y = ctx.b.op("Conv", [ctx.laid_out(name or "", NCDHW), w, _bias(ctx, op, 2)], {"strides": strides, "dilations": dilations, "pads": pads})
    return finish(ctx, op, y, NCDHW)


@register("tflite", "DEPTHWISE_CONV_2D")
def depthwise_conv_2d(ctx: ConversionContext, op: SourceOp) -> Laid:
    x = spatial(ctx, op)
    shape = declared_shape(ctx, op, 1, 4, "filter")  # 1, H, W, C*multiplier
    channels = declared_shape(ctx, op, 0, 4, "input")[3]
    if channels <= 0:
        raise InputError(f"op {op.label}: input channels unknown")
    attrs = {**_conv_attrs(ctx, op, (shape[1], shape[2])), "group": channels}
    mode = hybrid_mode(ctx, op)
    if mode:
        return finish(ctx, op, _hybrid(ctx, op, x, mode, (3, 0, 1, 2), lambda codes, w: ctx.b.op("Conv", [codes, w], attrs)), NCHW)
    w = _conv_filter(ctx, op, (3, 0, 1, 2))  # -> [C*m, 1, H, W]
    y = ctx.b.op("Conv", [x, w, _bias(ctx, op, 2)], attrs)
    return finish(ctx, op, y, NCHW)


@register("tflite", "TRANSPOSE_CONV")
def transpose_conv(ctx: ConversionContext, op: SourceOp) -> Laid:
    """Inputs: output_shape (NHWC), weights OHWI, input, optional bias."""
    shape_ints = ctx.const_ints(arg(op, 0), op, "output shape")
    in_shape = declared_shape(ctx, op, 2, 4, "input")
    w_shape = declared_shape(ctx, op, 1, 4, "filter")
    if shape_ints is None or len(shape_ints) != 4 or min(in_shape[1:]) <= 0:
        raise InputError(f"op {op.label}: needs a constant 4-entry output shape and a static input shape")
    out_shape = np.asarray(shape_ints, np.int64)
    x = ctx.laid_out(arg(op, 2) or "", NCHW)
    w = _weight(ctx, op, 1, (3, 0, 1, 2))  # OHWI -> [I, O, H, W]; per-channel O -> axis 1
    strides = [op.int_attr("StrideH", default=1, low=1), op.int_attr("StrideW", default=1, low=1)]
    pads, extra = [], []
    for i in range(2):
        total = (in_shape[1 + i] - 1) * strides[i] + w_shape[1 + i] - int(out_shape[1 + i])
        if op.attr("Padding", default=1) == 1:  # VALID: no padding, any surplus rows at the end
            pads.append((0, max(total, 0)))
        else:
            pads.append(same_pads(int(out_shape[1 + i]), w_shape[1 + i], strides[i], 1) if total >= 0 else (0, 0))
        extra.append(max(-total, 0))
    attrs = {"strides": strides, "pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]], "output_padding": extra}
    y = ctx.b.op("ConvTranspose", [x, w, _bias(ctx, op, 3)], attrs)
    return finish(ctx, op, y, NCHW)


@register("tflite", "FULLY_CONNECTED")
def fully_connected(ctx: ConversionContext, op: SourceOp) -> Any:
    """x [..., I] (flattened to [-1, I] unless KeepNumDims), weights [O, I] -> Gemm(transB=1)."""
    name = arg(op, 0) or ""
    w_shape = declared_shape(ctx, op, 1, 2, "weights")  # [O, I]
    in_shape = ctx.shape(name) or ()
    x = ctx.laid_out(name)
    if len(in_shape) != 2 or in_shape[-1] != w_shape[1]:
        x = ctx.b.op("Reshape", [x, ctx.b.ints([-1, w_shape[1]])])
    if ctx.array(arg(op, 1)) is None:
        if arg(op, 0) in ctx.source.quant and arg(op, 1) not in ctx.source.quant:
            raise InputError(f"op {op.label}: a quantized input with a float weight computed at run time")
        w = ctx.b.op("Transpose", [ctx.laid_out(arg(op, 1) or "")], {"perm": [1, 0]})
        y = ctx.b.op("MatMul", [x, w])
        b = _bias(ctx, op, 2)
        y = ctx.b.op("Add", [y, b]) if b is not None else y
    elif mode := hybrid_mode(ctx, op):
        y = _hybrid(ctx, op, x, mode, (0, 1), lambda codes, w: ctx.b.op("Gemm", [codes, w], {"transB": 1}))
    else:
        y = ctx.b.op("Gemm", [x, _conv_filter(ctx, op, (0, 1)), _bias(ctx, op, 2)], {"transB": 1})
    if op.attr("KeepNumDims", default=False) and len(in_shape) > 2:
        y = ctx.b.op("Reshape", [y, ctx.b.ints([*(d if d >= 0 else 0 for d in in_shape[:-1]), w_shape[0]])])
    return finish(ctx, op, y, None)


@register("tflite", "BATCH_MATMUL")
def batch_matmul(ctx: ConversionContext, op: SourceOp) -> Any:
    values = []
    for i, adj in enumerate((op.attr("AdjX", default=False), op.attr("AdjY", default=False))):
        name = arg(op, i) or ""
        rank = rank_of(ctx, name)
        perm = [*range(rank - 2), rank - 1, rank - 2] if adj else None
        values.append(ctx.laid_out(name, perm))
    return ctx.b.op("MatMul", values)


def _pool(ctx: ConversionContext, op: SourceOp, onnx_op: str) -> Laid:
    kernel = (op.int_attr("FilterHeight", default=1, low=1), op.int_attr("FilterWidth", default=1, low=1))
    attrs = {"kernel_shape": list(kernel), **_conv_attrs(ctx, op, kernel)}
    attrs.pop("dilations")
    if onnx_op == "AveragePool":
        attrs["count_include_pad"] = 0  # TFLite averages over the valid pixels only
    return finish(ctx, op, ctx.b.op(onnx_op, [spatial(ctx, op)], attrs), NCHW)


@register("tflite", "AVERAGE_POOL_2D")
def average_pool_2d(ctx: ConversionContext, op: SourceOp) -> Laid:
    return _pool(ctx, op, "AveragePool")


@register("tflite", "MAX_POOL_2D")
def max_pool_2d(ctx: ConversionContext, op: SourceOp) -> Laid:
    return _pool(ctx, op, "MaxPool")
