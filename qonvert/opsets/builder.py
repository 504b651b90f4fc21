"""Builds the ONNX graph through onnx_ir: plain ops, constants, and the Q/DQ primitives.

Everything quantized goes through `quantize`, `dequantize` and `int_weight` here, and through
graph_edit's `add_q` / `add_dq` in the passes; both write Q/DQ with `qdq_inputs` below, so scale
dtype, zero-point dtype (int4 included) and axis conventions (docs/design.md, "Scales and zero points") live here only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import InputError, InternalError
from ..naming import unique_name
from . import versions
from .qparams import NUMPY_DTYPES, QuantParams

ONNX_QDTYPES = {
    "int8": ir.DataType.INT8,
    "uint8": ir.DataType.UINT8,
    "int16": ir.DataType.INT16,
    "uint16": ir.DataType.UINT16,
    "int4": ir.DataType.INT4,
    "uint4": ir.DataType.UINT4,
    "int32": ir.DataType.INT32,
}
QDTYPE_NAMES = {v: k for k, v in ONNX_QDTYPES.items()}


def quantized_tensor(values: Any, dtype: str) -> ir.TensorProtocol:
    """Integer data (or a zero point) in a quantized dtype as an ONNX tensor; int4 packs."""
    arr = np.asarray(values)
    if dtype in ("int4", "uint4"):  # held in numpy as (u)int8 codes, packed on write
        return ir.Tensor(arr.astype(np.int8 if dtype == "int4" else np.uint8, copy=False), dtype=ONNX_QDTYPES[dtype])
    # ir.Tensor, not ir.tensor: no protocol isinstance checks; an array already in the dtype (a
    # read-only view of a mapped source file) is kept, not copied.
    return ir.Tensor(arr.astype(NUMPY_DTYPES[dtype], copy=False))


def qdq_tensors(qp: QuantParams) -> tuple[ir.TensorProtocol, ir.TensorProtocol, dict[str, Any]]:
    """A Q/DQ's scale and zero point tensors and its attributes: the one place (with
    `quantized_tensor`) that writes them, for the builder and for graph_edit's passes alike."""
    attrs: dict[str, Any] = {"axis": qp.axis} if qp.per_axis else {}
    if qp.blocked:
        attrs["block_size"] = qp.block_size
    return ir.Tensor(np.asarray(qp.scale, np.float32)), quantized_tensor(qp.zero_point, qp.dtype), attrs


