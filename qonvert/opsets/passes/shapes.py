"""Shape inference for the canonical passes: ONNX's own (strict, with data propagation), with the
inferred types and shapes read straight off its value_info onto our values.

onnx_ir's ShapeInferencePass does the same inference but then deserialises the whole inferred model
into a second IR graph to merge it (about half of a MobileNet's conversion time); the types and
shapes are all we take from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes as ir_passes
import onnx_ir.passes.common as common

# Private, on purpose: onnx_ir's own ShapeInferencePass and CheckerPass call onnx's C API through
# it, serialising the model without the large initializers' bytes; onnx_ir has no public form of it.
from onnx_ir.passes.common import _c_api_utils

from ...errors import InputError
from ..graph_edit import source_label
from .base import RewritePass, subgraphs

logger = logging.getLogger(__name__)

_MAX_RANK = 64  # beyond any real tensor's (the frontends refuse longer constant shape lists too)
# ONNX's data propagation holds every 1-D value of known length N that reaches an op with a
# propagation function (Cast, Add, Slice, ...) as N symbolic entries: O(N) in C++ per op, 2^31 for
# a corrupt file's declared input. It is for shape arithmetic (vectors of rank length), so it runs
# only where the plain inference knows no run-time vector longer than this (constants it reads
# as their values, and only integer ones).
_MAX_PROPAGATED = 1 << 16
# The inputs ONNX reads as values to infer a shape (data propagation has something to do only
# where one of them is computed, or a Shape or Size reads shapes as data).
_SHAPE_OPERANDS = {
    "Reshape": (1,),
    "Expand": (1,),
    "ConstantOfShape": (0,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Range": (0, 1, 2),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Pad": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "OneHot": (1,),
    "TopK": (1,),
    "ReduceSum": (1,),
    "ReduceMean": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
    "ReduceProd": (1,),
    "CenterCropPad": (1,),
    "DFT": (1,),
    "Shape": (),
    "Size": (),
}
# ONNX makes these ops' output rank the length of their shape operand. Computed at run time, that
# length comes from declared or inferred shapes, which a corrupt file can make 2^31: a rank-2^31
# shape built in C++ (gigabytes, out of Python's sight), whatever chain leads there.
_RANK_FROM_LENGTH = {op: _SHAPE_OPERANDS[op][0] for op in ("Reshape", "Expand", "ConstantOfShape")}
# Operands ONNX takes as sizes without checking their sign: a negative one gives a negative dim,
# which Slice's inference then clamps to [0, dim] and aborts the process (std::clamp's assertion).
_SIZE_OPERANDS = {"Expand": 1, "ConstantOfShape": 0, "Tile": 1}


def infer_shapes(model: ir.Model) -> None:
    """Set each value's dtype and shape where ONNX's strict inference knows them; a model it rejects
    is left as it is (the checker after the passes reports the contradiction in one line)."""

    def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
        plain = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        if not propagates or _longest_vector(plain.graph, constants) > _MAX_PROPAGATED:
            return plain
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)

    graphs = (model.graph, *subgraphs(model.graph))
    _check_sizes(graphs)
    # (onnx_ir hands ONNX the large initializers as inputs without their bytes: known by name here)
    constants = {name for graph in graphs for name in graph.initializers}
    propagates = any(_computes_a_shape(node) for graph in graphs for node in graph)
    try:
        with _bounded_shape_operands(graphs):
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


def _computes_a_shape(node: ir.Node) -> bool:
    """A Shape or Size, or an op with a shape operand some node computes."""
    indexes = _SHAPE_OPERANDS.get(node.op_type) if not node.domain else None
    if indexes is None:
        return False
    if not indexes:
        return True
    return any(i < len(node.inputs) and (v := node.inputs[i]) is not None and v.producer() is not None for i in indexes)


def _longest_vector(graph: onnx.GraphProto, constants: set[str]) -> int:
    """The longest known length of a 1-D run-time value in the inferred graph and its subgraphs."""
    longest = 0
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 1 and dims[0].HasField("dim_value") and info.name not in constants:
            longest = max(longest, dims[0].dim_value)
    for node in graph.node:
        for attr in node.attribute:
            for sub in (*attr.graphs, *([attr.g] if attr.HasField("g") else [])):
                longest = max(longest, _longest_vector(sub, constants))
    return longest


def _check_sizes(graphs: tuple[ir.Graph, ...]) -> None:
    """A constant size operand is non-negative (every framework's sizes are), checked before ONNX
    reads it; the error names the source op."""
    for graph in graphs:
        for node in graph:
            index = _SIZE_OPERANDS.get(node.op_type, -1) if node.domain == "" else -1
            operand = node.inputs[index] if 0 <= index < len(node.inputs) else None
            sizes = operand.const_value.numpy() if operand is not None and operand.const_value is not None else None
            if operand is not None and sizes is not None and sizes.dtype.kind in "iu" and sizes.size and sizes.min() < 0:
                shown = sizes.ravel()[:8].tolist()
                raise InputError(f"op {source_label(node)}: a negative size in {shown} ({node.op_type} {operand.name!r})")


@contextmanager
def _bounded_shape_operands(graphs: tuple[ir.Graph, ...]) -> Iterator[None]:
    """While ONNX infers, each run-time shape operand of the ops above is read through a Slice to its
    first _MAX_RANK entries: the same shapes for any real model (data propagation passes
    through it), a bounded rank for a corrupt one. The graph is as it was afterwards."""
    added: list[tuple[ir.Graph, list[ir.Node]]] = []
    for graph in graphs:
        nodes: list[ir.Node] = []
        for node in list(graph):
            index = _RANK_FROM_LENGTH.get(node.op_type, -1) if node.domain == "" else -1
            operand = node.inputs[index] if 0 <= index < len(node.inputs) else None
            if operand is None or operand.const_value is not None:
                continue
            name = f"qonvert_inference_bound_{len(nodes)}_{operand.name}"
            bounds = [ir.node("Constant", [], {"value": ir.tensor(np.array([v], np.int64))}) for v in (0, _MAX_RANK)]
            for bound, end in zip(bounds, ("start", "end"), strict=True):
                bound.outputs[0].name = f"{name}_{end}"
            head = ir.node("Slice", [operand, *(b.outputs[0] for b in bounds)])
            head.outputs[0].name = name
            graph.insert_before(node, [*bounds, head])
            node.replace_input_with(index, head.outputs[0])
            nodes += [*bounds, head]
        added.append((graph, nodes))
    try:
        yield
    finally:
        for graph, nodes in added:
            for head in nodes[2::3]:
                for user, index in list(head.outputs[0].uses()):
                    user.replace_input_with(index, head.inputs[0])
            graph.remove(nodes, safe=True)


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
