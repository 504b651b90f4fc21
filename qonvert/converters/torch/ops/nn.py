"""Convolutions, linear layers, pooling and normalisation (aten, NCHW as ONNX has it)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, rank, tensor, tensor_name


def _ints(value: object, count: int, default: int) -> list[int]:
    """An int list argument as PyTorch expands it: one value for every spatial dim."""
    if value is None or value == []:
        return [default] * count
    values = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]  # type: ignore[call-overload]
    return values * count if len(values) == 1 else values


def _bias(ctx: ConversionContext, op: SourceOp, index: int) -> list[ir.Value]:
    return [tensor(ctx, op, index, "bias")] if tensor_name(op, index, "bias") is not None else []


# Where each convolution schema keeps (stride, padding, dilation, groups, output_padding).
_CONV_ARGS = {"conv": (3, 4, 5, 6, None), "conv_transpose": (3, 4, 7, 6, 5), "_convolution": (3, 4, 5, 8, 7)}


@register("torch", "aten.conv1d.default", "aten.conv2d.default", "aten.conv_transpose2d.input", "aten._convolution.default")
def conv(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """conv(input, weight, bias, stride, padding, dilation, groups), conv_transpose(..., stride,
    padding, output_padding, groups, dilation), and _convolution(..., stride, padding, dilation,
    transposed, output_padding, groups, ...), what tracing records for a float conv."""
    schema = "_convolution" if "_convolution" in op.type else "conv_transpose" if "transpose" in op.type else "conv"
    stride, padding, dilation, groups, output_padding = _CONV_ARGS[schema]
    transposed = schema == "conv_transpose" or (schema == "_convolution" and bool(literal(op, 6, "transposed", False)))
    spatial = rank(ctx, op) - 2
    pads = _ints(literal(op, padding, "padding"), spatial, 0)
    attrs = {
        "strides": _ints(literal(op, stride, "stride"), spatial, 1),
        "pads": pads + pads,
        "dilations": _ints(literal(op, dilation, "dilation"), spatial, 1),
        "group": int(literal(op, groups, "groups", 1)),
    }
    if transposed and output_padding is not None:
        attrs["output_padding"] = _ints(literal(op, output_padding, "output_padding"), spatial, 0)
    inputs = [tensor(ctx, op, 0, "input"), tensor(ctx, op, 1, "weight"), *_bias(ctx, op, 2)]
    return ctx.b.op("ConvTranspose" if transposed else "Conv", inputs, attrs)


@register("torch", "aten.linear.default")
def linear(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """x @ W^T + b: a Gemm (transB) for 2-D inputs, as ORT fuses it into QGemm; MatMul otherwise."""
    x, w, bias = tensor(ctx, op, 0, "input"), tensor(ctx, op, 1, "weight"), _bias(ctx, op, 2)
    if rank(ctx, op) == 2:
        return ctx.b.op("Gemm", [x, w, *bias], {"transB": 1})
    out = ctx.b.op("MatMul", [x, ctx.b.op("Transpose", [w], {"perm": [1, 0]})])
    return ctx.b.op("Add", [out, *bias]) if bias else out


def _window(op: SourceOp) -> dict[str, list[int]]:
    """A 2-D pool's kernel, strides (the kernel where not given, as PyTorch) and symmetric pads."""
    kernel = _ints(literal(op, 1, "kernel_size"), 2, 1)
    pads = _ints(literal(op, 3, "padding"), 2, 0)
    return {"kernel_shape": kernel, "strides": _ints(literal(op, 2, "stride") or kernel, 2, 1), "pads": pads + pads}


@register("torch", "aten.max_pool2d.default")
def max_pool(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)."""
    attrs = {**_window(op), "dilations": _ints(literal(op, 4, "dilation"), 2, 1), "ceil_mode": int(bool(literal(op, 5, "ceil_mode", False)))}
    return ctx.b.op("MaxPool", [tensor(ctx, op, 0, "input")], attrs)


@register("torch", "aten.avg_pool2d.default")
def avg_pool(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)."""
    if literal(op, 6, "divisor_override") is not None:
        raise InputError(f"op {op.label}: divisor_override is not supported")
    attrs = {
        **_window(op),
        "ceil_mode": int(bool(literal(op, 4, "ceil_mode", False))),
        "count_include_pad": int(bool(literal(op, 5, "count_include_pad", True))),
    }
    return ctx.b.op("AveragePool", [tensor(ctx, op, 0, "input")], attrs)


@register("torch", "aten.adaptive_avg_pool2d.default")
def adaptive_avg_pool(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """To 1x1: GlobalAveragePool; to a size that divides the input: an AveragePool."""
    x = tensor(ctx, op, 0, "input")
    size = _ints(literal(op, 1, "output_size"), 2, 1)
    if size == [1, 1]:
        return ctx.b.op("GlobalAveragePool", [x])
    shape = ctx.shape(tensor_name(op, 0))
    if shape is None or any(d < 0 or d % s for d, s in zip(shape[-2:], size, strict=True)):
        raise InputError(f"op {op.label}: adaptive pooling to {size} from {shape} (not a divisor) is not supported")
    kernel = [d // s for d, s in zip(shape[-2:], size, strict=True)]
    return ctx.b.op("AveragePool", [x], {"kernel_shape": kernel, "strides": kernel})


@register("torch", "aten.mean.dim")
def mean(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    dims = literal(op, 1, "dim")
    axes = None if dims is None else [int(d) for d in (dims if isinstance(dims, list) else [dims])]
    return ctx.b.reduce("ReduceMean", tensor(ctx, op, 0, "input"), axes, bool(literal(op, 2, "keepdim", False)))


@register("torch", "aten.layer_norm.default", opset=first_opset("LayerNormalization"))
def layer_norm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    normalized = literal(op, 1, "normalized_shape")
    x = tensor(ctx, op, 0, "input")
    count = len(normalized)
    ones = np.ones(normalized, np.float32)
    weight = tensor(ctx, op, 2, "weight") if tensor_name(op, 2, "weight") else ctx.b.const(ones)
    bias = tensor(ctx, op, 3, "bias") if tensor_name(op, 3, "bias") else ctx.b.const(np.zeros_like(ones))
    eps = float(literal(op, 4, "eps", 1e-5))
    return ctx.b.op("LayerNormalization", [x, weight, bias], {"axis": -count, "epsilon": eps})


@register("torch", "aten.batch_norm.default")
def batch_norm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, ...),
    inference only (a traced reference model keeps BN after a conv-transpose)."""
    if literal(op, 5, "training", False):
        raise InputError(f"op {op.label}: batch norm in training mode (call model.eval() first)")
    channels = (ctx.shape(tensor_name(op, 0)) or (0, 0))[1]
    weight = tensor(ctx, op, 1, "weight") if tensor_name(op, 1, "weight") else ctx.b.const(np.ones(channels, np.float32))
    bias = tensor(ctx, op, 2, "bias") if tensor_name(op, 2, "bias") else ctx.b.const(np.zeros(channels, np.float32))
    ins = [tensor(ctx, op, 0, "input"), weight, bias, tensor(ctx, op, 3, "running_mean"), tensor(ctx, op, 4, "running_var")]
    return ctx.b.op("BatchNormalization", ins, {"epsilon": float(literal(op, 7, "eps", 1e-5))})
