"""Shape inference for the canonical passes: ONNX's own (strict, with data propagation), with the
inferred types and shapes read straight off its value_info onto our values.

onnx_ir's ShapeInferencePass does the same inference but then deserialises the whole inferred model
into a second IR graph to merge it (about half of a MobileNet's conversion time); the types and
shapes are all we take from it.
"""

from __future__ import annotations

import logging

import onnx
import onnx_ir as ir
import onnx_ir.passes as ir_passes
import onnx_ir.passes.common as common

# Private, on purpose: onnx_ir's own ShapeInferencePass and CheckerPass call onnx's C API through
# it, serialising the model without the large initializers' bytes; onnx_ir has no public form of it.
from onnx_ir.passes.common import _c_api_utils

from .base import RewritePass

logger = logging.getLogger(__name__)


def infer_shapes(model: ir.Model) -> None:
    """Set each value's dtype and shape where ONNX's strict inference knows them; a model it rejects
    is left as it is (the checker after the passes reports the contradiction in one line)."""

    def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)

    try:
        inferred = _c_api_utils.call_onnx_api(infer, model)
    except Exception as exc:  # onnx raises its own error types, one per failure kind
        logger.debug("shape inference failed: %s", exc)
        return
    values = {v.name: v for node in model.graph for v in node.outputs if v.name}
    values.update((v.name, v) for v in model.graph.inputs if v.name)
    for info in (*inferred.graph.value_info, *inferred.graph.output):
        value = values.get(info.name)
        tensor = info.type.tensor_type
        if value is None or not info.type.HasField("tensor_type"):
            continue
        if tensor.elem_type and value.dtype is None:
            value.dtype = ir.DataType(tensor.elem_type)
        if tensor.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
            if value.shape is None or list(value.shape) != dims:
                value.shape = ir.Shape(dims)


class Cleanup(RewritePass):
    """Identities and unused nodes out, nodes in topological order, and (`shapes`) each value's
    dtype and shape inferred; `shapes=None`: only where a graph output lacks them (ONNX requires
    them there; the values the passes add inside carry none, as ORT needs none)."""

    counts_as = ()

    def __init__(self, shapes: bool | None = True) -> None:
        super().__init__()
        self.shapes = shapes

    def call(self, model: ir.Model) -> ir_passes.PassResult:
        common.IdentityEliminationPass()(model)
        common.RemoveUnusedNodesPass()(model)
        common.TopologicalSortPass()(model)
        if self.shapes or (self.shapes is None and any(out.type is None or out.shape is None for out in model.graph.outputs)):
            infer_shapes(model)
        return super().call(model)

    def rewrite(self, graph: ir.Graph) -> tuple[()]:
        return ()
