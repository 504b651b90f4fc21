"""Activations, elementwise arithmetic and the shape ops that run on (de)quantized tensors."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.qparams import QuantParams
from ....opsets.versions import first_opset
from ...context import NP_TO_IR, ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, operand, rank, tensor, tensor_name

_UNARY = {
    "aten.relu.default": "Relu",
    "aten.relu_.default": "Relu",
    "aten.sigmoid.default": "Sigmoid",
    "aten.tanh.default": "Tanh",
    "aten.hardsigmoid.default": "HardSigmoid",
    "aten.exp.default": "Exp",
    "aten.sqrt.default": "Sqrt",
    "aten.neg.default": "Neg",
    "aten.abs.default": "Abs",
}
_IDENTITY = (
    "aten.dropout.default",
    "aten.clone.default",
    "aten.contiguous.default",
    "aten.alias.default",
    "aten.detach.default",
    "aten.detach_.default",
)


@register("torch", *_UNARY)
def unary(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = tensor(ctx, op, 0, "input")
    if op.type == "aten.hardsigmoid.default":  # PyTorch's is relu6(x + 3) / 6
        return ctx.b.op("HardSigmoid", [x], {"alpha": 1 / 6, "beta": 0.5})
    return ctx.b.op(_UNARY[op.type], [x])


@register("torch", "aten.hardswish.default", "aten.hardswish_.default", opset=first_opset("HardSwish"))
def hardswish(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("HardSwish", [tensor(ctx, op, 0, "input")])


@register("torch", *_IDENTITY)
def identity(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Identity", [tensor(ctx, op, 0, "input")])


@register("torch", "aten.gelu.default")
def gelu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """0.5 x (1 + erf(x / sqrt 2)); tanh approximation refused."""
    if literal(op, 1, "approximate", "none") != "none":
        raise InputError(f"op {op.label}: gelu approximate='tanh' is not supported")
    x = tensor(ctx, op, 0, "input")
    erf = ctx.b.op("Erf", [ctx.b.op("Div", [x, ctx.b.const(np.float32(np.sqrt(2.0)))])])
    return ctx.b.op("Mul", [ctx.b.op("Mul", [x, ctx.b.op("Add", [erf, ctx.b.const(np.float32(1.0))])]), ctx.b.const(np.float32(0.5))])


@register("torch", "aten.silu.default", "aten.silu_.default")
def silu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    x = tensor(ctx, op, 0, "input")
    return ctx.b.op("Mul", [x, ctx.b.op("Sigmoid", [x])])


@register("torch", "aten.leaky_relu.default", "aten.leaky_relu_.default")
def leaky_relu(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("LeakyRelu", [tensor(ctx, op, 0, "input")], {"alpha": float(literal(op, 1, "negative_slope", 0.01))})


@register("torch", "aten.hardtanh.default", "aten.hardtanh_.default", "aten.clamp.default", "aten.relu6.default")
def clamp(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    if op.type == "aten.relu6.default":
        lo, hi = 0.0, 6.0
    elif op.type.startswith("aten.hardtanh"):
        lo, hi = literal(op, 1, "min_val", -1.0), literal(op, 2, "max_val", 1.0)
    else:
        lo, hi = literal(op, 1, "min"), literal(op, 2, "max")
    bounds = [ctx.b.const(np.float32(v)) if v is not None else None for v in (lo, hi)]
    return ctx.b.op("Clip", [tensor(ctx, op, 0, "input"), *bounds])


_BINARY = {
    "aten.add.Tensor": "Add",
    "aten.add_.Tensor": "Add",
    "aten.sub.Tensor": "Sub",
    "aten.mul.Tensor": "Mul",
    "aten.mul_.Tensor": "Mul",
    "aten.div.Tensor": "Div",
    "aten.matmul.default": "MatMul",
    "aten.bmm.default": "MatMul",
}


@register("torch", *_BINARY)
def binary(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    a, b = operand(ctx, op, 0, "input"), operand(ctx, op, 1, "other")
    alpha = literal(op, 2, "alpha", 1)
    if alpha != 1:
        b = ctx.b.op("Mul", [b, ctx.b.const(np.float32(alpha))])
    return ctx.b.op(_BINARY[op.type], [a, b])


@register("torch", "aten.to.dtype", "aten._to_copy.default")
def to(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """A cast. Integer codes to float32 (torchao's int8 weight-only reads its weight so) are a
    DequantizeLinear of scale 1 (exact), so a constant's stay an integer initializer behind a DQ;
    a value already float32 in ONNX (a float tensor, or an integer product held in float) is kept.
    TorchScript gives the dtype as its ScalarType number (6: float32)."""
    dtype = literal(op, 1, "dtype", "float32")
    dtype = "float32" if dtype == 6 else dtype
    x = tensor_name(op, 0)
    value = tensor(ctx, op, 0)
    source = ctx.source.dtypes.get(x or "", "float32")
    if dtype not in NP_TO_IR:
        raise InputError(f"op {op.label}: a cast to {dtype} is not supported")
    if dtype == "float32" and (source == "float32" or value.dtype == ir.DataType.FLOAT or x in ctx.source.quant):
        return ctx.b.op("Identity", [value])
    if dtype == "float32" and source in ("int8", "uint8"):
        return ctx.b.dequantize(value, QuantParams.unit(source))
    return ctx.b.op("Cast", [value], {"to": NP_TO_IR[dtype]})


@register("torch", "aten.cat.default", "aten.concat.default")
def cat(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    names = op.inputs.get("0") or op.inputs.get("tensors") or []
    return ctx.b.op("Concat", [ctx.value(n) for n in names], {"axis": int(literal(op, 1, "dim", 0))})


@register("torch", "aten.flatten.using_ints")
def flatten(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    r = rank(ctx, op)
    start, end = int(literal(op, 1, "start_dim", 0)) % max(r, 1), int(literal(op, 2, "end_dim", -1)) % max(r, 1)
    x = tensor(ctx, op, 0, "input")
    if end == r - 1 and start == 1:
        return ctx.b.op("Flatten", [x], {"axis": 1})
    shape = [0] * start + [-1] + [0] * (r - 1 - end)
    return ctx.b.op("Reshape", [x, ctx.b.ints(shape)])


@register("torch", "aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def reshape(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    shape = [int(d) for d in literal(op, 1, "size", literal(op, 1, "shape", []))]
    return ctx.b.op("Reshape", [tensor(ctx, op, 0, "input"), ctx.b.ints(shape)])


@register("torch", "aten.permute.default")
def permute(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    r = rank(ctx, op)
    return ctx.b.op("Transpose", [tensor(ctx, op, 0, "input")], {"perm": [int(d) % r for d in literal(op, 1, "dims")]})


@register("torch", "aten.transpose.int", "aten.t.default")
def transpose(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    r = rank(ctx, op)
    perm = list(range(r))
    a, b = (int(literal(op, 1, "dim0", 0)) % r, int(literal(op, 2, "dim1", 1)) % r) if op.type == "aten.transpose.int" else (0, 1)
    perm[a], perm[b] = perm[b], perm[a]
    return ctx.b.op("Transpose", [tensor(ctx, op, 0, "input")], {"perm": perm})


@register("torch", "aten.softmax.int", "aten._softmax.default")
def softmax(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    return ctx.b.op("Softmax", [tensor(ctx, op, 0, "input")], {"axis": int(literal(op, 1, "dim", -1))})


@register("torch", "aten.upsample_nearest2d.vec", "aten.upsample_nearest2d.default")
def upsample_nearest(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """Nearest with PyTorch's index rule floor(out * in / out_size): ONNX 'asymmetric' + 'floor'."""
    x = tensor(ctx, op, 0, "input")
    size, factors = literal(op, 1, "output_size"), literal(op, 2, "scale_factors")
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    shape = ctx.shape(tensor_name(op, 0))
    if size:
        sizes = ctx.b.ints([*(shape or (1, 1))[:2], *[int(s) for s in size]]) if shape and shape[0] > 0 else None
        if sizes is None:
            raise InputError(f"op {op.label}: output_size with a dynamic batch is not supported")
        return ctx.b.op("Resize", [x, None, None, sizes], attrs)
    scales = ctx.b.const(np.asarray([1.0, 1.0, *[float(f) for f in factors or []]], np.float32))
    return ctx.b.op("Resize", [x, None, scales], attrs)
