"""The Q/DQ placement passes (docs/design.md, "Exact rewrites" and "No layout op between Q and DQ")."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...metadata import TWIN
from ..canonical import dq_not_shared, q_not_into_layout
from ..graph_edit import (
    LAYOUT_OPS,
    MONOTONE_OPS,
    QUANTIZED_OPS,
    add_dq_of,
    add_q,
    const_array,
    fresh_name,
    initializer,
    producer_op,
    qparams_of,
    rename,
    single_consumer,
)
from ..qparams import QuantParams
from .base import RewritePass


def next_quantize(value: ir.Value) -> ir.Node | None:
    """The QuantizeLinear `value` reaches through a single-consumer chain of monotone ops, if any."""
    cur = single_consumer(value)
    while cur is not None and cur.op_type in MONOTONE_OPS and not cur.domain:
        cur = single_consumer(cur.outputs[0])
    return cur if cur is not None and cur.op_type == "QuantizeLinear" else None


def quantize_op_outputs(graph: ir.Graph) -> int:
    """Give a quantized Conv/MatMul/Gemm a Q/DQ on its output when its float output reaches the
    next Q only through Relu / Clip / MaxPool / layout ops (same scale and zero point: exact)."""
    added = 0
    for node in list(graph):
        if node.op_type not in QUANTIZED_OPS or node.domain:
            continue
        if producer_op(node.inputs[0], "DequantizeLinear") is None:
            continue
        out = node.outputs[0]
        user = single_consumer(out)
        if user is None or user.op_type == "QuantizeLinear":
            continue
        cur = next_quantize(out)
        if cur is None:
            continue
        qp = qparams_of(cur)
        if qp is None or qp.per_axis:
            continue
        q = add_q(graph, out, qp, f"{out.name}_q", before=user)
        dq = add_dq_of(graph, q, qp, f"{out.name}_dq", before=user)
        user.replace_input_with(list(user.inputs).index(out), dq)
        added += 1
    return added


def quantize_layout_outputs(graph: ir.Graph) -> int:
    """DQ -> layout ops -> quantized Conv/MatMul/Gemm: give the last layout op's output a Q/DQ
    with the DQ's own parameters (exact: layout ops move values, they do not change them), so
    the compute op reads a DQ. PIR's translation of a legacy `mul` leaves such Reshapes, and
    attention splits heads with Reshape -> Transpose between a Q/DQ and its MatMul."""
    added = 0
    for node in list(graph):
        if node.op_type not in LAYOUT_OPS or node.domain:
            continue
        out = node.outputs[0]
        readers = [(user, i) for user, i in out.uses() if user.op_type in QUANTIZED_OPS and not user.domain]
        qp = _quantization_before_layout(node)
        if qp is None or not readers:
            continue
        first = readers[0][0]
        q = add_q(graph, out, qp, f"{out.name}_q", before=first)
        requantized = add_dq_of(graph, q, qp, f"{out.name}_dq", before=first)
        for user, index in readers:
            user.replace_input_with(index, requantized)
        added += 1
    return added


def _quantization_before_layout(node: ir.Node) -> QuantParams | None:
    """The per-tensor activation DQ a chain of layout ops starts from, if any."""
    for _ in range(8):
        dq = producer_op(node.inputs[0], "DequantizeLinear")
        if dq is not None:
            qp = qparams_of(dq)
            data = dq.inputs[0]
            return qp if qp is not None and not qp.per_axis and data is not None and data.const_value is None else None
        prev = node.inputs[0].producer() if node.inputs[0] is not None else None
        if prev is None or prev.op_type not in LAYOUT_OPS or prev.domain:
            return None
        node = prev
    return None


def split_shared_dq(graph: ir.Graph) -> int:
    """Every consumer of an activation DQ gets its own DQ node (ORT fuses node units one by one)."""
    split = 0
    for node in list(graph):
        if node.op_type != "DequantizeLinear" or node.domain or node.inputs[0] is None:
            continue
        if node.inputs[0].const_value is not None:
            continue
        out = node.outputs[0]
        uses = list(out.uses())
        for user, index in uses[1:]:
            user.replace_input_with(index, clone_dq(graph, node, f"{out.name}_{split}"))  # source names end in _N too
            split += 1
    return split


def clone_dq(graph: ir.Graph, dq: ir.Node, name: str) -> ir.Value:
    """Another DQ of the same codes, inputs and attributes, placed right after `dq` in the graph
    that holds it (a subgraph's pass may reach a DQ of the graph around it)."""
    out = dq.outputs[0]
    home = dq.graph if dq.graph is not None else graph
    clone = ir.Node("", "DequantizeLinear", list(dq.inputs), dq.attributes.values(), name=f"{dq.name}_{name}")
    clone.outputs[0].name = fresh_name(home, name)
    clone.outputs[0].type, clone.outputs[0].shape = out.type, out.shape
    home.insert_after(dq, clone)
    return clone.outputs[0]


def twin_shared_q(graph: ir.Graph) -> int:
    """An int8 activation Q read by several DQs becomes one Q per DQ (exact: the same quantization
    of the same value). ORT's CPU kernels take activations as uint8; it re-stores an int8 Q/DQ pair
    as uint8 only where the Q has a single DQ, so a shared int8 Q left its convolutions in float.
    Each twin gets its own scale and zero point initializers, or ORT's common-subexpression
    elimination merges the twins back."""
    twins = 0
    for node in list(graph):
        if node.op_type != "QuantizeLinear" or node.domain or node.inputs[0] is None:
            continue
        out, qp = node.outputs[0], qparams_of(node)
        readers = out.consumers()
        if qp is None or qp.per_axis or qp.dtype != "int8" or len(readers) < 2 or out.is_graph_output():
            continue
        if any(r.op_type != "DequantizeLinear" or r.domain for r in readers):
            continue
        source = node.inputs[0]
        source_dq = producer_op(source, "DequantizeLinear")
        requantized = source_dq is not None and source_dq.inputs[0] is not None and source_dq.inputs[0].const_value is None
        for dq in readers[1:]:
            # a requantization: each twin reads its own DQ of the codes (no activation DQ is shared)
            x = clone_dq(graph, source_dq, f"{source.name}_twin") if requantized and source_dq is not None else source
            twin = add_q(graph, x, qp, f"{out.name}{TWIN}", after=node)
            twin.type, twin.shape = out.type, out.shape
            dq.replace_input_with(0, twin)
            twins += 1
    return twins


def push_dq_through_layout(graph: ir.Graph) -> int:
    """Q -> layout op -> DQ becomes Q -> DQ -> layout op (per-tensor only, exact). Where the layout
    op's integer output is also read otherwise (a graph output, several readers), the moved
    floats are quantized again with the same parameters: Q -> DQ -> layout op -> Q (exact too)."""
    moved = 0
    for node in list(graph):
        if node.op_type not in LAYOUT_OPS or node.domain:
            continue
        q = producer_op(node.inputs[0], "QuantizeLinear")
        qp = qparams_of(q) if q is not None else None
        if q is None or qp is None or qp.per_axis:
            continue
        out = node.outputs[0]
        dq = single_consumer(out)
        dq_qp = qparams_of(dq) if dq is not None and dq.op_type == "DequantizeLinear" else None
        int_type = out.type
        node.replace_input_with(0, add_dq_of(graph, q.outputs[0], qp, f"{q.outputs[0].name}_dq", before=node))
        node.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)  # the layout op now moves floats
        if dq is not None and dq_qp is not None and dq_qp.same_as(qp):
            dq.outputs[0].replace_all_uses_with(out, replace_graph_outputs=True)
            name = dq.outputs[0].name
            graph.remove(dq, safe=True)
            if out.is_graph_output():
                out.name = name  # a graph output keeps its name
        else:
            name = rename(graph, out, f"{out.name}_float")
            requantized = add_q(graph, out, qp, name or "q", after=node)
            requantized.type = int_type
            for user, index in list(out.uses()):
                if user is not requantized.producer():
                    user.replace_input_with(index, requantized)
            for i, graph_out in enumerate(graph.outputs):
                if graph_out is out:
                    graph.outputs[i] = requantized
        moved += 1
    return moved


