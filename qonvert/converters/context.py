"""Runs the op mappers over a source graph, in source order, into a GraphBuilder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import QonvertError, UnsupportedOpsError
from ..opsets.builder import GraphBuilder
from .registry import lookup
from .source import SourceGraph, SourceOp

MAIN_OUTPUT_SLOTS = ("Out", "Output", "Y", "out")
_NP_TO_IR = {
    "float32": ir.DataType.FLOAT,
    "float16": ir.DataType.FLOAT16,
    "float64": ir.DataType.DOUBLE,
    "int64": ir.DataType.INT64,
    "int32": ir.DataType.INT32,
    "int8": ir.DataType.INT8,
    "uint8": ir.DataType.UINT8,
    "bool": ir.DataType.BOOL,
}


class ConversionContext:
    """What a mapper sees: the source graph's values as ONNX values, and the builder."""

    def __init__(self, source: SourceGraph, builder: GraphBuilder) -> None:
        self.source = source
        self.b = builder
        self.values: dict[str, ir.Value] = {}
        self.name_map: dict[str, str] = {}  # source tensor -> ONNX value, where they differ
        self.remarks: list[str] = []

    # -- reading inputs -----------------------------------------------------------
    def array(self, name: str | None) -> np.ndarray | None:
        """The constant value of a source tensor, or None when it is computed at run time."""
        if name is None:
            return None
        if name in self.source.constants:
            return self.source.constants[name]
        value = self.values.get(name)
        if value is not None and value.const_value is not None:
            return value.const_value.numpy()
        return None

    def value(self, name: str | None) -> ir.Value:
        if name is None:
            raise QonvertError("missing input")
        if name not in self.values:
            if name not in self.source.constants:
                raise QonvertError(f"{self.source.path}: tensor {name!r} is used before it is produced")
            self.values[name] = self.b.const(self.source.constants[name], name)
        return self.values[name]

    def input(self, op: SourceOp, slot: str, index: int = 0) -> ir.Value:
        name = op.input(slot, index)
        if name is None:
            raise QonvertError(f"op {op.label}: missing input {slot}")
        return self.value(name)

    def shape(self, name: str | None) -> tuple[int, ...] | None:
        if name is None:
            return None
        if name in self.source.constants:
            return tuple(self.source.constants[name].shape)
        return self.source.shapes.get(name)

    def rank(self, op: SourceOp, slot: str) -> int:
        shape = self.shape(op.input(slot))
        if shape is None:
            raise QonvertError(f"op {op.label}: rank of input {slot} is unknown")
        return len(shape)

    # -- binding outputs ----------------------------------------------------------
    def bind(self, op: SourceOp, result: Any) -> None:
        if result is None:
            return
        if isinstance(result, dict):
            items = list(result.items())
        else:
            slot = next((s for s in MAIN_OUTPUT_SLOTS if op.outputs.get(s)), next(iter(op.outputs), None))
            if slot is None:
                return
            items = [(slot, result)]
        for slot, res in items:
            names = op.outputs.get(slot) or []
            vals = list(res) if isinstance(res, (list, tuple)) else [res]
            for name, val in zip(names, vals, strict=False):
                self._bind_one(name, val)

    def _bind_one(self, name: str, val: ir.Value) -> None:
        if val.producer() is not None and not val.is_graph_input() and val.name not in self.b.initializers:
            if val.name != name and name not in self.b._names:
                self.b._names.discard(val.name)
                val.name = self.b.claim(name)
        if val.name != name:
            self.name_map[name] = val.name or ""
        self.values[name] = val


def run_mappers(source: SourceGraph, builder: GraphBuilder, skip: Callable[[SourceOp], bool]) -> ConversionContext:
    """Pre-flight every op (all unsupported ones in one error), then map them in order."""
    missing: dict[str, list[str]] = {}
    for op in source.ops:
        if not skip(op) and lookup(source.framework, op.type) is None:
            missing.setdefault(op.type, []).append(op.label)
    if missing:
        raise UnsupportedOpsError(source.path, missing)

    ctx = ConversionContext(source, builder)
    for info in source.inputs:
        dims = [d if d >= 0 else f"{info.name}_d{i}" for i, d in enumerate(info.shape)]
        value = ir.Value(name=builder.claim(info.name), shape=ir.Shape(dims), type=ir.TensorType(_NP_TO_IR[info.dtype]))
        ctx.values[info.name] = value
    for op in source.ops:
        if skip(op):
            continue
        mapper = lookup(source.framework, op.type)
        assert mapper is not None
        try:
            ctx.bind(op, mapper(ctx, op))
        except QonvertError as exc:
            if op.type in str(exc):
                raise
            raise QonvertError(f"{source.path}: op {op.label}: {exc}") from exc
    return ctx