class GraphBuilder:
    """Accumulates nodes and initializers; names are unique within this builder only."""

    def __init__(self, opset: int = versions.MIN_OPSET) -> None:
        self.nodes: list[ir.Node] = []
        self.initializers: dict[str, ir.Value] = {}
        self._names: set[str] = set()
        self.opset = opset  # the opset ops are emitted for
        self.min_opset = opset  # raised by quant dtypes that need more (a check: the frontend says first)

    # -- naming -----------------------------------------------------------------
    def unique(self, base: str) -> str:
        """Reserve `base` (a source name) for an ONNX value, or a suffixed one where it is taken."""
        name = unique_name(base or "t", self._names)
        self._names.add(name)
        return name

    def release(self, name: str) -> None:
        """Give a reserved name back (a value renamed away from it)."""
        self._names.discard(name)

    def rename(self, value: ir.Value, name: str) -> bool:
        """Give the value `name` if no other value holds it; whether it did."""
        if name in self._names:
            return False
        self.release(value.name or "")
        value.name = self.unique(name)
        return True

    # -- plain ops --------------------------------------------------------------
    def op(
        self,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        outputs: int = 1,
        name: str | None = None,
        domain: str = "",
    ) -> Any:
        """Append a node; returns its single output Value, or a tuple when outputs > 1."""
        try:
            # an empty list is typed INTS here, as onnx_ir would default it (with a logged warning)
            given = {k: ir.AttrInt64s(k, []) if isinstance(v, (list, tuple)) and not v else v for k, v in (attrs or {}).items() if v is not None}
            attributes = ir.convenience.convert_attributes(given)
        except (TypeError, ValueError):  # a value read from the file is no ONNX attribute (a nested list ...)
            shown = {k: (repr(v)[:40] + "…" if len(repr(v)) > 40 else repr(v)) for k, v in (attrs or {}).items()}
            raise InputError(f"{op_type}: attributes {shown} are not valid ONNX attribute values") from None
        try:
            versions.check_op(op_type, domain, self.opset, set(given), len(inputs))
        except versions.OpsetError as exc:  # the registry's opset for the mapper is too low
            raise InternalError(f"internal error, {exc}: the graph is built at opset {self.opset}") from None
        node = ir.Node(
            domain,
            op_type,
            list(inputs),
            attributes,
            num_outputs=outputs,
            name=self.unique(f"{op_type}_{len(self.nodes)}"),
        )
        for i, out in enumerate(node.outputs):
            out.name = self.unique(name if (name and i == 0) else f"{op_type.lower()}_{len(self.nodes)}_{i}")
        self.nodes.append(node)
        return node.outputs[0] if outputs == 1 else tuple(node.outputs)

    @contextmanager
    def subgraph(self) -> Iterator[list[ir.Node]]:
        """Nodes made inside go to the list yielded (a Loop body, an If branch), not this graph's;
        names stay unique across both, and constants are this graph's initializers, which a
        subgraph reads from the outer scope."""
        outer, self.nodes = self.nodes, []
        try:
            yield self.nodes
        finally:
            self.nodes = outer

    def adopt(self, nodes: Sequence[ir.Node], base: str) -> None:
        """Append nodes another builder made (torchlib's recorder), named uniquely here."""
        for node in nodes:
            node.name = self.unique(f"{node.op_type}_{len(self.nodes)}")
            for i, out in enumerate(node.outputs):
                out.name = self.unique(f"{base}_{len(self.nodes)}_{i}")
            self.nodes.append(node)

    def const(self, array: Any, name: str = "const", dtype: Any = None) -> ir.Value:
        return self.tensor(ir.Tensor(np.asarray(array, dtype=dtype)), name)

    def tensor(self, tensor: ir.TensorProtocol, name: str) -> ir.Value:
        """An initializer holding `tensor`."""
        value = ir.Value(name=self.unique(name), shape=ir.Shape(tensor.shape.numpy()), type=ir.TensorType(tensor.dtype))
        tensor.name = value.name
        value.const_value = tensor
        self.initializers[value.name or ""] = value
        return value

    def ints(self, values: Sequence[int] | np.ndarray, name: str = "ints") -> ir.Value:
        return self.const(np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.int64), name)

    def reduce(self, op_type: str, x: ir.Value, axes: Sequence[int] | None, keepdims: bool) -> ir.Value:
        """Reduce* with axes as an attribute or, from opset 18 (ReduceSum: 13), an input."""
        attrs: dict[str, Any] = {"keepdims": int(keepdims)}
        if axes is None:
            return self.op(op_type, [x], attrs)
        if self.opset >= versions.first_opset(op_type, inputs=2):
            return self.op(op_type, [x, self.ints(axes, "axes")], attrs)
        return self.op(op_type, [x], {**attrs, "axes": list(axes)})

    # -- quantization primitives --------------------------------------------------
    def _qdq(self, op_type: str, x: ir.Value, qp: QuantParams, name: str) -> ir.Value:
        self.min_opset = max(self.min_opset, qp.min_opset)
        scale, zp, attrs = qdq_tensors(qp)
        return self.op(op_type, [x, self.tensor(scale, f"{name}_scale"), self.tensor(zp, f"{name}_zero_point")], attrs, name=name)

    def quantize(self, x: ir.Value, qp: QuantParams, name: str | None = None) -> ir.Value:
        """Q; where the source clamps its codes tighter than the dtype (Paddle's [-127, 127], a
        PT2E quant_min/quant_max) the reals are clamped first, in float: exact, and the clamp
        that torch.onnx drops."""
        if qp.narrow:
            if qp.per_axis:
                raise InputError(f"tensor {x.name!r}: a per-axis quantization with a narrow range is not supported")
            lo, hi = ((np.asarray(q) - qp.zero_point) * qp.scale for q in qp.code_range)
            x = self.op("Clip", [x, self.const(np.float32(lo)), self.const(np.float32(hi))])
        return self._qdq("QuantizeLinear", x, qp, name or f"{x.name}_q")

    def dequantize(self, q: ir.Value, qp: QuantParams, name: str | None = None) -> ir.Value:
        return self._qdq("DequantizeLinear", q, qp, name or f"{q.name}_dq")

    def int_weight(self, q_values: np.ndarray, qp: QuantParams, name: str) -> ir.Value:
        """An integer initializer (values already in the quantized domain) read through a DQ."""
        arr = np.asarray(q_values)
        lo, hi = qp.dtype_range
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise InputError(f"tensor {name!r}: quantized values outside {qp.dtype}'s range")
        return self.dequantize(self.tensor(quantized_tensor(arr, qp.dtype), f"{name}_quantized"), qp, name=name)

    def finish(
        self,
        inputs: Sequence[ir.Value],
        outputs: Sequence[ir.Value],
        *,
        opset: int | None = None,
        metadata: dict[str, str] | None = None,
        graph_name: str = "qonvert",
    ) -> ir.Model:
        graph = ir.Graph(
            inputs,
            outputs,
            nodes=self.nodes,
            initializers=list(self.initializers.values()),
            opset_imports={"": max(self.min_opset, self.opset, opset or 0)},
            name=graph_name,
        )
        return ir.Model(
            graph,
            ir_version=versions.ir_version(graph.opset_imports[""]),
            producer_name="qonvert",
            metadata_props=dict(metadata or {}),
        )