def settle_requantizations(graph: ir.Graph) -> tuple[int, int]:
    """Q1 -> DQ1 -> Q2 -> DQ2 (a quantized tensor quantized again, e.g. a GELU output observed at
    one scale and read by a Linear at another). Same parameters: Q2/DQ2 is a no-op and goes.
    Different ones: DQ1 loses its (zero, int8) zero-point input, which changes nothing in ONNX
    but keeps ORT's DoubleQDQPairsRemover away: it would swap the two roundings for one at a new
    scale, which is not exact. Returns (removed, kept)."""
    removed = kept = 0
    for dq1 in list(graph):
        if dq1.op_type != "DequantizeLinear" or dq1.domain or producer_op(dq1.inputs[0], "QuantizeLinear") is None:
            continue
        q2 = single_consumer(dq1.outputs[0])
        if q2 is None or q2.op_type != "QuantizeLinear":
            continue
        p1, p2 = qparams_of(dq1), qparams_of(q2)
        if p1 is None or p2 is None:
            continue
        if p1.same_as(p2):
            q1_out, q2_out = dq1.inputs[0], q2.outputs[0]
            assert q1_out is not None
            if q2_out.is_graph_output() and q1_out.is_graph_output():
                continue  # both are graph values: the second pair is what gives the output its own name
            name = q2_out.name
            q2_out.replace_all_uses_with(q1_out, replace_graph_outputs=True)
            graph.remove([q2, dq1], safe=True)
            if q1_out.is_graph_output():
                q1_out.name = name  # a graph output keeps its name
            removed += 1
        elif len(dq1.inputs) > 2 and not p1.zero_point.any() and p1.dtype == "int8":
            dq1.resize_inputs(2)
            kept += 1
    return removed, kept


