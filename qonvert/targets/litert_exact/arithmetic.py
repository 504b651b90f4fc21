"""The islands that accumulate: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, SUB, MUL,
AVERAGE_POOL_2D and MEAN, each as its LiteRT reference kernel computes it for int8
(tflite/kernels/internal/reference/integer_ops/, reduce.h), with the multipliers its Prepare
computes (kernel_util.cc, add.cc, sub.cc, mul.cc, reduce.cc): some in double, some in float32
first, as each does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from ...converters.tflite.quant import quantize_multiplier
from ...opsets.graph_edit import const_array, weight_dq
from .emit import Emitter
from .islands import Codes, Island, Unsupported

F64 = np.float64
FLOAT_EXACT = 1 << 24  # float32 holds every integer up to here: a sum of codes below it is exact


def multipliers(reals: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return np.asarray([m for m, _ in pairs], np.int64), np.asarray([s for _, s in pairs], np.int64)


def per_channel(array: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast along `axis` of a rank-`rank` tensor (a scalar
    stays a scalar)."""
    if array.size == 1:
        return array.reshape(())
    return array.reshape([-1 if k == axis else 1 for k in range(rank)])


def requantized(emit: Emitter, acc: ir.Value, multiplier: np.ndarray, shift: np.ndarray, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """An int32 accumulator in the output's int8 codes: MultiplyByQuantizedMultiplier, plus the
    output zero point, clamped to the activation range."""
    scaled = emit.multiply_by_quantized_multiplier(acc, multiplier, shift)
    return emit.clamp(emit.op("Add", scaled, emit.const(out.zero_point)), *clamp)


def _weight(value: ir.Value | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A weight's int8 codes and its scales (zero points 0, as LiteRT's int8 kernels take)."""
    found = weight_dq(value)
    if found is None or found[1].dtype != np.int8:
        raise Unsupported(f"the {what} is not an int8 constant")
    _, codes, qp = found
    if np.any(qp.zero_point != 0):
        raise Unsupported(f"the {what} has a zero point other than 0")
    return codes, np.atleast_1d(qp.scale).astype(np.float32)


def _zero_points(emit: Emitter, x: Codes) -> tuple[ir.Value, ir.Value]:
    """ConvInteger's and MatMulInteger's zero points: the input's, in its storage; the weight's 0."""
    return emit.const(x.storage_zero_point, x.storage_zero_point.dtype), emit.const(0, np.int8)


def _bias(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    found = weight_dq(value)
    if found is None or found[1].dtype != np.int32:
        raise Unsupported("the bias is not an int32 constant")
    return found[1].astype(np.int64)


def conv(emit: Emitter, island: Island, node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """ConvPerChannel / DepthwiseConvPerChannel: int32 sums of (x - zero point) * w, plus the
    bias, rescaled per output channel by input scale * weight scale / output scale (double)."""
    x = island.codes_of(node.inputs[0])
    codes, scales = _weight(node.inputs[1], "weight")
    channels = codes.shape[0]
    rank = codes.ndim
    attrs = {name: attr.value for name, attr in node.attributes.items()}
    acc = emit.int64(emit.op("ConvInteger", x.value, emit.const(codes, np.int8), *_zero_points(emit, x), **attrs))
    bias = _bias(node.inputs[2] if len(node.inputs) > 2 else None)
    if bias is not None:
        acc = emit.op("Add", acc, emit.const(per_channel(bias, rank, 1)))
    reals = F64(x.scale) * np.broadcast_to(scales, (channels,)).astype(F64) / F64(out.scale)
    multiplier, shift = multipliers(reals)
    return requantized(emit, acc, per_channel(multiplier, rank, 1), per_channel(shift, rank, 1), out, clamp)


def fully_connected(emit: Emitter, island: Island, node: ir.Node, x_codes: ir.Value, x: Codes, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """reference_integer_ops::FullyConnected and FullyConnectedPerChannel, which unlike the
    other kernels rescale in double: round(acc * input scale * weight scale / output scale),
    halves away from zero (the optimized kernels use the fixed-point multiplier)."""
    attrs = {name: attr.value for name, attr in node.attributes.items()}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise Unsupported("a Gemm with transA, alpha or beta is not LiteRT's FULLY_CONNECTED")
    codes, scales = _weight(node.inputs[1], "weight")
    if codes.ndim != 2:
        raise Unsupported("the weight is not a matrix")
    weight = codes.T if attrs.get("transB", 0) else codes  # [K, M]
    acc = emit.int64(emit.op("MatMulInteger", x_codes, emit.const(np.ascontiguousarray(weight), np.int8), *_zero_points(emit, x)))
    bias = _bias(node.inputs[2] if len(node.inputs) > 2 else None)
    if bias is not None:
        acc = emit.op("Add", acc, emit.const(bias))
    effective = F64(x.scale) * scales.astype(F64) / F64(out.scale)
    scaled = emit.op("Mul", emit.op("Cast", acc, to=ir.DataType.DOUBLE), emit.const(per_channel(effective, 1, 0), F64))
    return emit.clamp(emit.op("Add", emit.round_half_away(scaled), emit.const(out.zero_point)), *clamp)


ADD_LEFT_SHIFT = 20  # add.cc, sub.cc: 8-bit inputs are shifted left 20 bits before rescaling


def add_sub(emit: Emitter, island: Island, node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """AddFunc / BroadcastQuantSubSlow: both inputs shifted left 20 bits and rescaled to twice
    the larger input scale, summed, rescaled to the output."""
    a, b = (island.codes_of(v) for v in node.inputs[:2])
    twice_max = F64(2 * max(a.scale, b.scale))
    real_out = twice_max / F64(np.float32((1 << ADD_LEFT_SHIFT) * out.scale))
    if real_out >= 1.0:
        raise Unsupported(f"output scale {out.scale} against input scales {a.scale}, {b.scale}: LiteRT's kernel rescales by {real_out:.3g} >= 1")
    scaled = []
    for codes in (a, b):
        multiplier, shift = quantize_multiplier(float(F64(codes.scale) / twice_max))
        shifted = emit.op("Mul", emit.centered(codes.value, codes.storage_zero_point), emit.const(1 << ADD_LEFT_SHIFT))
        scaled.append(emit.multiply_by_quantized_multiplier(shifted, np.asarray(multiplier), np.asarray(shift)))
    raw = emit.op("Add" if node.op_type == "Add" else "Sub", *scaled)
    multiplier, shift = quantize_multiplier(float(real_out))
    return requantized(emit, raw, np.asarray(multiplier), np.asarray(shift), out, clamp)


def mul(emit: Emitter, island: Island, node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """MulElementwise: the product of the centred codes, rescaled by the scales' product over
    the output scale, computed in float32 (mul.cc) and then taken as double."""
    a, b = (island.codes_of(v) for v in node.inputs[:2])
    product = emit.op("Mul", emit.centered(a.value, a.storage_zero_point), emit.centered(b.value, b.storage_zero_point))
    multiplier, shift = quantize_multiplier(float(np.float32(a.scale * b.scale) / out.scale))
    return requantized(emit, product, np.asarray(multiplier), np.asarray(shift), out, clamp)


def prelu(emit: Emitter, island: Island, node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """BroadcastPrelu4DSlow: the centred input rescaled by input / output scale where it is not
    negative, else its product with the centred alpha by input * alpha / output scale (both in
    float32, as PreluPrepare computes them)."""
    x, alpha = (island.codes_of(v) for v in node.inputs[:2])
    centred = emit.centered(x.value, x.storage_zero_point)
    positive = emit.multiply_by_quantized_multiplier(centred, *map(np.asarray, quantize_multiplier(float(x.scale / out.scale))))
    product = emit.op("Mul", centred, emit.centered(alpha.value, alpha.storage_zero_point))
    negative_real = float(np.float32(x.scale * alpha.scale) / out.scale)
    negative = emit.multiply_by_quantized_multiplier(product, *map(np.asarray, quantize_multiplier(negative_real)))
    chosen = emit.op("Where", emit.op("GreaterOrEqual", centred, emit.const(0)), positive, negative)
    return emit.clamp(emit.op("Add", chosen, emit.const(out.zero_point)), *clamp)


def average_pool(emit: Emitter, island: Island, node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """reference_integer_ops::AveragePool: the sum of the raw int8 codes over the window's valid
    positions, divided by their count, rounded half away from zero (input and output share
    their quantization)."""
    x = island.codes_of(node.inputs[0])
    attrs = {name: attr.value for name, attr in node.attributes.items()}
    if not x.same_as(out):
        raise Unsupported("input and output quantized differently: LiteRT's average pool keeps the quantization")
    if attrs.get("count_include_pad", 0) or attrs.get("ceil_mode", 0) or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise Unsupported("padding that LiteRT's average pool does not count")
    channels = x.value.shape[1] if x.value.shape is not None and len(x.value.shape) > 1 else None
    kernel = list(attrs["kernel_shape"])
    if not isinstance(channels, int) or int(np.prod(kernel)) * 128 >= FLOAT_EXACT:
        raise Unsupported("its channel count is unknown, or its window too large to sum exactly")
    window = {k: v for k, v in attrs.items() if k in ("strides", "pads", "dilations")}
    ones = emit.const(np.ones([channels, 1, *kernel], np.float32), np.float32)
    codes = emit.op("Cast", emit.int8_codes(x.value), to=ir.DataType.FLOAT)
    total = emit.int64(emit.op("Conv", codes, ones, group=channels, **window))  # exact: integers below 2^24
    ones_like = emit.op("Add", emit.op("Mul", codes, emit.const(0.0, np.float32)), emit.const(1.0, np.float32))
    count = emit.int64(emit.op("Conv", ones_like, ones, group=channels, **window))  # the window's valid positions
    half = emit.floor_div(count, emit.const(2))
    nudged = emit.op("Where", emit.op("Greater", total, emit.const(0)), emit.op("Add", total, half), emit.op("Sub", total, half))
    return emit.clamp(emit.trunc_div(nudged, count), *clamp)


def mean(emit: Emitter, island: Island, node: ir.Node, out: Codes) -> ir.Value:
    """reference_ops::QuantizedMeanOrSum: the sum of the raw codes less zero point * count,
    rescaled by input scale / output scale (double) with 1/count folded into the multiplier."""
    x = island.codes_of(node.inputs[0])
    shape = x.value.shape
    axes_value = node.inputs[1] if len(node.inputs) > 1 else None
    attr = node.attributes.get("axes")
    axes = const_array(axes_value) if axes_value is not None else (np.asarray(attr.value) if attr is not None else None)
    dims = list(shape) if shape is not None else []
    if axes is None or not dims or not all(isinstance(dims[int(a)], int) for a in axes.ravel()):
        raise Unsupported("its reduced axes or their sizes are unknown")
    count = math.prod(d for a in axes.ravel() if isinstance(d := dims[int(a)], int))
    keepdims = node.attributes.get("keepdims")
    total = emit.reduce("ReduceSum", emit.int8_codes(x.value), [int(a) for a in axes.ravel()], keepdims.value if keepdims is not None else 1)
    shifted = emit.op("Sub", total, emit.const(x.zero_point * count))
    multiplier, shift = quantize_multiplier(float(F64(x.scale) / F64(out.scale)))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << fold) // count if fold >= 0 else multiplier
    return requantized(emit, shifted, np.asarray(multiplier), np.asarray(shift - fold), out, (-128, 127))


def fused_activation(nodes: list[ir.Node]) -> tuple[list[ir.Node], float | None, float | None]:
    """The island's core ops, and the clamp of the activation fused after them (a trailing Relu
    or Clip with constant bounds), as (core, low, high)."""
    low: float | None = None
    high: float | None = None
    core = list(nodes)
    while len(core) > 1 and core[-1].op_type in ("Relu", "Clip") and core[-1].inputs[0] is core[-2].outputs[0]:
        last = core.pop()
        bounds = clip_bounds(last)
        low = bounds[0] if low is None else max(low, bounds[0]) if bounds[0] is not None else low
        high = bounds[1] if high is None else min(high, bounds[1]) if bounds[1] is not None else high
    return core, low, high


def clip_bounds(node: ir.Node) -> tuple[float | None, float | None]:
    if node.op_type == "Relu":
        return 0.0, None
    bounds = []
    for k in (1, 2):
        value = node.inputs[k] if len(node.inputs) > k else None
        array = const_array(value) if value is not None else None
        if value is not None and array is None:
            raise Unsupported("a Clip with bounds computed at run time")
        bounds.append(None if array is None else float(array))
    return bounds[0], bounds[1]
