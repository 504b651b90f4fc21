"""conv2d, depthwise_conv2d, conv2d_transpose, pool2d / max_pool2d_with_index."""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from ....errors import InputError
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp


def _pads(op: SourceOp, spatial: int = 2) -> dict[str, Any]:
    """Paddle paddings ([h, w] or [top, bottom, left, right]) and padding_algorithm -> ONNX attrs."""
    algo = op.attr("padding_algorithm", default="EXPLICIT")
    if algo == "SAME":
        return {"auto_pad": "SAME_UPPER"}
    pads = op.ints_attr("paddings", default=[0] * spatial, low=0)
    if algo == "VALID":
        pads = [0] * spatial
    if len(pads) == spatial:
        return {"pads": pads + pads}
    if len(pads) == 2 * spatial:
        return {"pads": pads[0::2] + pads[1::2]}
    raise InputError(f"op {op.label}: unsupported paddings {pads}")


def _check_nchw(op: SourceOp) -> None:
    fmt = op.attr("data_format", "data_layout", default="NCHW")
    if fmt not in ("NCHW", "AnyLayout"):
        raise InputError(f"op {op.label}: data_format {fmt} is not supported (NCHW only)")


@register("paddle", "conv2d", "depthwise_conv2d")
def conv2d(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    _check_nchw(op)
    attrs = {
        "strides": op.ints_attr("strides", default=[1, 1], low=1),
        "dilations": op.ints_attr("dilations", default=[1, 1], low=1),
        "group": op.int_attr("groups", default=1, low=1),
        **_pads(op),
    }
    return ctx.b.op("Conv", [ctx.input(op, "Input"), ctx.input(op, "Filter")], attrs)


@register("paddle", "conv2d_transpose", "depthwise_conv2d_transpose")
def conv2d_transpose(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    _check_nchw(op)
    attrs: dict[str, Any] = {
        "strides": op.ints_attr("strides", default=[1, 1], low=1),
        "dilations": op.ints_attr("dilations", default=[1, 1], low=1),
        "group": op.int_attr("groups", default=1, low=1),
        **_pads(op),
    }
    out_pad = op.ints_attr("output_padding", default=[], low=0)
    if out_pad:
        attrs["output_padding"] = list(out_pad)
    out_size = op.ints_attr("output_size", default=[], low=1) or ctx.const_ints(op.input("OutputSize"), op, "OutputSize", low=1)
    if out_size:
        attrs["output_shape"] = out_size
        attrs.pop("pads", None)
    return ctx.b.op("ConvTranspose", [ctx.input(op, "Input"), ctx.input(op, "Filter")], attrs)


@register("paddle", "pool2d", "max_pool2d_with_index")
def pool2d(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """max_pool2d_with_index (adaptive max pooling) is a max pool2d; its Mask output is not mapped."""
    _check_nchw(op)
    x = ctx.input(op, "X")
    kind = "max" if op.type == "max_pool2d_with_index" else op.attr("pooling_type", default="max")
    ksize = op.ints_attr("ksize", "kernel_size", default=[], low=1) or None
    if ksize is None:
        ksize = ctx.const_ints(op.input("KernelSize"), op, "KernelSize", low=1)
    in_shape = ctx.shape(op.input("X"))
    adaptive = bool(op.attr("adaptive", default=False))
    if op.attr("global_pooling", default=False) or (adaptive and list(ksize or []) == [1, 1]):
        return ctx.b.op("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", [x])
    if adaptive:
        if in_shape is None or any(d <= 0 for d in in_shape[2:]) or any(d % k for d, k in zip(in_shape[2:], ksize or [], strict=False)):
            raise InputError(f"op {op.label}: adaptive pooling to {ksize} needs input sizes divisible by it")
        stride = [d // k for d, k in zip(in_shape[2:], ksize or [], strict=False)]
        attrs: dict[str, Any] = {"kernel_shape": stride, "strides": stride}
    else:
        if ksize is None:
            raise InputError(f"op {op.label}: kernel size is not a constant")
        attrs = {"kernel_shape": list(ksize), "strides": op.ints_attr("strides", default=[1, 1], low=1), **_pads(op)}
        if op.attr("ceil_mode", default=False):
            attrs["ceil_mode"] = 1
    if kind == "max":
        return ctx.b.op("MaxPool", [x], attrs)
    if kind != "avg":
        raise InputError(f"op {op.label}: pooling_type {kind!r} is not supported")
    attrs["count_include_pad"] = 0 if op.attr("exclusive", default=True) else 1
    return ctx.b.op("AveragePool", [x], attrs)