def asymmetric_activations_to_uint8(graph: ir.Graph) -> int:
    """Store the int8 activations of an asymmetric graph as uint8 (zero point + 128: the same
    real values, exact).

    ORT's x86 kernels take uint8 activations; its own s8 -> u8 rewrite only handles a Q with a
    single DQ, so int8 tensors read by two ops (residual blocks) kept their convs float. Once any
    activation is asymmetric, every int8 activation moves, those whose zero point happens to be 0
    too: an Add or Conv whose inputs mix int8 and uint8 is not fused. A fully symmetric graph
    (what TensorRT needs) is left as it is, and so are a model's int8 inputs and outputs.
    """
    activations = []
    for node in graph:
        qp = qparams_of(node) if node.op_type == "QuantizeLinear" and not node.domain else None
        if qp is not None and qp.dtype == "int8" and not qp.per_axis:
            activations.append((node, qp))
    if not any(qp.zero_point.any() for _, qp in activations):
        return 0
    done = 0
    for node, qp in activations:
        if node.outputs[0].is_graph_output():  # an int8 output: reached through a uint8 pair (exact)
            x = node.inputs[0]
            assert x is not None
            q = add_q(graph, x, qp, f"{x.name}_q", before=node)
            node.replace_input_with(0, add_dq_of(graph, q, qp, f"{x.name}_dq", before=node))
            node = q.producer()  # type: ignore[assignment]
        users = node.outputs[0].consumers()
        if not users or any(u.op_type != "DequantizeLinear" or len(u.inputs) < 3 for u in users):
            continue  # a DQ without zero point was left so on purpose (settle_requantizations)
        own = [const_array(n.inputs[2]) for n in (node, *users)]
        if any(z is None for z in own):
            continue
        zp = initializer(graph, np.asarray(qp.zero_point + 128, np.uint8), f"{node.outputs[0].name}_zero_point_u8")
        for n, z in zip((node, *users), own, strict=True):
            assert z is not None
            same = z.shape == qp.zero_point.shape and np.array_equal(z, qp.zero_point)
            # a DQ of its own zero point (a per-axis one of one channel, say) keeps it, moved alike
            moved = zp if same else initializer(graph, np.asarray(z.astype(np.int64) + 128, np.uint8), f"{n.name}_zero_point_u8")
            n.replace_input_with(2, moved)
        node.outputs[0].type = ir.TensorType(ir.DataType.UINT8)
        done += 1
    return done


# The Q/DQ placement passes also run on control-flow subgraphs: what the contract checks there and
# what ORT's fusions need (the float folds stay on the main graph: docs/design.md, "Passes").


class QuantizeOpOutputs(RewritePass):
    counts_as = ("output_q_added",)
    in_subgraphs = True

    def rewrite(self, graph: ir.Graph) -> int:
        return quantize_op_outputs(graph)


class PushDQThroughLayout(RewritePass):
    counts_as = ("dq_pushed_through_layout",)
    in_subgraphs = True
    promises = (q_not_into_layout,)

    def rewrite(self, graph: ir.Graph) -> int:
        return push_dq_through_layout(graph)


class QuantizeLayoutOutputs(RewritePass):
    counts_as = ("layout_output_quantized",)
    in_subgraphs = True

    def rewrite(self, graph: ir.Graph) -> int:
        return quantize_layout_outputs(graph)


class SplitSharedDQ(RewritePass):
    counts_as = ("dq_split",)
    in_subgraphs = True
    promises = (dq_not_shared,)

    def rewrite(self, graph: ir.Graph) -> int:
        return split_shared_dq(graph)


class SettleRequantizations(RewritePass):
    counts_as = ("requantize_removed", "requantize_kept")
    in_subgraphs = True

    def rewrite(self, graph: ir.Graph) -> tuple[int, int]:
        return settle_requantizations(graph)


class ActivationsToUint8(RewritePass):
    counts_as = ("activations_to_uint8",)
    in_subgraphs = True

    def rewrite(self, graph: ir.Graph) -> int:
        return asymmetric_activations_to_uint8(graph)


class TwinSharedQ(RewritePass):
    counts_as = ("q_twinned",)
    in_subgraphs = True
    # a Q read by two DQs is what splitting a shared DQ leaves; only int8 Qs need twins (those
    # re-stored as uint8 do not)
    after = ("SplitSharedDQ", "ActivationsToUint8")

    def rewrite(self, graph: ir.Graph) -> int:
        return twin_shared_q(graph)
