"""Paddle 3.x PIR programs (.json): compressed keys, positional inputs, values by id.

Positional inputs/outputs are given the ProgramDesc slot names (see PIR_SLOTS) so that one
set of op mappers serves both program formats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..source import MAX_RANK, SourceGraph, SourceOp, TensorInfo
from .params import _size, read_params

_QSLOTS = (["X", "Scale", "ZeroPoint", "InAccum", "InState"], ["Y", "OutState", "OutAccum", "OutScale"])
_CONV = (["Input", "Filter"], ["Output"])
_BINARY = (["X", "Y"], ["Out"])
_UNARY = (["X"], ["Out"])
PIR_SLOTS: dict[str, tuple[list[str], list[str]]] = {
    "conv2d": _CONV,
    "depthwise_conv2d": _CONV,
    "conv2d_transpose": (["Input", "Filter", "OutputSize"], ["Output"]),
    "depthwise_conv2d_transpose": (["Input", "Filter", "OutputSize"], ["Output"]),
    "batch_norm": (
        ["X", "Mean", "Variance", "Scale", "Bias"],
        ["Y", "MeanOut", "VarianceOut", "SavedMean", "SavedVariance", "ReserveSpace"],
    ),
    "quantize_linear": _QSLOTS,
    "dequantize_linear": _QSLOTS,
    "reshape": (["X", "ShapeTensor"], ["Out", "XShape"]),
    "squeeze": (["X", "AxesTensor"], ["Out", "XShape"]),
    "unsqueeze": (["X", "AxesTensor"], ["Out", "XShape"]),
    "concat": (["X", "AxisTensor"], ["Out"]),
    "split": (["X", "SectionsTensor", "AxisTensor"], ["Out"]),
    "split_with_num": (["X", "AxisTensor"], ["Out"]),
    "slice": (["Input", "StartsTensor", "EndsTensor"], ["Out"]),
    "strided_slice": (["Input", "StartsTensor", "EndsTensor", "StridesTensor"], ["Out"]),
    "full_with_tensor": (["ValueTensor", "ShapeTensor"], ["Out"]),
    "scale": (["X", "ScaleTensor"], ["Out"]),
    "layer_norm": (["X", "Scale", "Bias"], ["Y", "Mean", "Variance"]),
    "dropout": (["X", "Seed", "DropoutProb"], ["Out", "Mask"]),
    "clip": (["X", "Min", "Max"], ["Out"]),
    "mean": (["X", "AxisTensor"], ["Out"]),
    "sum": (["X", "AxisTensor"], ["Out"]),
    "max": (["X", "AxisTensor"], ["Out"]),
    "pool2d": (["X", "KernelSize"], ["Out"]),
    "bilinear_interp": (["X", "OutSize", "SizeTensor", "Scale"], ["Out"]),
    "nearest_interp": (["X", "OutSize", "SizeTensor", "Scale"], ["Out"]),
    "shape": (["Input"], ["Out"]),
    "shape64": (["Input"], ["Out"]),
    "full_like": (["X", "ValueTensor"], ["Out"]),
    "pow": _UNARY,
    # the legacy fake quant ops, as Paddle's ops.yaml orders their arguments
    "fake_quantize_range_abs_max": (["X", "InScale", "Iter"], ["Out", "OutScale", "OutScales"]),
    "fake_quantize_moving_average_abs_max": (["X", "InScale", "InAccum", "InState"], ["Out", "OutScale", "OutState", "OutAccum"]),
    "fake_quantize_dequantize_moving_average_abs_max": (["X", "InScale", "InAccum", "InState"], ["Out", "OutScale", "OutState", "OutAccum"]),
    "fake_quantize_abs_max": (["X"], ["Out", "OutScale"]),
    "fake_quantize_dequantize_abs_max": (["X"], ["Out", "OutScale"]),
    "fake_channel_wise_quantize_abs_max": (["X"], ["Out", "OutScale"]),
    "fake_channel_wise_quantize_dequantize_abs_max": (["X"], ["Out", "OutScale"]),
    "fake_dequantize_max_abs": (["X", "Scale"], ["Out"]),
    "fake_channel_wise_dequantize_max_abs": (["X", "Scales"], ["Out"]),
}
for _name in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "matmul", "elementwise_pow"):
    PIR_SLOTS[_name] = _BINARY

# Ops whose outputs are compile-time constants: folded into the source graph's constants.
_DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
    "float16": np.float16,
    "int8": np.int8,
    "uint8": np.uint8,
}
_TT_DTYPES = {
    "0.t_f32": "float32",
    "0.t_f64": "float64",
    "0.t_f16": "float16",
    "0.t_i64": "int64",
    "0.t_i32": "int32",
    "0.t_i8": "int8",
    "0.t_ui8": "uint8",
    "0.t_bool": "bool",
    "0.t_bf16": "bfloat16",
}


def _attr_value(at: Any) -> Any:
    """Decode {"#": "0.a_i32", "D": v} (arrays recursively) into Python values."""
    if isinstance(at, dict) and "#" in at:
        kind, data = at["#"], at.get("D")
        if kind == "0.a_array":
            return [_attr_value(x) for x in data or []]
        if kind in ("1.a_scalar",) and isinstance(data, list) and len(data) == 2:
            return data[1]
        return data
    return at


def _type_info(tt: Any) -> tuple[str, tuple[int, ...]] | None:
    if not isinstance(tt, dict) or tt.get("#") != "0.t_dtensor":
        return None
    data = tt.get("D")
    if not isinstance(data, list) or len(data) < 2 or not isinstance(data[0], dict) or not isinstance(data[1], list):
        raise ValueError("a tensor type without its dtype and shape")
    dtype, shape = str(data[0].get("#")), data[1]
    if len(shape) > MAX_RANK or not all(isinstance(d, int) and not isinstance(d, bool) and -1 <= d < 1 << 31 for d in shape):
        raise ValueError(f"tensor shape {str(shape)[:60]}")
    return _TT_DTYPES.get(dtype, dtype), tuple(shape)


def read_pir(program: Path, params: Path | None) -> SourceGraph:
    try:
        doc = json.loads(program.read_text())
        block = doc["program"]["regions"][0]["blocks"][0]
        raw_ops = block["ops"]
        if not isinstance(raw_ops, list):
            raise TypeError("ops is not a list")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{program}: cannot read PIR program ({exc})") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"{program}: not a Paddle PIR program ({type(exc).__name__}: {exc})") from None

    names: dict[int, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    param_names: list[str] = []
    combined: dict[int, list[int]] = {}  # builtin.combine: vector value -> element ids
    ops: list[SourceOp] = []
    inputs: list[TensorInfo] = []
    outputs: list[str] = []
    constants: dict[str, np.ndarray] = {}

    def name_of(vid: int) -> str:
        return names.setdefault(vid, f"v{vid}")

    def record(out: dict[str, Any], name: str) -> None:
        info = _type_info(out.get("TT"))
        if info:
            dtypes[name], shapes[name] = info

    try:
        vector_elements: dict[int, list[int]] = {}
        for raw in raw_ops:  # builtin.split unpacks a vector value (outputs of split) into elements
            if raw["#"] in ("0.split", "0.builtin.split"):
                vector_elements[raw["I"][0]["%"]] = [o["%"] for o in raw["O"]]
        for raw in raw_ops:
            kind: str = raw["#"]
            attrs = {a["N"]: _attr_value(a["AT"]) for a in raw.get("A", []) if isinstance(a, dict)}
            outs = raw.get("O", [])
            if isinstance(outs, dict):
                outs = [outs]
            if kind == "p":  # parameter: its name is the last entry of "A"
                name = str(raw["A"][-1])
                names[outs[0]["%"]] = name
                record(outs[0], name)
                param_names.append(name)
                continue
            if kind in ("0.combine", "0.builtin.combine"):
                combined[outs[0]["%"]] = [i["%"] for i in raw["I"]]
                continue
            if kind in ("0.split", "0.builtin.split"):
                for o in outs:
                    record(o, name_of(o["%"]))
                continue
            if kind in ("1.data", "1.feed"):  # feed: a legacy program translated to PIR keeps its feeds
                name = attrs["name"]
                names[outs[0]["%"]] = name
                info = _type_info(outs[0].get("TT"))
                dtype, shape = info if info else ("float32", tuple(attrs.get("shape", [])))
                inputs.append(TensorInfo(name, shape, dtype))
                shapes[name] = shape
                continue
            if kind == "1.fetch":
                src = name_of(raw["I"][0]["%"])
                outputs.append(src)
                continue
            op_type = kind.split(".", 1)[1] if "." in kind else kind
            op_type = op_type.rstrip("_") if op_type not in ("_",) else op_type
            in_slots, out_slots = PIR_SLOTS.get(op_type, (["X"], ["Out"]))
            op_inputs: dict[str, list[str]] = {}
            for idx, ref in enumerate(raw.get("I", [])):
                if ref is None or not isinstance(ref, dict) or ref.get("%", 0) in (0, None):
                    continue
                slot = in_slots[idx] if idx < len(in_slots) else f"in{idx}"
                vid = ref["%"]
                op_inputs[slot] = [name_of(v) for v in combined[vid]] if vid in combined else [name_of(vid)]
            op_outputs: dict[str, list[str]] = {}
            for idx, out in enumerate(outs):
                if not isinstance(out, dict) or out.get("%", 0) in (0, None):
                    continue
                slot = out_slots[idx] if idx < len(out_slots) else f"out{idx}"
                vid = out["%"]
                if vid in vector_elements:
                    op_outputs[slot] = [name_of(v) for v in vector_elements[vid]]
                else:
                    op_outputs[slot] = [name_of(vid)]
                    record(out, name_of(vid))
            folded = _fold_constant(op_type, attrs)
            if folded is not None:
                constants[op_outputs["Out"][0]] = folded
                continue
            ops.append(SourceOp(op_type, op_inputs, op_outputs, attrs))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InputError(f"{program}: malformed PIR program ({type(exc).__name__}: {exc})") from None

    if params is not None:
        constants.update(read_params(params, sorted(param_names)))
    elif param_names:
        raise InputError(f"{program}: program has {len(param_names)} parameters but no .pdiparams file was found")
    for name in param_names:
        if name in constants and name in shapes and constants[name].size != _size(shapes[name]) and shapes[name]:
            raise InputError(f"{params}: parameter {name!r} has shape {constants[name].shape}, program says {shapes[name]}")
    return SourceGraph("paddle", str(program), ops, inputs, outputs, constants, shapes)


# Constants a program may ask the folder to materialise: a `full` of [1e9] from a 138 kB file
# would take 4 GB. Real programs fold shape lists and scalars; a weight comes from .pdiparams.
MAX_FOLDED_ELEMENTS = 1 << 22


def _fold_constant(op_type: str, attrs: dict[str, Any]) -> np.ndarray | None:
    if op_type == "full_int_array":
        return np.asarray(attrs["value"], dtype=_DTYPES.get(attrs.get("dtype", "int64"), np.int64))
    if op_type == "full":
        shape = attrs.get("shape", [])
        if all(isinstance(d, int) and d >= 0 for d in shape):
            if len(shape) > MAX_RANK or math.prod(shape) > MAX_FOLDED_ELEMENTS:
                raise ValueError(f"full of shape {shape[:8]}: {math.prod(shape)} elements to materialise, over {MAX_FOLDED_ELEMENTS}")
            return np.full(shape, attrs.get("value", 0), dtype=_DTYPES.get(attrs.get("dtype", "float32"), np.float32))
    if op_type == "assign_value":
        values = attrs.get("values", [])
        return np.asarray(values, dtype=_DTYPES.get(attrs.get("dtype", "float32"), np.float32)).reshape(attrs["shape"])
    return None
