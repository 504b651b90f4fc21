"""The quantized::* kernels of eager- and FX-converted models (TorchScript archives), and
aten::quantize_per_tensor / aten::dequantize.

Each op's output quantization is its own (PyTorch's convention: an op's scale and zero point are
its OUTPUT parameters); the reader names every quantized tensor in graph.quant, so a mapper emits
only the float op and binding adds the Q -> DQ. Weights come from the packed parameters (`weight`,
int8 codes read through a DQ; `bias`, float, made int32 at s_x * s_w by the bias pass).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....opsets.builder import GraphBuilder
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, tensor, tensor_name


def _packed(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    return [ctx.value(op.input("weight")), *([ctx.value(op.input("bias"))] if op.input("bias") else [])]


def _relu(ctx: ConversionContext, op: SourceOp, value: ir.Value) -> ir.Value:
    return ctx.b.op("Relu", [value]) if "_relu" in op.type else value


@register("torch", "aten.quantize_per_tensor.default", "aten.quantize_per_tensor.tensor_qparams", "aten.dequantize.self")
def requantize_or_dequantize(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """quantize: binding puts the Q/DQ (the output is in graph.quant); dequantize: the float value."""
    return ctx.b.op("Identity", [tensor(ctx, op, 0)])


@register(
    "torch",
    "quantized.conv2d.new",
    "quantized.conv2d_relu.new",
    "quantized.conv1d.default",
    "quantized.conv1d_relu.default",
    "quantized.conv_transpose2d.default",
)
def conv(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = tensor(ctx, op, 0)
    spatial = len(ctx.shape(tensor_name(op, 0)) or (0, 0, 0, 0)) - 2
    pads = [int(p) for p in op.attr("padding", default=[0] * spatial)]
    attrs = {
        "strides": [int(s) for s in op.attr("stride", default=[1] * spatial)],
        "pads": pads + pads,
        "dilations": [int(d) for d in op.attr("dilation", default=[1] * spatial)],
        "group": op.int_attr("groups", default=1),
    }
    kind = "Conv"
    if "transpose" in op.type:
        kind = "ConvTranspose"
        attrs["output_padding"] = [int(p) for p in op.attr("output_padding", default=[0] * spatial)]
    return _relu(ctx, op, ctx.b.op(kind, [x, *_packed(ctx, op)], attrs))


@register("torch", "quantized.linear.default", "quantized.linear_relu.default")
def linear(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x, (w, *bias) = tensor(ctx, op, 0), _packed(ctx, op)
    if len(ctx.shape(tensor_name(op, 0)) or ()) == 2:
        out = ctx.b.op("Gemm", [x, w, *bias], {"transB": 1})
    else:
        out = ctx.b.op("MatMul", [x, ctx.b.op("Transpose", [w], {"perm": [1, 0]})])
        out = ctx.b.op("Add", [out, *bias]) if bias else out
    return _relu(ctx, op, out)


def dynamic_quantized(b: GraphBuilder, x: ir.Value, reduce_range: bool) -> ir.Value:
    """x as PyTorch's dynamic kernels quantize it (fbgemm / qnnpack): uint8 over [min(x, 0),
    max(x, 0)], zero point round(-min / scale), read back through a DQ. Over 0..255 that is ORT's
    DynamicQuantizeLinear exactly; fbgemm (x86) honours reduce_range (0..127), which the graph
    computes itself (and ORT then runs the MatMul in float)."""
    if reduce_range:
        zero = b.const(np.float32(0.0))
        low = b.op("Min", [b.op("ReduceMin", [x], {"keepdims": 0}), zero])
        high = b.op("Max", [b.op("ReduceMax", [x], {"keepdims": 0}), zero])
        scale = b.op("Div", [b.op("Sub", [high, low]), b.const(np.float32(127.0))])
        scale = b.op("Max", [scale, b.const(np.float32(np.finfo(np.float32).tiny))])  # all-zero x: any scale
        zp = b.op("Clip", [b.op("Round", [b.op("Div", [b.op("Neg", [low]), scale])]), zero, b.const(np.float32(127.0))])
        zp = b.op("Cast", [zp], {"to": ir.DataType.UINT8})
        codes = b.op("QuantizeLinear", [x, scale, zp])
    else:
        codes, scale, zp = b.op("DynamicQuantizeLinear", [x], outputs=3)
    return b.op("DequantizeLinear", [codes, scale, zp])


@register("torch", "quantized.linear_dynamic.default", "quantized.linear_relu_dynamic.default")
def linear_dynamic(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """Dynamic quantization: int8 weights, the float input quantized at run time (dynamic_quantized)."""
    x = dynamic_quantized(ctx.b, tensor(ctx, op, 0), bool(op.attrs.get("reduce_range_applied")))
    w, *bias = _packed(ctx, op)
    out = ctx.b.op("MatMul", [x, ctx.b.op("Transpose", [w], {"perm": [1, 0]})])
    return _relu(ctx, op, ctx.b.op("Add", [out, *bias]) if bias else out)


_ELEMENTWISE = {"add": "Add", "mul": "Mul"}


@register("torch", "quantized.add.default", "quantized.add_relu.default", "quantized.mul.default", "quantized.mul_relu.default")
def elementwise(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    kind = _ELEMENTWISE[op.type.split(".")[1].removesuffix("_relu")]
    return _relu(ctx, op, ctx.b.op(kind, [tensor(ctx, op, 0), tensor(ctx, op, 1)]))


@register("torch", "quantized.add_scalar.default", "quantized.mul_scalar.default", "quantized.add.Scalar", "quantized.mul.Scalar")
def elementwise_scalar(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    kind = "Add" if "add" in op.type else "Mul"
    return ctx.b.op(kind, [tensor(ctx, op, 0), ctx.b.const(np.float32(literal(op, 1, "other")))])


@register("torch", "quantized.cat.default")
def cat(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Concat", [ctx.value(n) for n in op.inputs.get("0", [])], {"axis": int(literal(op, 1, "dim", 0))})


@register("torch", "quantized.hardswish.default", opset=first_opset("HardSwish"))
def hardswish(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("HardSwish", [tensor(ctx, op, 0)])


@register("torch", "quantized.batch_norm2d.default", "quantized.batch_norm2d_relu.default")
def batch_norm(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """batch_norm2d(qx, weight, bias, mean, var, eps, output_scale, output_zero_point)."""
    channels = (ctx.shape(tensor_name(op, 0)) or (0, 0))[1]
    weight = tensor(ctx, op, 1) if tensor_name(op, 1) else ctx.b.const(np.ones(channels, np.float32))
    bias = tensor(ctx, op, 2) if tensor_name(op, 2) else ctx.b.const(np.zeros(channels, np.float32))
    attrs = {"epsilon": float(literal(op, 5, "eps", 1e-5))}
    out = ctx.b.op("BatchNormalization", [tensor(ctx, op, 0), weight, bias, tensor(ctx, op, 3), tensor(ctx, op, 4)], attrs)
    return _relu(ctx, op, out)


@register("torch", "quantized.prelu.default")
def prelu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """prelu(qx, weight, output_scale, output_zero_point): the slope (a quantized constant, one per
    channel) broadcast over the spatial dims. PyTorch's kernel multiplies the positive side by 1.0
    quantized with the WEIGHT's parameters, which saturates where the slopes' range stops short of 1
    (a MinMax observer on slopes in [0, 0.25] gives 0.25): that multiplier is kept, as computed."""
    x, slope = tensor(ctx, op, 0), tensor(ctx, op, 1)
    spatial = len(ctx.shape(tensor_name(op, 0)) or (0, 0)) - 2
    if spatial > 0 and len(ctx.shape(tensor_name(op, 1)) or ()) == 1:
        slope = ctx.b.op("Unsqueeze", [slope, ctx.b.ints(range(1, spatial + 1), "spatial_axes")])
    qp = ctx.source.quant.get(tensor_name(op, 1) or "")
    one = 1.0 if qp is None or qp.per_axis else float(qp.dequantize(np.clip(np.rint(1.0 / qp.scale) + qp.zero_point, qp.qmin, qp.qmax)))
    if one == 1.0:
        return ctx.b.op("PRelu", [x, slope])
    ctx.remark(f"{op.label}: PyTorch's quantized prelu scales positive inputs by {one:.6g} (1.0 in the slope's quantization); kept")
    positive = ctx.b.op("Greater", [x, ctx.b.const(np.float32(0.0))])
    return ctx.b.op("Where", [positive, ctx.b.op("Mul", [x, ctx.b.const(np.float32(one))]), ctx.b.op("Mul", [x, slope])])


@register("torch", "quantized.softmax.default")
def softmax(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """softmax(qx, dim, output_scale, output_zero_point)."""
    return ctx.b.op("Softmax", [tensor(ctx, op, 0)], {"axis": int(literal(op, 1, "dim", -1))})
