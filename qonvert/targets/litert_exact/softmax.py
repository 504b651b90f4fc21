"""SOFTMAX on int8 as LiteRT's reference kernel computes it (reference/softmax.h, with gemmlowp's
fixed point, fixedpoint.h): each code's difference from its row's largest, rescaled by
input scale * beta into Q5.26; exp of it in Q0.31 (a table over the 256 differences, computed
here as gemmlowp does); the row's sum in Q12.19; its reciprocal by gemmlowp's Newton-Raphson
(one_over_one_plus_x_for_x_in_0_1, emitted as int64 ops per row); the product, shifted to the
output's 1/256 steps.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from ...converters.tflite.quant import doubling_high_mul, quantize_multiplier, rounding_divide_by_pot
from .emit import INT64, Emitter
from .islands import Codes, Island, Unsupported

INT32_MAX, INT32_MIN = (1 << 31) - 1, -(1 << 31)
DIFF_INTEGER_BITS = 5  # Q5.26: the rescaled input differences
SUM_INTEGER_BITS = 12  # Q12.19: the sum of exps
MAX_DEPTH = 1 << (31 - 19)  # a longer row could pass int32 in the sum


def _wrap(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def _shift_left(value: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT<e>, e > 0."""
    threshold = (1 << (31 - exponent)) - 1
    return INT32_MAX if value > threshold else INT32_MIN if value < -threshold else value << exponent


def _exp_on_quarter(a: int) -> int:
    """exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31."""
    constant_term, one_third = 1895147668, 715827883
    x = _wrap(a + (1 << 28))
    x2 = doubling_high_mul(x, x)
    x3 = doubling_high_mul(x2, x)
    x4 = doubling_high_mul(x2, x2)
    polynomial = rounding_divide_by_pot(_wrap(doubling_high_mul(_wrap(rounding_divide_by_pot(x4, 2) + x3), one_third) + x2), 1)
    return _wrap(constant_term + doubling_high_mul(constant_term, _wrap(x + polynomial)))


BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int) -> int:
    """gemmlowp's exp_on_negative_values of a Q5.26 value <= 0, in Q0.31."""
    fractional = 31 - DIFF_INTEGER_BITS
    quarter = 1 << (fractional - 2)
    a_mod_quarter = _wrap((a & (quarter - 1)) - quarter)
    result = _exp_on_quarter(_shift_left(a_mod_quarter, DIFF_INTEGER_BITS))  # Rescale<0> of Q5.26
    remainder = _wrap(a_mod_quarter - a)
    for exponent, multiplier in BARREL:
        if DIFF_INTEGER_BITS > exponent and remainder & (1 << (fractional + exponent)):
            result = doubling_high_mul(result, multiplier)
    return INT32_MAX if a == 0 else result


def tables(x: Codes, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each difference d = row max - code (0..255): the exp term of the sum (Q12.19), the exp
    (Q0.31), and whether LiteRT counts it (d within diff_min)."""
    real = min(float(np.float64(beta) * np.float64(x.scale) * (1 << (31 - DIFF_INTEGER_BITS))), (1 << 31) - 1.0)
    multiplier, shift = quantize_multiplier(real)  # PreprocessSoftmaxScaling
    if shift < 0:
        raise Unsupported(f"input scale {x.scale}: LiteRT's int8 softmax takes a scaled input step of at least 2^-26")
    diff_min = -math.floor(((1 << DIFF_INTEGER_BITS) - 1) * (1 << (31 - DIFF_INTEGER_BITS)) / (1 << shift))
    sums, exps, counted = [], [], []
    for d in range(256):
        valid = -d >= diff_min
        e = exp_on_negative_values(doubling_high_mul(_wrap(-d * (1 << shift)), multiplier)) if valid else 0
        sums.append(rounding_divide_by_pot(e, SUM_INTEGER_BITS) if valid else 0)  # Rescale<12>
        exps.append(e)
        counted.append(valid)
    return np.asarray(sums, np.int64), np.asarray(exps, np.int64), np.asarray(counted)


def softmax(emit: Emitter, island: Island, node: ir.Node, out: Codes, beta: float) -> ir.Value:
    x = island.codes_of(node.inputs[0])
    if out.zero_point != -128 or abs(float(out.scale) - 1.0 / 256) > 0.001 / 256:
        raise Unsupported("LiteRT's int8 softmax writes scale 1/256, zero point -128 only")
    attr = node.attributes.get("axis")
    axis = attr.value if attr is not None else -1
    shape = x.value.shape
    depth = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None
    if not isinstance(depth, int) or depth >= MAX_DEPTH:
        raise Unsupported(f"its row length is unknown or past {MAX_DEPTH - 1}")
    sum_table, exp_table, counted = tables(x, beta)
    codes = emit.int8_codes(x.value)
    diff = emit.op("Sub", emit.reduce("ReduceMax", codes, [axis]), codes)  # 0..255
    total = emit.reduce("ReduceSum", emit.op("Gather", emit.const(sum_table), diff, axis=0), [axis])
    scale, exponent = _reciprocal(emit, total)
    product = emit.doubling_high_mul(emit.op("Gather", emit.const(exp_table), diff, axis=0), scale)
    shifted = emit.op("Add", emit.rounding_divide_by_pot(product, exponent), emit.const(-128))
    clamped = emit.clamp(shifted, -128, 127)
    return emit.op("Where", emit.op("Gather", emit.const(counted, np.bool_), diff, axis=0), clamped, emit.const(-128))


def _reciprocal(emit: Emitter, total: ir.Value) -> tuple[ir.Value, ir.Value]:
    """GetReciprocal(sum, 12): the Q0.31 scale and the output shift (num_bits_over_unit + 23)."""
    powers = emit.const(np.left_shift(1, np.arange(32, dtype=np.int64)))
    at_least = emit.op("GreaterOrEqual", emit.op("Unsqueeze", total, emit.const([-1])), powers)
    bit_length = emit.reduce("ReduceSum", emit.op("Cast", at_least, to=INT64), [-1], keepdims=0)
    headroom = emit.op("Sub", emit.const(32), bit_length)  # CountLeadingZeros (the sum is > 0)
    shifted = emit.op("Sub", emit.op("Mul", total, emit.op("Gather", powers, headroom, axis=0)), emit.const(1 << 31))
    half_denominator = emit.floor_div(emit.op("Add", shifted, emit.const(1 << 31)), emit.const(2))  # RoundingHalfSum(a, One)
    x = emit.op("Add", emit.const(1515870810), emit.doubling_high_mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = emit.op("Sub", emit.const(1 << 29), emit.doubling_high_mul(half_denominator, x))
        x = emit.op("Add", x, emit.saturating_shift_left(emit.doubling_high_mul(x, one_minus), 2))
    scale = emit.saturating_shift_left(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x))
    exponent = emit.op("Sub", emit.const(SUM_INTEGER_BITS + 31 - 8), headroom)
    return scale, exponent
