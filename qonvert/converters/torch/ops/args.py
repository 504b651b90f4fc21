"""Reading an aten call's arguments: position i is slot str(i) (a tensor) or attr str(i) (a literal),
or the keyword of that name; the reader (torch/export.py) stores both ways."""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from ....errors import InputError
from ...context import ConversionContext
from ...source import SourceOp


def literal(op: SourceOp, index: int, name: str, default: Any = None) -> Any:
    for key in (str(index), name):
        if key in op.attrs:
            return op.attrs[key]
    return default


def tensor(ctx: ConversionContext, op: SourceOp, index: int, name: str = "") -> ir.Value:
    for key in (str(index), name):
        if op.inputs.get(key):
            return ctx.value(op.inputs[key][0])
    raise InputError(f"op {op.label}: argument {index} ({name or '?'}) is not a tensor")


def tensor_name(op: SourceOp, index: int, name: str = "") -> str | None:
    for key in (str(index), name):
        if op.inputs.get(key):
            return op.inputs[key][0]
    return None


def operand(ctx: ConversionContext, op: SourceOp, index: int, name: str = "") -> ir.Value:
    """A tensor argument, or a number literal as a constant of the op's tensor's dtype, as PyTorch
    promotes it: float32 (add.Tensor(x, 2.0)), or an integer one for an integer tensor (a position
    index plus an offset)."""
    if tensor_name(op, index, name) is not None:
        return tensor(ctx, op, index, name)
    value = literal(op, index, name)
    if not isinstance(value, (int, float)):
        raise InputError(f"op {op.label}: argument {index} ({name or '?'}) is neither a tensor nor a number")
    import numpy as np

    other = next((names[0] for names in op.inputs.values() if names), None)
    dtype = ctx.source.dtypes.get(other or "", "float32") if other not in ctx.source.quant else "float32"
    if isinstance(value, int) and not isinstance(value, bool) and dtype in ("int64", "int32"):
        return ctx.b.const(np.asarray(value, dtype))
    return ctx.b.const(np.float32(value))


def rank(ctx: ConversionContext, op: SourceOp, index: int = 0) -> int:
    shape = ctx.shape(tensor_name(op, index))
    if shape is None:
        raise InputError(f"op {op.label}: the rank of argument {index} is unknown")
    return len(shape)
