"""Ops of one int8 input whose result depends on the code alone: a 256-entry table, computed here
the way LiteRT's reference kernel computes each entry (tflite/kernels/activations.cc,
quantize.cc), and looked up by a Gather. Where LiteRT itself uses a table (LOGISTIC, TANH:
LUTPopulateInt8, in float32) this is the same table; elsewhere (the RELU family, LEAKY_RELU,
HARD_SWISH, QUANTIZE) it is the fixed-point arithmetic run on every code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ...converters.tflite.quant import multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot
from .islands import Codes, Unsupported

CODES = range(-128, 128)  # LiteRT's int8 codes, in the order of the table's index (code + 128)
F32 = np.float32


def round_away(x: float) -> int:
    """TfLiteRound / std::round: halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def activation_range(out: Codes, low: float | None, high: float | None) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp of a fused or standalone RELU-family op, in
    the output's codes (the float bound divided by the scale in float32, rounded away from 0)."""
    lo, hi = -128, 127
    if low is not None:
        lo = max(lo, out.zero_point + round_away(float(F32(low) / out.scale)))
    if high is not None:
        hi = min(hi, out.zero_point + round_away(float(F32(high) / out.scale)))
    return lo, hi


def requantize(x: Codes, out: Codes, real: float, low: float | None = None, high: float | None = None) -> np.ndarray:
    """zero point + MultiplyByQuantizedMultiplier(code - zero point), clamped: QUANTIZE's
    Requantize and the RELU family's ReluX (real: the multiplier as that kernel computes it)."""
    multiplier, shift = quantize_multiplier(real)
    lo, hi = activation_range(out, low, high)
    return np.asarray([min(hi, max(lo, out.zero_point + multiply_by_quantized_multiplier(c - x.zero_point, multiplier, shift))) for c in CODES])


def relu_family(x: Codes, out: Codes, low: float | None, high: float | None) -> np.ndarray:
    """RELU, RELU6, RELU_N1_TO_1 and a fused activation: the rescale in float32 (input scale /
    output scale, as ReluPrepare divides them), then the clamp."""
    return requantize(x, out, float(x.scale / out.scale), low, high)


def quantize(x: Codes, out: Codes) -> np.ndarray:
    """QUANTIZE from int8: the rescale in double (quantize.cc)."""
    return requantize(x, out, float(np.float64(x.scale) / np.float64(out.scale)))


def leaky_relu(x: Codes, out: Codes, alpha: float) -> np.ndarray:
    """QuantizeLeakyRelu: identity and alpha rescales (each in float32, as LeakyReluPrepare
    computes them), by the input's sign."""
    identity = quantize_multiplier(float(x.scale / out.scale))
    alpha_real = float(x.scale * F32(alpha) / out.scale)
    scaled_alpha = quantize_multiplier(abs(alpha_real))
    table = []
    for c in CODES:
        value = c - x.zero_point
        if value >= 0:
            result = out.zero_point + multiply_by_quantized_multiplier(value, *identity)
        else:
            scaled = multiply_by_quantized_multiplier(value, *scaled_alpha)
            result = out.zero_point + (-scaled if alpha_real < 0 else scaled)
        table.append(min(127, max(-128, result)))
    return np.asarray(table)


def float_lut(x: Codes, out: Codes, transform: Callable[[np.float32], np.float32]) -> np.ndarray:
    """LUTPopulateInt8, in float32 as LiteRT computes it: dequantize, transform, times the
    inverse output scale, rounded away from zero, plus the zero point, clamped."""
    inverse = F32(1) / out.scale
    table = []
    for c in CODES:
        dequantized = F32(x.scale * F32(c - x.zero_point))
        rescaled = round_away(float(F32(transform(dequantized) * inverse)))
        table.append(min(127, max(-128, int(F32(rescaled) + F32(out.zero_point)))))
    return np.asarray(table)


def _expf(v: np.float32) -> np.float32:
    return F32(math.exp(float(v)))  # rounded from double: the correctly rounded expf


def logistic(x: Codes, out: Codes) -> np.ndarray:
    if out.scale != F32(1.0 / 256):
        raise Unsupported(f"LOGISTIC output scale {out.scale}: LiteRT's int8 kernel takes 1/256 only")
    return float_lut(x, out, lambda v: F32(1) / (F32(1) + _expf(-v)))


def tanh(x: Codes, out: Codes) -> np.ndarray:
    return float_lut(x, out, lambda v: F32(math.tanh(float(v))))


def _int16(v: int) -> int:
    return (v + (1 << 15)) % (1 << 16) - (1 << 15)


def _downscale_to_int16(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def _doubling_high_mul16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    nudged = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return _int16(abs(nudged) // (1 << 15) * (1 if nudged >= 0 else -1))


def _saturating_left_shift16(value: int, amount: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, value * (1 << amount)))


def hard_swish(x: Codes, out: Codes) -> np.ndarray:
    """reference_ops::HardSwish on int8 (tflite/kernels/internal/reference/hard_swish.h), with
    HardSwishPrepare's float32 multipliers cut to int16."""
    hires_input_scale = F32(1.0 / 128.0) * x.scale
    output_multiplier, output_exponent = quantize_multiplier(float(hires_input_scale / out.scale))
    output_multiplier = _downscale_to_int16(output_multiplier)
    if output_exponent > 0:
        raise Unsupported(f"HARD_SWISH output scale {out.scale}: LiteRT's int8 kernel needs it at least the input's / 128")
    reluish_multiplier, reluish_exponent = quantize_multiplier(float(hires_input_scale / F32(3.0 / 32768.0)))
    reluish_multiplier = _downscale_to_int16(reluish_multiplier)
    table = []
    for c in CODES:
        hires = _int16((c - x.zero_point) * (1 << 7))
        preshift_output = _doubling_high_mul16(hires, output_multiplier)
        reluish = hires
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, reluish_exponent - 1)
        reluish = _doubling_high_mul16(reluish, reluish_multiplier)
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if reluish_exponent < 0:
            reluish = rounding_divide_by_pot(reluish, -reluish_exponent)
        reluish = _int16((reluish + (1 << 15)) >> 1)
        product = reluish * preshift_output  # SaturatingDoublingHighMul: truncating, int16
        truncated = abs(product) // (1 << 15) * (1 if product >= 0 else -1)
        preshift = (1 << 15) - 1 if reluish == preshift_output == -(1 << 15) else _int16(truncated)
        value = _int16(rounding_divide_by_pot(preshift, -output_exponent) + out.zero_point)
        table.append(min(127, max(-128, value)))
    return np.asarray(table)
