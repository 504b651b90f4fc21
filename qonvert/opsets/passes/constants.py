"""Fold layout ops applied to constants: float initializers, and DQ'd integer weights
(transposing the int8 data and remapping the per-channel axis, so no layout op sits
between a weight's DQ and its consumer)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...errors import InputError
from ..graph_edit import add_dq, const_array, initializer, weight_dq
from .base import RewritePass


def _apply(node: ir.Node, data: np.ndarray) -> tuple[np.ndarray, list[int] | None] | None:
    """The op applied to `data`, and where each output axis comes from (None: axes mixed). A
    shape, perm or axes that does not fit the constant (a corrupt model) is a QonvertError."""
    try:
        return _apply_unchecked(node, data)
    except (ValueError, IndexError, TypeError) as exc:
        raise InputError(f"{node.op_type} {node.name}: does not fit its constant input of shape {list(data.shape)} ({exc})") from None


def _apply_unchecked(node: ir.Node, data: np.ndarray) -> tuple[np.ndarray, list[int] | None] | None:
    op = node.op_type
    if op == "Identity":
        return data, list(range(data.ndim))
    if op == "Transpose":
        attr = node.attributes.get("perm")
        perm = list(attr.as_ints()) if attr is not None else list(reversed(range(data.ndim)))
        return np.transpose(data, perm), perm
    second = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if op == "Reshape" and second is not None:
        shape = [data.shape[i] if d == 0 else int(d) for i, d in enumerate(second)]
        out = data.reshape(shape)
        return out, list(range(data.ndim)) if out.shape == data.shape else None  # same shape: axes kept
    if op == "Unsqueeze" and second is not None:
        out = data
        for a in sorted(int(a) % (data.ndim + len(second)) for a in second):
            out = np.expand_dims(out, a)
        return out, None
    if op == "Squeeze":
        axes = tuple(int(a) % data.ndim for a in second) if second is not None else None
        return np.squeeze(data, axis=axes), None
    return None


def fold_constant_layout(graph: ir.Graph) -> int:
    folded = 0
    for node in list(graph):
        if node.op_type not in ("Identity", "Transpose", "Reshape", "Unsqueeze", "Squeeze") or node.domain:
            continue
        src = node.inputs[0]
        data = const_array(src)
        out = node.outputs[0]
        if data is not None:
            result = _apply(node, data)
            if result is None or not out.consumers():
                continue
            new = initializer(graph, result[0], f"{out.name}_folded")  # a view (see below)
            _reroute(graph, node, new)
            folded += 1
            continue
        wdq = weight_dq(src)
        if wdq is None or src is None or len(src.consumers()) != 1 or not out.consumers():
            continue
        _dq, q_data, qp = wdq
        result = _apply(node, q_data)
        if result is None:
            continue
        moved, origin = result
        if qp.per_axis:
            if origin is None:
                continue  # reshaping a per-channel tensor: the axis may not survive
            qp = qp.transposed(origin)
        # A view, not a copy: the weight is written in its new order one tensor at a time, so a
        # model of large weights (a transformer's linears) is never held twice.
        new = add_dq(graph, moved, qp, f"{out.name}_folded", before=node)
        _reroute(graph, node, new)
        folded += 1
    return folded


def drop_noop_reshapes(graph: ir.Graph) -> int:
    """A Reshape to the shape its input already has (each target dim equal to the input's, or 0,
    and at most one -1, which then can only be the remaining dim) is dropped: PIR's translation of
    a legacy `mul` wraps its matmul in such reshapes, which hid the bias Add from its MatMul."""
    dropped = 0
    for node in list(graph):
        if node.op_type != "Reshape" or node.domain or node.inputs[0] is None or node.outputs[0].is_graph_output():
            continue
        target = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
        dims = list(node.inputs[0].shape or []) if node.inputs[0].shape is not None else None
        if target is None or dims is None or target.ndim != 1 or len(target) != len(dims):
            continue
        unknown = [i for i, (t, d) in enumerate(zip(target.tolist(), dims, strict=True)) if not (t == 0 or (isinstance(d, int) and t == d))]
        if len(unknown) > 1 or (unknown and target[unknown[0]] != -1):
            continue
        node.outputs[0].replace_all_uses_with(node.inputs[0])
        graph.remove(node, safe=True)
        dropped += 1
    return dropped


def _reroute(graph: ir.Graph, node: ir.Node, new: ir.Value) -> None:
    """The ops reading `node`'s output read `new` instead; a graph output keeps its producer."""
    out = node.outputs[0]
    for user, index in list(out.uses()):
        user.replace_input_with(index, new)
    if not out.is_graph_output():
        graph.remove(node, safe=True)


class FoldConstantLayout(RewritePass):
    counts_as = ("constant_layout_folded",)

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_constant_layout(graph)


class DropNoopReshapes(RewritePass):
    counts_as = ("noop_reshape_dropped",)
    after = ("Cleanup",)  # it compares shapes: those shape inference gives

    def rewrite(self, graph: ir.Graph) -> int:
        return drop_noop_reshapes(graph)
