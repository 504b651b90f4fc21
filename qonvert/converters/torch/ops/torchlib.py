"""Every float aten op qonvert does not map itself -> onnxscript's torchlib (the table behind
torch.onnx's dynamo exporter), called through torch.onnx's own op recorder.

Why a fallback in our dispatcher rather than letting torch.onnx lower the whole graph: qonvert's
reader, quantization parsing, provenance and canonical passes stay one path for every PyTorch
route (PT2E, torchao, an in-memory module), and the ops around a quantized tensor are ours;
torchlib only fills in the float long tail (pad, prelu, select, lstm, norms ...), whose nodes then
meet the same canonical passes as ours. torchlib's functions are written for opset 18, so a graph
with one of them is built at 18 or above.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import onnx_ir as ir

from ....errors import InputError, cause
from ....opsets.versions import TORCHLIB_OPSET
from ...context import NP_TO_IR, ConversionContext
from ...registry import register_fallback
from ...source import SourceOp

OPSET = TORCHLIB_OPSET


@functools.cache
def _registry() -> Any:
    from torch.onnx._internal.exporter._registration import ONNXRegistry

    from ....runtime.quiet import native_stderr_silenced

    with native_stderr_silenced():
        return ONNXRegistry.from_torchlib(OPSET)


def overload(op_type: str) -> Any:
    """The OpOverload of a reader's op name ("aten.pad.default"), or None."""
    import torch

    namespace, _, rest = op_type.partition(".")
    name, _, variant = rest.partition(".")
    packet = getattr(getattr(torch.ops, namespace, None), name, None) if namespace and name else None
    return getattr(packet, variant or "default", None) if packet is not None else None


def _function(op_type: str) -> Any:
    target = overload(op_type) if op_type.startswith(("aten.", "prims.")) else None
    if target is None:
        return None
    real = [meta for meta in _registry().get_decomps(target) if not meta.is_complex]
    return real[0].onnx_function if real else None


def translated_ops() -> list[str]:
    """Every aten (and prims) op torchlib translates at its opset (the README's count)."""
    names = set()
    for qualified, metas in _registry().functions.items():  # keyed "aten::add.Tensor", "aten::abs"
        namespace, _, rest = qualified.partition("::") if isinstance(qualified, str) else ("", "", "")
        if namespace in ("aten", "prims") and any(not meta.is_complex for meta in metas):
            name, _, variant = rest.partition(".")
            names.add(f"{namespace}.{name}.{variant or 'default'}")
    return sorted(names)


def _resolve(op_type: str) -> Any:
    return torchlib_op if _function(op_type) is not None else None


register_fallback("torch", _resolve, OPSET, f"torchlib, opset {OPSET} (fallback)", translated_ops)


def _onnx_dtype(name: Any) -> Any:
    """The reader gives torch dtypes as numpy names (no other string argument is one); torchlib
    takes ONNX's enum values."""
    if isinstance(name, str) and name in NP_TO_IR:
        return int(NP_TO_IR[name])
    return name


def _arguments(ctx: ConversionContext, op: SourceOp, schema: Any) -> tuple[list[Any], dict[str, Any]]:
    """The call's arguments as the schema takes them: tensors as our ONNX values (typed and
    shaped from the source, as torchlib's traced functions read them), the rest as literals."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for index, argument in enumerate(schema.arguments):
        for key in (str(index), argument.name):
            if key in op.inputs:
                names = op.inputs[key]
                values = [_typed(ctx, n) if n else None for n in names]  # "": a None in a tensor list
                value: Any = values if str(argument.type).startswith(("List[", "Optional[List[")) else values[0]
                break
            if key in op.attrs:
                value = _onnx_dtype(op.attrs[key])
                break
        else:
            continue
        if argument.name == "dtype" and value is None:
            value = -1  # torch.onnx's convention for "no dtype given"
        if argument.kwarg_only:
            kwargs[argument.name] = value
        elif len(args) == index:
            args.append(value)
        else:  # a positional argument after a skipped one: by name
            kwargs[argument.name] = value
    return args, kwargs


def _typed(ctx: ConversionContext, name: str) -> ir.Value:
    value = ctx.value(name)
    # a quantized source tensor is a float value here (its DQ's output); a PT2E DQ carries no
    # dtype of its own, and gives a float
    dtype = "float32" if name in ctx.source.quant or name not in ctx.source.dtypes else ctx.source.dtypes[name]
    if value.type is None and dtype in NP_TO_IR:
        value.type = ir.TensorType(NP_TO_IR[dtype])
    shape = ctx.shape(name)
    if value.shape is None and shape is not None and value.type is not None:  # a shape needs its type (ONNX)
        value.shape = ir.Shape([d if d >= 0 else None for d in shape])
    return value


def torchlib_op(ctx: ConversionContext, op: SourceOp) -> Any:
    import onnxscript
    from torch.onnx._internal.exporter._building import OpRecorder

    function = _function(op.type)
    target = overload(op.type)
    args, kwargs = _arguments(ctx, op, target._schema)
    recorder = OpRecorder(onnxscript.values.Opset("", ctx.b.opset), {})  # type: ignore[abstract]
    try:
        with onnxscript.evaluator.default_as(recorder):
            outputs = function(*args, **kwargs)
    except Exception as exc:  # torchlib refuses these arguments (an unsupported mode ...)
        raise InputError(f"op {op.label}: torchlib cannot translate these arguments ({cause(exc.__cause__ or exc)})") from None
    if recorder.functions:
        raise InputError(f"op {op.label}: torchlib translates it as an ONNX function, which qonvert does not inline yet")
    ctx.b.adopt(recorder.nodes, op.type.split(".")[1])
    if isinstance(outputs, (tuple, list)):
        return list(outputs)
    producer = outputs.producer()
    if producer is not None and producer.op_type in _SEQUENCES:  # tensors the source unpacks (split)
        count = len(op.outputs.get("out") or [])
        return [ctx.b.op("SequenceAt", [outputs, ctx.b.const(np.int64(i), "index")]) for i in range(count)]
    return outputs


_SEQUENCES = ("SplitToSequence", "SequenceConstruct", "SequenceInsert")
