"""Integer arithmetic as ONNX nodes: LiteRT's fixed-point helpers (tflite/kernels/internal/common.h,
gemmlowp's fixedpoint.h) in int64 Mul/Add/Mod/Div and comparisons, bit for bit.

Every division is of a value by a positive power of two or a positive count, written as
`(x - Mod(x, d)) / d` (Mod with fmod=0 takes the divisor's sign): the division is then exact, so
the result does not depend on how a runtime rounds an integer Div (ONNX leaves it open). ORT's
BitShift takes unsigned types only, so no shift is used either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from ...metadata import SOURCE_OP
from ...opsets.graph_edit import TAKEN_NAMES, fresh_name, initializer, value_names

INT64 = ir.DataType.INT64


BOOL_RESULTS = frozenset({"Less", "Greater", "Equal", "GreaterOrEqual", "And", "Or", "Not"})


def _result_type(op_type: str, inputs: tuple[ir.Value | None, ...], attrs: dict[str, Any]) -> ir.DataType | None:
    """The element type of what an op makes (the checker wants every value typed)."""
    if op_type == "Cast":
        return ir.DataType(attrs["to"])
    if op_type in BOOL_RESULTS:
        return ir.DataType.BOOL
    if op_type in ("ConvInteger", "MatMulInteger"):
        return ir.DataType.INT32
    if op_type in ("Shape", "Size"):
        return INT64
    source = inputs[1] if op_type == "Where" else inputs[0]
    return source.dtype if source is not None else None


class Emitter:
    """Nodes for one island of the canonical graph, collected in order (the caller adds them)."""

    def __init__(self, graph: ir.Graph, base: str, label: str) -> None:
        self.graph, self.base, self.label = graph, base, label  # label: the source op, stamped on each node
        self.nodes: list[ir.Node] = []
        if TAKEN_NAMES not in graph.meta:  # (a setdefault would scan the graph's names for every island)
            graph.meta[TAKEN_NAMES] = value_names(graph)  # names of nodes not yet in the graph count too

    def op(self, op_type: str, *inputs: ir.Value | None, outputs: int = 1, **attrs: Any) -> ir.Value:
        return self.ops(op_type, *inputs, outputs=outputs, **attrs)[0]

    def ops(self, op_type: str, *inputs: ir.Value | None, outputs: int = 1, **attrs: Any) -> list[ir.Value]:
        name = fresh_name(self.graph, f"{self.base}_{op_type.lower()}")
        attributes = ir.convenience.convert_attributes({k: v for k, v in attrs.items() if v is not None})
        node = ir.Node("", op_type, list(inputs), attributes, num_outputs=outputs, name=name)
        node.metadata_props[SOURCE_OP] = self.label
        dtype = _result_type(op_type, inputs, attrs)
        for k, value in enumerate(node.outputs):
            value.name = name if k == 0 else fresh_name(self.graph, f"{name}_{k}")
            if dtype is not None:
                value.type = ir.TensorType(dtype)
        self.nodes.append(node)
        return list(node.outputs)

    def const(self, array: Any, dtype: Any = np.int64) -> ir.Value:
        return initializer(self.graph, np.asarray(array, dtype), f"{self.base}_c")

    # --- integer values -------------------------------------------------------------------
    def reduce(self, op_type: str, x: ir.Value, axes: list[int], keepdims: int = 1) -> ir.Value:
        """A Reduce op over `axes`: given as an input from the opset that takes it so (ReduceSum
        13, the others 18), else as the attribute."""
        opset = self.graph.opset_imports.get("", 13)
        if opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, x, self.const(axes), keepdims=keepdims)
        return self.op(op_type, x, axes=axes, keepdims=keepdims)

    def int64(self, x: ir.Value) -> ir.Value:
        return self.op("Cast", x, to=INT64)

    def centered(self, codes: ir.Value, zero_point: np.ndarray) -> ir.Value:
        """code - zero point, in int64 (the storage's own zero point: the same for int8 and for
        int8 stored as uint8 with zero point + 128)."""
        return self.op("Sub", self.int64(codes), self.const(zero_point))

    def stored(self, int8_codes: ir.Value, dtype: ir.DataType) -> ir.Value:
        """int8 codes (int64, already clamped) in the canonical tensor's storage type."""
        if dtype == ir.DataType.UINT8:
            int8_codes = self.op("Add", int8_codes, self.const(128))
        return self.op("Cast", int8_codes, to=dtype)

    def int8_codes(self, codes: ir.Value) -> ir.Value:
        """The int8 codes LiteRT holds, in int64, from a tensor stored as int8 or uint8 (+128)."""
        value = self.int64(codes)
        return self.op("Sub", value, self.const(128)) if codes.dtype == ir.DataType.UINT8 else value

    def clamp(self, x: ir.Value, low: int, high: int) -> ir.Value:
        return self.op("Max", self.op("Min", x, self.const(high)), self.const(low))

    def floor_div(self, x: ir.Value, divisor: ir.Value) -> ir.Value:
        """floor(x / d) for d > 0: exact whatever a runtime's integer Div rounds to."""
        return self.op("Div", self.op("Sub", x, self.op("Mod", x, divisor, fmod=0)), divisor)

    def trunc_div(self, x: ir.Value, divisor: ir.Value) -> ir.Value:
        """C++'s x / d for d > 0 (toward zero)."""
        return self.op("Mul", self.floor_div(self.op("Abs", x), divisor), self.op("Sign", x))

    def table(self, codes: ir.Value, table: np.ndarray) -> ir.Value:
        """table[code]: a Gather over 256 entries, indexed by the code's storage bits."""
        index = self.int64(codes)
        if codes.dtype == ir.DataType.INT8:
            index = self.op("Add", index, self.const(128))
        return self.op("Gather", self.const(table, table.dtype), index, axis=0)

    def round_half_away(self, x: ir.Value) -> ir.Value:
        """C's round() of a float or double, as int64: on |x|, whose fraction |x| - floor(|x|)
        is exact (for a negative x, x - floor(x) is not), one up from a half; then x's sign."""
        dtype = np.float64 if x.dtype == ir.DataType.DOUBLE else np.float32
        magnitude = self.op("Abs", x)
        floor = self.op("Floor", magnitude)
        up = self.op("GreaterOrEqual", self.op("Sub", magnitude, floor), self.const(0.5, dtype))
        rounded = self.op("Add", self.int64(floor), self.int64(up))
        return self.op("Mul", rounded, self.int64(self.op("Sign", x)))

    # --- LiteRT's fixed point ---------------------------------------------------------------
    def doubling_high_mul(self, x: ir.Value, multiplier: np.ndarray | int | ir.Value) -> ir.Value:
        """SaturatingRoundingDoublingHighMul(x, m): (x*m + nudge) / 2^31 toward zero, nudge
        2^30 or 1 - 2^30 (its one saturating case, both INT32_MIN, cannot happen where used: a
        multiplier is never INT32_MIN)."""
        factor = multiplier if isinstance(multiplier, ir.Value) else self.const(multiplier)
        product = self.op("Mul", x, factor)
        negative = self.op("Less", product, self.const(0))
        nudge = self.op("Where", negative, self.const(1 - (1 << 30)), self.const(1 << 30))
        return self.trunc_div(self.op("Add", product, nudge), self.const(1 << 31))

    def rounding_divide_by_pot(self, x: ir.Value, exponent: np.ndarray | ir.Value) -> ir.Value:
        """RoundingDivideByPOT: x / 2^e, halves away from zero (e per channel, or computed at
        run time, allowed)."""
        if isinstance(exponent, ir.Value):  # 2^e from a table: exact, for e in [0, 62]
            power = self.op("Gather", self.const(np.left_shift(1, np.arange(63, dtype=np.int64))), exponent, axis=0)
            half_mask = self.floor_div(self.op("Sub", power, self.const(1)), self.const(2))
        else:
            exponent = np.asarray(exponent, np.int64)
            if not exponent.any():
                return x
            power = self.const(np.left_shift(1, exponent))
            half_mask = self.const((np.left_shift(1, exponent) - 1) >> 1)
        remainder = self.op("Mod", x, power, fmod=0)  # x & mask, in two's complement
        threshold = self.op("Add", half_mask, self.op("Cast", self.op("Less", x, self.const(0)), to=INT64))
        up = self.op("Cast", self.op("Greater", remainder, threshold), to=INT64)
        return self.op("Add", self.op("Div", self.op("Sub", x, remainder), power), up)

    def saturating_shift_left(self, x: ir.Value, exponent: int) -> ir.Value:
        """gemmlowp's SaturatingRoundingMultiplyByPOT<e> for e > 0, on int32: x * 2^e, or the
        int32 limit past +-(2^(31-e) - 1)."""
        threshold = (1 << (31 - exponent)) - 1
        shifted = self.op("Mul", x, self.const(1 << exponent))
        high = self.op("Where", self.op("Greater", x, self.const(threshold)), self.const((1 << 31) - 1), shifted)
        return self.op("Where", self.op("Less", x, self.const(-threshold)), self.const(-(1 << 31)), high)

    def multiply_by_quantized_multiplier(self, x: ir.Value, multiplier: np.ndarray, shift: np.ndarray) -> ir.Value:
        """MultiplyByQuantizedMultiplier, double rounding (LiteRT's default build, without
        TFLITE_SINGLE_ROUNDING); multiplier and shift per tensor or shaped to broadcast per channel."""
        shift = np.asarray(shift, np.int64)
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        if left.any():
            x = self.op("Mul", x, self.const(np.left_shift(1, left)))
        return self.rounding_divide_by_pot(self.doubling_high_mul(x, np.asarray(multiplier, np.int64)), right)
