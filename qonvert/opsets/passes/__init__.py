"""The whole-graph canonicalisation stage: exact rewrites only (DESIGN item 6)."""

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
    """Run the passes in order; returns how often each fired (shown by `inspect`)."""
    graph = model.graph
    counts = {"constant_layout_folded": fold_constant_layout(graph)}
    _clean(model)
    counts["noop_reshape_dropped"] = drop_noop_reshapes(graph)  # needs the shapes _clean infers
    counts["bias_add_folded"] = fold_bias_add(graph)  # first: BN folding needs Conv -> BN adjacent
    counts["batchnorm_folded"] = fold_batchnorm(graph)
    counts["bias_quantized"] = quantize_biases(graph)
    counts["output_q_added"] = quantize_op_outputs(graph)
    counts["dq_pushed_through_layout"] = push_dq_through_layout(graph)
    counts["layout_output_quantized"] = quantize_layout_outputs(graph)
    counts["dq_split"] = split_shared_dq(graph)
    counts["requantize_removed"], counts["requantize_kept"] = settle_requantizations(graph)
    counts["activations_to_uint8"] = asymmetric_activations_to_uint8(graph)
    counts["q_twinned"] = twin_shared_q(graph)  # after the uint8 re-storing: only int8 Qs need it
    counts["pad_folded"] = fold_zero_pad(graph)
    # Shapes are inferred once more only where a pass left a graph output without its type or
    # shape (ONNX requires them there); the values the passes add inside carry none, as ORT needs none.
    _clean(model, shapes=any(out.type is None or out.shape is None for out in graph.outputs))
    return counts


def _clean(model: ir.Model, shapes: bool = True) -> None:
    common.IdentityEliminationPass()(model)
    common.RemoveUnusedNodesPass()(model)
    common.TopologicalSortPass()(model)
    if shapes:
        infer_shapes(model)
