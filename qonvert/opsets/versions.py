"""The opset table: the one place opset numbers are written. What each op (and each attribute,
input count and quantized type of it) first needs is read from onnx.defs, not typed.

A conversion is built at the lowest opset that represents the model (contract: "Opset"): the
registry's mappers say what they emit beyond MIN_OPSET (`register(..., opset=first_opset(...))`),
the quantization says what its dtypes need, and GraphBuilder.op refuses, as an internal error, an
op, attribute or input the model's opset does not have.
"""

from __future__ import annotations

import functools

import onnx.defs
import onnx.helper

MIN_OPSET = 13  # per-axis QuantizeLinear / DequantizeLinear
MAX_OPSET = 24  # the newest that ONNX Runtime 1.32 runs
TORCHLIB_OPSET = 18  # onnxscript's torchlib functions are written for it (torch.onnx's TORCHLIB_OPSET)
# onnx.defs records attributes, not their values: ScatterND / ScatterElements take reduction
# "max" and "min" from 18 on (16 had "add" and "mul" only).
SCATTER_MIN_MAX_OPSET = 18


class OpsetError(Exception):
    """An op the model's opset cannot express (GraphBuilder.op turns it into an internal error)."""


@functools.cache
def ir_version(opset: int) -> int:
    """The IR version of the first ONNX release with this opset (what ORT and onnx.checker expect)."""
    versions = [ir for _release, ir, op, *_ in onnx.helper.VERSION_TABLE if op == opset]
    if not versions:
        raise OpsetError(f"opset {opset} is in no ONNX release this onnx package knows")
    return min(versions)


@functools.cache
def first_opset(op_type: str, attribute: str | None = None, *, inputs: int = 0, domain: str = "") -> int:
    """The first opset (from MIN_OPSET) whose `op_type` has `attribute` and takes `inputs` inputs."""
    for opset in range(MIN_OPSET, MAX_OPSET + 1):
        if _expresses(op_type, domain, opset, attribute, inputs):
            return opset
    raise OpsetError(f"{op_type}{f'({attribute})' if attribute else ''} is in no opset up to {MAX_OPSET}")


def blocked_qdq_opset() -> int:
    """The first opset with block-wise (grouped) Q/DQ: torchao's group-wise int4 and int8 weights."""
    return first_opset("DequantizeLinear", "block_size")


@functools.cache
def quantized_type_opset(dtype: str, dequantize_only: bool = False) -> int:
    """The first opset whose QuantizeLinear and DequantizeLinear take `dtype` (int16 and int4: 21)."""
    ops = ("DequantizeLinear",) if dequantize_only else ("QuantizeLinear", "DequantizeLinear")
    for opset in range(MIN_OPSET, MAX_OPSET + 1):
        if all(_takes_type(op, opset, f"tensor({dtype})") for op in ops):
            return opset
    raise OpsetError(f"no opset up to {MAX_OPSET} quantizes to {dtype}")


def check_op(op_type: str, domain: str, opset: int, attributes: set[str], inputs: int) -> None:
    """Raise OpsetError where the op, one of its attributes or its input count is newer than `opset`."""
    if domain not in ("", "ai.onnx"):
        return  # contrib ops (com.microsoft) are versioned by ORT, not by the opset
    schema = _schema(op_type, domain, opset)
    if schema is None:
        raise OpsetError(f"{op_type} is not in opset {opset}")
    unknown = sorted(attributes - set(schema.attributes))
    if unknown:
        raise OpsetError(f"{op_type} has no attribute {unknown[0]!r} in opset {opset}")
    if inputs > schema.max_input:
        raise OpsetError(f"{op_type} takes at most {schema.max_input} inputs in opset {opset}, given {inputs}")


@functools.cache
def _schema(op_type: str, domain: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def _expresses(op_type: str, domain: str, opset: int, attribute: str | None, inputs: int) -> bool:
    schema = _schema(op_type, domain, opset)
    return schema is not None and (attribute is None or attribute in schema.attributes) and inputs <= schema.max_input


def _takes_type(op_type: str, opset: int, type_str: str) -> bool:
    schema = _schema(op_type, "", opset)
    return schema is not None and any(type_str in c.allowed_type_strs for c in schema.type_constraints)
