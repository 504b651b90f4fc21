"""Small helpers the canonical passes share to read and edit an onnx_ir graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from ..metadata import SOURCE_OP
from ..naming import unique_name
from .builder import QDTYPE_NAMES, qdq_tensors, quantized_tensor
from .qparams import QuantParams

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
LAYOUT_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity")
# Ops that commute with a monotonic per-tensor quantization (Q(f(x)) == f_q(Q(x))).
MONOTONE_OPS = ("Relu", "Clip", "MaxPool", *LAYOUT_OPS)


def const_array(value: ir.Value | None) -> np.ndarray | None:
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def producer_op(value: ir.Value | None, op_type: str | tuple[str, ...]) -> ir.Node | None:
    node = value.producer() if value is not None else None
    types = (op_type,) if isinstance(op_type, str) else op_type
    return node if node is not None and node.op_type in types and node.domain == "" else None


def source_label(node: ir.Node) -> str:
    """How errors name an ONNX node: the source op it was mapped from, else its own type and name."""
    return node.metadata_props.get(SOURCE_OP) or f"{node.op_type} {node.name}"


def run_time_scale(value: ir.Value | None) -> bool:
    """A scale the graph computes from an activation (dynamic quantization: DynamicQuantizeLinear,
    or PyTorch's reduced-range choice of it), so a bias after it stays float too."""
    return value is not None and value.const_value is None and value.producer() is not None and not value.is_initializer()


def qparams_of(node: ir.Node) -> QuantParams | None:
    """QuantParams of a QuantizeLinear/DequantizeLinear node with constant scale and zero point."""
    scale = const_array(node.inputs[1])
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zp = const_array(zp_value)
    if scale is None:
        return None
    # No zero point: a Q makes uint8; a DQ reads the type of its input.
    qtype = zp_value.dtype if zp_value is not None else ir.DataType.UINT8
    if zp_value is None and node.op_type == "DequantizeLinear" and node.inputs[0] is not None:
        qtype = node.inputs[0].dtype
    dtype = QDTYPE_NAMES.get(qtype, "uint8") if qtype is not None else "uint8"
    if zp is None:
        zp = np.zeros(scale.shape, np.int64)
    axis = None
    block = node.attributes.get("block_size")
    block_size = block.as_int() if block is not None and block.as_int() > 0 else None
    if scale.ndim == 1 or block_size is not None:
        attr = node.attributes.get("axis")
        axis = attr.as_int() if attr is not None else 1
    return QuantParams(scale, zp, dtype, axis, block_size=block_size)


def weight_dq(value: ir.Value | None) -> tuple[ir.Node, np.ndarray, QuantParams] | None:
    """(DQ node, integer data, params) when `value` is a DequantizeLinear of an integer initializer."""
    dq = producer_op(value, "DequantizeLinear")
    if dq is None:
        return None
    data = const_array(dq.inputs[0])
    qp = qparams_of(dq)
    if data is None or qp is None:
        return None
    if qp.per_axis and qp.axis is not None and qp.axis < 0:
        qp = qp.with_axis(qp.axis + data.ndim)
    return dq, data, qp


def initializer(graph: ir.Graph, array: np.ndarray | ir.TensorProtocol, name: str, dtype: ir.DataType | None = None) -> ir.Value:
    name = unique_name(name, graph.initializers)
    tensor = ir.Tensor(array, dtype=dtype) if isinstance(array, np.ndarray) else array
    tensor.name = name
    value = ir.Value(name=name, shape=ir.Shape(tensor.shape.numpy()), type=ir.TensorType(tensor.dtype), const_value=tensor)
    graph.register_initializer(value)
    return value


TAKEN_NAMES = "qonvert.taken_names"  # graph.meta: its value names, held while a pass runs (RewritePass.call)


def value_names(graph: ir.Graph) -> set[str | None]:
    return {v.name for n in graph for v in n.outputs} | {v.name for v in graph.inputs} | set(graph.initializers)


def fresh_name(graph: ir.Graph, base: str) -> str:
    """`base`, or `base_N`, not yet naming a value of the graph (ONNX names are graph-wide). While a
    pass runs, the names are collected once and each new one added (a scan per call made a pass
    that adds a node per op quadratic)."""
    held = graph.meta.get(TAKEN_NAMES)
    name = unique_name(base, held if held is not None else value_names(graph))
    if held is not None:
        held.add(name)
    return name


def rename(graph: ir.Graph, value: ir.Value, base: str) -> str | None:
    """Give the value a fresh name from `base`; its old name (returned) is free again."""
    old, value.name = value.name, fresh_name(graph, base)
    held = graph.meta.get(TAKEN_NAMES)
    if held is not None:
        held.discard(old)
    return old


def insert_node(
    graph: ir.Graph,
    op_type: str,
    inputs: Sequence[ir.Value | None],
    attrs: dict[str, Any] | None = None,
    *,
    before: ir.Node | None = None,
    after: ir.Node | None = None,
    name: str,
) -> ir.Value:
    """A one-output node placed before `before` or after `after`; its output is named `name`
    (suffixed where the graph already has that name)."""
    name = fresh_name(graph, name)
    node = ir.Node("", op_type, list(inputs), ir.convenience.convert_attributes(attrs or {}), name=f"{name}_{op_type}")
    node.outputs[0].name = name
    if after is not None:
        graph.insert_after(after, node)
    else:
        assert before is not None
        graph.insert_before(before, node)
    return node.outputs[0]


def add_dq(graph: ir.Graph, q_values: np.ndarray, qp: QuantParams, name: str, *, before: ir.Node) -> ir.Value:
    """Integer initializer (in qp's dtype: an int32 bias has qp.dtype "int32") + DequantizeLinear in front of `before`."""
    data = initializer(graph, quantized_tensor(q_values, qp.dtype), f"{name}_quantized")
    return _add_qdq_node(graph, "DequantizeLinear", data, qp, name, before)


def _add_qdq_node(
    graph: ir.Graph, op_type: str, x: ir.Value, qp: QuantParams, name: str, before: ir.Node | None, after: ir.Node | None = None
) -> ir.Value:
    scale, zp, attrs = qdq_tensors(qp)
    scale_value = initializer(graph, scale, f"{name}_scale")
    zp_value = initializer(graph, zp, f"{name}_zero_point")
    return insert_node(graph, op_type, [x, scale_value, zp_value], attrs, before=before, after=after, name=name)


def add_q(graph: ir.Graph, x: ir.Value, qp: QuantParams, name: str, *, before: ir.Node | None = None, after: ir.Node | None = None) -> ir.Value:
    return _add_qdq_node(graph, "QuantizeLinear", x, qp, name, before, after)


def add_dq_of(graph: ir.Graph, q: ir.Value, qp: QuantParams, name: str, *, before: ir.Node) -> ir.Value:
    return _add_qdq_node(graph, "DequantizeLinear", q, qp, name, before)


NON_NEGATIVE_KEEPERS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", *LAYOUT_OPS)  # >= 0 in, >= 0 out


def non_negative(value: ir.Value | None) -> bool:
    """Whether the value cannot be negative: a Relu's or a Clip's at 0 or above, a DQ of codes with
    their zero point at the bottom of their range, or one of those through pools and layout ops."""
    for _ in range(16):
        node = value.producer() if value is not None else None
        if node is None or node.domain:
            return False
        if node.op_type == "Relu":
            return True
        if node.op_type == "Clip":
            low = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
            return low is not None and low.size == 1 and float(low) >= 0
        if node.op_type == "DequantizeLinear":
            qp = qparams_of(node)
            return qp is not None and not qp.per_axis and int(qp.zero_point) == qp.dtype_range[0]
        if node.op_type not in NON_NEGATIVE_KEEPERS:
            return False
        value = node.inputs[0]
    return False


def single_consumer(value: ir.Value) -> ir.Node | None:
    users = value.consumers()
    if len(users) != 1 or value.is_graph_output():
        return None
    return users[0]
