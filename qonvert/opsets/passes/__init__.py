"""The whole-graph canonicalisation stage: exact rewrites only (docs/design.md, "Passes" and "Exact rewrites")."""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from .batchnorm import fold_batchnorm
from .bias import fold_bias_add, quantize_biases
from .constants import drop_noop_reshapes, fold_constant_layout
from .pad import fold_zero_pad
from .qdq import (
    asymmetric_activations_to_uint8,
    push_dq_through_layout,
    quantize_layout_outputs,
    quantize_op_outputs,
    settle_requantizations,
    split_shared_dq,
    twin_shared_q,
)
from .shapes import infer_shapes


def canonicalize(model: ir.Model) -> dict[str, int]:
    """Run the passes in order; returns how often each fired (shown by `inspect`). Control-flow
    subgraphs (a Loop body, an If branch) get the Q/DQ placement passes, which the contract checks
    and ORT's fusions need; the float folds run on the main graph only, so a loop body that
    torchlib writes keeps its float ops in its order (MLAS rounds B and B^T products apart)."""
    graph = model.graph
    counts = {"constant_layout_folded": fold_constant_layout(graph)}
    _clean(model)
    counts["noop_reshape_dropped"] = drop_noop_reshapes(graph)  # needs the shapes _clean infers
    counts["bias_add_folded"] = fold_bias_add(graph)  # first: BN folding needs Conv -> BN adjacent
    counts["batchnorm_folded"] = fold_batchnorm(graph)
    counts["bias_quantized"] = quantize_biases(graph)
    for g in [graph, *_subgraphs(graph)]:
        _place_qdq(g, counts)
    counts["pad_folded"] = fold_zero_pad(graph)
    # Shapes are inferred once more only where a pass left a graph output without its type or
    # shape (ONNX requires them there); the values the passes add inside carry none, as ORT needs none.
    _clean(model, shapes=any(out.type is None or out.shape is None for out in graph.outputs))
    return counts


def _place_qdq(graph: ir.Graph, counts: dict[str, int]) -> None:
    """The passes that put each Q and DQ where the contract wants it, in their order."""

    def count(name: str, fired: int) -> None:
        counts[name] = counts.get(name, 0) + fired

    count("output_q_added", quantize_op_outputs(graph))
    count("dq_pushed_through_layout", push_dq_through_layout(graph))
    count("layout_output_quantized", quantize_layout_outputs(graph))
    count("dq_split", split_shared_dq(graph))
    removed, kept = settle_requantizations(graph)
    count("requantize_removed", removed)
    count("requantize_kept", kept)
    count("activations_to_uint8", asymmetric_activations_to_uint8(graph))
    count("q_twinned", twin_shared_q(graph))  # after the uint8 re-storing: only int8 Qs need it


def _subgraphs(graph: ir.Graph) -> list[ir.Graph]:
    """The Loop bodies and If branches in the graph, nested ones after those holding them."""
    found = []
    for node in ir.traversal.RecursiveGraphIterator(graph):
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                found.append(attr.as_graph())
    return found


def _clean(model: ir.Model, shapes: bool = True) -> None:
    common.IdentityEliminationPass()(model)
    common.RemoveUnusedNodesPass()(model)
    common.TopologicalSortPass()(model)
    if shapes:
        infer_shapes(model)
