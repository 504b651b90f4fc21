"""check_canonical: every violation of the canonical QDQ contract (docs/design.md, "The canonical QDQ contract"), as messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import onnx
import onnx_ir as ir

from ..metadata import SOURCE_OP
from . import versions
from .graph_edit import LAYOUT_OPS, QUANTIZED_OPS, const_array, producer_op, qparams_of, run_time_scale, weight_dq
from .qparams import QuantParams

_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}


def _weight_axis(node: ir.Node) -> int:
    if node.op_type == "Gemm":
        attr = node.attributes.get("transB")
        return 0 if attr is not None and attr.as_int() else 1
    return _WEIGHT_AXIS[node.op_type]


def check_canonical(model: onnx.ModelProto | ir.Model) -> list[str]:
    m = ir.from_proto(model) if isinstance(model, onnx.ModelProto) else model
    graph = m.graph
    problems: list[str] = []
    if graph.opset_imports.get("", 0) < versions.MIN_OPSET:
        problems.append(f"opset {graph.opset_imports.get('', 0)} is below {versions.MIN_OPSET}")
    rules = (qdq_params, q_feeds_only_dqs, dq_not_shared, quantized_op_inputs)
    return problems + violations(ir.traversal.RecursiveGraphIterator(graph), *rules)  # Loop bodies and If branches too


class FileFinding(str):
    """A violation of the contract (its message) that the file itself gives, which qonvert keeps as
    given (a weight's zero point and axis, computed weights, a tensor's scales and axis as
    declared): the file's error, not qonvert's."""


Rule = Callable[[ir.Node, str], list[str]]


def violations(nodes: Iterable[ir.Node], *rules: Rule) -> list[str]:
    """What the given rules of the contract find on these nodes (a pass's `ensures` takes its slice)."""
    return [problem for node in nodes for rule in rules for problem in rule(node, _label(node))]


def _label(node: ir.Node) -> str:
    """An ONNX node as the contract's findings name it: with the source op it was mapped from."""
    source = node.metadata_props.get(SOURCE_OP)
    return f"{node.op_type} {node.name!r}" + (f" (op {source})" if source else "")


def qdq_params(node: ir.Node, where: str) -> list[str]:
    """Scales and zero points."""
    return _check_qparams(node, where) if node.op_type in ("QuantizeLinear", "DequantizeLinear") else []


def q_feeds_only_dqs(node: ir.Node, where: str) -> list[str]:
    """No layout op between Q and DQ: every consumer of a Q is a DQ (or takes the codes on)."""
    if node.op_type != "QuantizeLinear":
        return []
    problems = []
    for user in node.outputs[0].consumers():
        if user.op_type != "DequantizeLinear" and not _passes_codes_on(user):
            kind = "layout op" if user.op_type in LAYOUT_OPS else "op"
            problems.append(f"{where}: feeds {kind} {user.op_type} {user.name!r} instead of a DequantizeLinear")
    return problems


def q_not_into_layout(node: ir.Node, where: str) -> list[str]:
    """No layout op between a Q and its DQ (a slice of q_feeds_only_dqs)."""
    return [p for p in q_feeds_only_dqs(node, where) if " layout op " in p]


def dq_not_shared(node: ir.Node, where: str) -> list[str]:
    """Every consumer of an activation has its own DQ."""
    if node.op_type == "DequantizeLinear" and node.inputs[0] is not None and node.inputs[0].const_value is None:
        if len(node.outputs[0].consumers()) > 1:
            return [f"{where}: activation DQ shared by {len(node.outputs[0].consumers())} consumers"]
    return []


def quantized_op_inputs(node: ir.Node, where: str) -> list[str]:
    """Quantized ops: activation, weight and bias through their DQs."""
    if node.op_type in QUANTIZED_OPS and producer_op(node.inputs[0], "DequantizeLinear"):
        return _check_quantized_op(node, where)
    if node.op_type in QUANTIZED_OPS and weight_dq(node.inputs[1]):
        return _check_weight(node, where)  # weight-only (dynamic-range) quantization
    return []


def quantized_op_bias(node: ir.Node, where: str) -> list[str]:
    """Quantized ops: the bias through a DQ of int32 at s_x * s_w (a slice of quantized_op_inputs)."""
    return [p for p in quantized_op_inputs(node, where) if ": bias " in p]


def _passes_codes_on(user: ir.Node) -> bool:
    """A Loop taking a quantized tensor's codes as a loop value, or the Identity giving them as a
    subgraph's output: TFLite's WHILE and IF pass integer tensors as codes."""
    return user.op_type == "Loop" or (user.op_type == "Identity" and user.outputs[0].is_graph_output())


def _check_qparams(node: ir.Node, where: str) -> list[str]:
    out: list[str] = []
    scale = const_array(node.inputs[1])
    if scale is None and run_time_scale(node.inputs[1]):
        return []  # dynamic quantization: s_x is known at run time only, so the bias stays float too
    if scale is None:
        return [f"{where}: scale is not a constant"]
    if scale.dtype != np.float32:
        out.append(f"{where}: scale dtype {scale.dtype} is not float32")
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        out.append(f"{where}: scale must be finite and > 0")
    zp_v = node.inputs[2] if len(node.inputs) > 2 else None
    zp = const_array(zp_v)
    blocked = node.attributes.get("block_size") is not None and node.attributes["block_size"].as_int() > 0
    if (scale.ndim > 1 and not blocked) or (zp is not None and zp.shape != scale.shape):
        out.append(f"{where}: scale/zero point must be scalars or 1-D of one length (or, blocked, of the data's rank)")
    if node.op_type == "QuantizeLinear" and zp_v is None:
        out.append(f"{where}: zero point missing (its dtype sets the quantized dtype)")
    if node.op_type == "DequantizeLinear" and zp_v is not None and node.inputs[0] is not None:
        if node.inputs[0].dtype is not None and zp_v.dtype != node.inputs[0].dtype:
            out.append(f"{where}: zero point dtype {zp_v.dtype} differs from the data's {node.inputs[0].dtype}")
    if scale.ndim == 1 and node.inputs[0] is not None and node.inputs[0].shape is not None:
        attr = node.attributes.get("axis")
        axis = attr.as_int() if attr is not None else 1
        dims = node.inputs[0].shape
        if not -len(dims) <= axis < len(dims):
            out.append(FileFinding(f"{where}: axis {axis} out of range for rank {len(dims)}"))
        elif isinstance(dims[axis], int) and dims[axis] != scale.size:
            out.append(FileFinding(f"{where}: {scale.size} scales for axis {axis} of length {dims[axis]}"))
    return out


def _check_weight(node: ir.Node, where: str) -> list[str]:
    w = weight_dq(node.inputs[1])
    if w is None:
        return [f"{where}: weight is not a DequantizeLinear of an integer initializer"]
    out = []
    _, data, w_qp = w
    if data.dtype.kind not in "iu" and data.dtype.name not in ("int4", "uint4"):  # ml_dtypes' int4
        out.append(f"{where}: weight initializer dtype {data.dtype} is not integer")
    if np.any(w_qp.zero_point != 0):
        out.append(FileFinding(f"{where}: weight zero point is not 0 (weights must be symmetric)"))
    if w_qp.blocked:  # group-wise: blocks run along the reduction (input-channel) axis
        reduction = {"MatMul": 0, "Gemm": 1 - _weight_axis(node)}.get(node.op_type)
        if w_qp.axis != reduction:
            out.append(f"{where}: weight blocks along axis {w_qp.axis} of a {node.op_type}, expected its reduction axis {reduction}")
    elif w_qp.per_axis and w_qp.axis != _weight_axis(node) and not input_channel_weight(node, w_qp):
        out.append(FileFinding(f"{where}: weight quantized on axis {w_qp.axis}, expected {_weight_axis(node)}"))
    return out


def input_channel_weight(node: ir.Node, w_qp: QuantParams) -> bool:
    """A ConvTranspose weight the source quantizes per INPUT channel (PT2E's XNNPACKQuantizer):
    no per-output-channel form is exact, so it keeps its axis and a float bias, and runs float
    (ORT's CPU EP has no integer ConvTranspose either). The one exception to items 1's axis."""
    return node.op_type == "ConvTranspose" and w_qp.per_axis and w_qp.axis == 0


def _check_quantized_op(node: ir.Node, where: str) -> list[str]:
    out: list[str] = []
    x_dq = producer_op(node.inputs[0], "DequantizeLinear")
    if x_dq is None:
        out.append(f"{where}: activation does not come through a DequantizeLinear")
    w = weight_dq(node.inputs[1])
    if w is None and node.op_type == "MatMul" and producer_op(node.inputs[1], "DequantizeLinear"):
        return out  # activation x activation (attention): both sides quantized at run time
    if w is None and producer_op(node.inputs[1], "DequantizeLinear") is None:
        return out  # a float weight: the op runs in float on the dequantized activation, as the source does
    if w is None:
        w_dq = producer_op(node.inputs[1], "DequantizeLinear")
        run_time = w_dq is not None and const_array(w_dq.inputs[0]) is None
        if run_time:
            out.append(FileFinding(f"{where}: weight is computed at run time"))
        else:
            out.append(f"{where}: weight is not a DequantizeLinear of an integer initializer")
        return out
    out += _check_weight(node, where)
    _, _, w_qp = w
    dynamic = x_dq is not None and run_time_scale(x_dq.inputs[1])
    if len(node.inputs) > 2 and node.inputs[2] is not None and not input_channel_weight(node, w_qp) and not dynamic:
        b = weight_dq(node.inputs[2])
        if b is None or b[1].dtype != np.int32:
            out.append(f"{where}: bias is not a DequantizeLinear of an int32 initializer")
        elif x_dq is not None:
            x_qp = qparams_of(x_dq)
            _, _, b_qp = b
            if x_qp is not None:
                expect = x_qp.scale.astype(np.float64) * np.broadcast_to(w_qp.scale, b_qp.scale.shape)
                if not np.allclose(b_qp.scale, expect, rtol=1e-6, atol=0):
                    out.append(f"{where}: bias scale is not s_x * s_w")
            if np.any(b_qp.zero_point != 0):
                out.append(f"{where}: bias zero point is not 0")
    return out
