"""The canonical graph cut into islands: the float ops between DequantizeLinears of quantized
tensors and the QuantizeLinears of their results. In a model LiteRT runs in int8 each island is
one LiteRT op (with its fused activation, which the canonical form may split into an island of
its own behind a Q/DQ pair of the same parameters); the LiteRT-exact form replaces each by the
integer arithmetic of that op's reference kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...metadata import SOURCE_OP
from ...opsets.graph_edit import const_array, qparams_of, source_label

QDQ = ("QuantizeLinear", "DequantizeLinear")
# Read a DQ's shape, or the order of its values, only: the codes give the same (a DQ is strictly
# increasing, and LiteRT's ARG_MAX / ARG_MIN compare the int8 codes)
CODE_READERS = frozenset({"Shape", "Size", "ArgMax", "ArgMin"})


class Unsupported(Exception):
    """An island LiteRT's reference kernels compute in a way this form does not reproduce."""


@dataclass(frozen=True)
class Codes:
    """A quantized tensor as LiteRT holds it: int8 codes with one scale and zero point, stored in
    the canonical graph as int8, or as uint8 with zero point + 128 (the same real values)."""

    value: ir.Value  # the codes in the canonical graph (a Q's output, a graph input, a constant)
    scale: np.float32
    zero_point: int  # LiteRT's, int8
    storage: ir.DataType

    @property
    def storage_zero_point(self) -> np.ndarray:
        shift = 128 if self.storage == ir.DataType.UINT8 else 0
        return np.asarray(self.zero_point + shift, np.uint8 if shift else np.int8)

    def same_as(self, other: Codes) -> bool:
        return self.scale == other.scale and self.zero_point == other.zero_point


@dataclass
class Island:
    nodes: list[ir.Node]  # the float ops, in graph order (none: a Q reading a DQ or a graph input)
    reads: dict[ir.Value, Codes] = field(default_factory=dict)  # a DQ's float output -> its codes
    quantizes: list[ir.Node] = field(default_factory=list)  # the Qs of its results

    @property
    def label(self) -> str:
        for node in (*self.nodes, *self.quantizes):
            label = node.metadata_props.get(SOURCE_OP)
            if label:
                return label
        return "+".join(n.op_type for n in self.nodes) or "QuantizeLinear"

    @property
    def op_types(self) -> tuple[str, ...]:
        return tuple(n.op_type for n in self.nodes)

    def codes_of(self, value: ir.Value | None) -> Codes:
        """The codes behind a float input: a DQ of a tensor the graph computes, or of a constant."""
        if value is not None and value in self.reads:
            return self.reads[value]
        dq = value.producer() if value is not None else None
        if dq is not None and dq.op_type == "DequantizeLinear" and const_array(dq.inputs[0]) is not None:
            return q_codes(dq)
        raise Unsupported(f"input {value.name if value is not None else '?'} is not a quantized tensor")

    def output(self, q: ir.Node) -> Codes:
        return q_codes(q)


def q_codes(q: ir.Node) -> Codes:
    """The codes a Q or DQ node makes or reads, per tensor int8 or uint8."""
    qp = qparams_of(q)
    if qp is None or qp.per_axis or qp.dtype not in ("int8", "uint8"):
        what = "per-axis" if qp is not None and qp.per_axis else (qp.dtype if qp is not None else "run-time")
        raise Unsupported(f"tensor {q.outputs[0].name} is quantized {what}: LiteRT's int8 kernels take per-tensor int8")
    storage = ir.DataType.UINT8 if qp.dtype == "uint8" else ir.DataType.INT8
    zero_point = int(qp.zero_point) - (128 if storage == ir.DataType.UINT8 else 0)
    return Codes(q.outputs[0] if q.op_type == "QuantizeLinear" else q.inputs[0], np.float32(qp.scale), zero_point, storage)  # type: ignore[arg-type]


def activation_dq(node: ir.Node | None) -> bool:
    """A DQ of a tensor the graph computes (not of a weight or bias initializer)."""
    return node is not None and node.op_type == "DequantizeLinear" and not node.domain and const_array(node.inputs[0]) is None


def find_islands(graph: ir.Graph, movement: frozenset[str]) -> tuple[list[Island], list[ir.Node], list[tuple[str, str]]]:
    """The islands in graph order, the nodes reading a DQ output's shape or order (moved to its codes),
    and what has no island form (a float op whose result reaches no Q: the source computes it
    in float, or the graph is not LiteRT's int8). Ops that only move dequantized values to a
    float graph output (the layout of an NHWC output) stay as they are: they are exact."""
    float_nodes = [n for n in graph if not n.domain and n.op_type not in QDQ and any(v.dtype == ir.DataType.FLOAT for v in n.outputs)]
    component: dict[ir.Node, int] = {}
    parent: list[int] = []

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for node in float_nodes:
        component[node] = len(parent)
        parent.append(len(parent))
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            if producer in component:
                parent[find(component[node])] = find(component[producer])  # type: ignore[index]
    islands: dict[int, Island] = {}
    for node in float_nodes:
        islands.setdefault(find(component[node]), Island([])).nodes.append(node)
    problems: list[tuple[str, str]] = []
    code_readers: list[ir.Node] = []
    standalone: list[Island] = []
    for node in graph:
        if node.domain or node.op_type != "QuantizeLinear":
            if node in component or node.domain or node.op_type in QDQ:
                continue
            if any(activation_dq(v.producer()) for v in node.inputs if v is not None):
                if node.op_type in CODE_READERS:
                    code_readers.append(node)
                else:
                    problems.append((source_label(node), f"{node.op_type} reads a quantized tensor as float"))
            continue
        producer = node.inputs[0].producer() if node.inputs[0] is not None else None
        if producer in component:
            islands[find(component[producer])].quantizes.append(node)  # type: ignore[index]
        else:  # a requantization (a DQ's output, or a float graph input, quantized)
            standalone.append(Island([], quantizes=[node]))
    islands = {k: i for k, i in islands.items() if i.quantizes or not set(i.op_types) <= movement or not _after_dqs(i)}
    order = {n: k for k, n in enumerate(graph)}
    ordered = sorted([*islands.values(), *standalone], key=lambda i: order[(i.nodes or i.quantizes)[0]])
    for island in ordered:
        for node in island.nodes:
            for value in node.inputs:
                dq = value.producer() if value is not None else None
                if activation_dq(dq):
                    try:
                        island.reads[value] = q_codes(dq)  # type: ignore[arg-type,index]
                    except Unsupported as exc:
                        problems.append((island.label, str(exc)))
            for value in node.outputs:
                users = [u for u in value.uses() if u.node not in island.nodes and u.node not in island.quantizes]
                if users or value.is_graph_output():
                    problems.append((island.label, f"{node.op_type} output {value.name} stays float (the source computes it in float)"))
    return ordered, code_readers, problems


def _after_dqs(island: Island) -> bool:
    """Every input of the island is a DQ's output, a constant or another of its own values."""
    inner = {v for n in island.nodes for v in n.outputs}
    for node in island.nodes:
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            if value is not None and value not in inner and producer is not None and producer.op_type != "DequantizeLinear":
                return False
    return True
