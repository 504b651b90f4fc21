"""Runs the op mappers over a source graph, in source order, into a GraphBuilder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ..errors import InputError, InternalError, QonvertError, UnsupportedOpsError, located
from ..metadata import SOURCE_OP
from ..opsets.builder import GraphBuilder
from ..opsets.qparams import QuantParams
from .registry import lookup
from .source import MAX_CONST_INTS, SourceGraph, SourceOp, mapped_files, page_releaser

MAIN_OUTPUT_SLOTS = ("Out", "Output", "Y", "out")
NP_TO_IR = {
    "float32": ir.DataType.FLOAT,
    "float16": ir.DataType.FLOAT16,
    "float64": ir.DataType.DOUBLE,
    "int64": ir.DataType.INT64,
    "int32": ir.DataType.INT32,
    "int8": ir.DataType.INT8,
    "uint8": ir.DataType.UINT8,
    "int16": ir.DataType.INT16,
    "bool": ir.DataType.BOOL,
}


@dataclass
class Laid:
    """A mapper result whose ONNX value holds the source tensor transposed by `perm`
    (TFLite's NHWC activations are held NCHW inside the ONNX graph)."""

    value: ir.Value
    perm: tuple[int, ...] | None


def compose(held: tuple[int, ...] | None, want: tuple[int, ...] | None, rank: int) -> list[int] | None:
    """The Transpose perm that turns a value held as transpose(src, held) into transpose(src, want)."""
    identity = tuple(range(rank))
    held, want = held or identity, want or identity
    if sorted(held) != list(identity) or sorted(want) != list(identity):  # the file's ranks disagree with each other
        raise InputError(f"a tensor of rank {rank} is held or wanted in layout {list(held)} -> {list(want)}: the ranks in the file disagree")
    inverse = [held.index(i) for i in range(rank)]
    perm = [inverse[w] for w in want]
    return None if perm == list(identity) else perm


# What a mapper returns, bound to its op's outputs in order (a dict: by output slot).
Bound = ir.Value | Laid
MapperResult = Bound | Sequence[Bound] | dict[str, Bound | Sequence[Bound]] | None


class ConversionContext:
    """What a mapper sees: the source graph's values as ONNX values, and the builder."""

    def __init__(self, source: SourceGraph, builder: GraphBuilder) -> None:
        self.source = source
        self.b = builder
        self.values: dict[str, ir.Value] = {}
        self.name_map: dict[str, str] = {}  # source tensor -> ONNX value, where they differ
        self.remarks: list[str] = []
        self.perms: dict[str, tuple[int, ...]] = {}  # source tensor -> how its ONNX value is transposed
        self._layouts: dict[tuple[str, tuple[int, ...] | None], ir.Value] = {}
        self._bound: set[int] = set()
        self.graph_inputs: list[ir.Value] = []
        self._consumers: dict[str, list[SourceOp]] | None = None

    def readers(self, name: str) -> list[SourceOp]:
        """The source ops that read tensor `name` (the table is built once: mappers ask per op,
        and a scan per question was quadratic in the program's size)."""
        if self._consumers is None:
            self._consumers = self.source.consumers()
        return self._consumers.get(name, [])

    # -- what a mapper may say and make beside its outputs --------------------------
    def remark(self, text: str | None) -> None:
        """A remark for the user (shown by convert and kept in the result), each once."""
        if text and text not in self.remarks:
            self.remarks.append(text)

    def int_weight(self, codes: np.ndarray, qp: QuantParams, tensor: str, name: str) -> ir.Value:
        """A weight's integer codes behind a DQ: dead channels (scale 0) revived and remarked, the
        parameters validated against the codes (`tensor` names the weight in errors)."""
        qp, codes, revived = qp.revive_dead_channels(codes, tensor)
        self.remark(revived)
        qp.validate(tensor, codes.shape)
        return self.b.int_weight(codes if codes.dtype.kind in "iu" else codes.astype(np.int64), qp, name)

    def bind_input(self, name: str, value: ir.Value) -> None:
        """A graph input (or subgraph input) as the source tensor `name`: an integer tensor's
        codes read through their DQ."""
        qp = self.source.quant.get(name)
        self.values[name] = value if qp is None else self.b.dequantize(value, qp, name=self.b.unique(f"{name}_dq"))

    # -- reading inputs -----------------------------------------------------------
    def array(self, name: str | None) -> np.ndarray | None:
        """The constant value of a source tensor, or None when it is computed at run time."""
        if name is None:
            return None
        if name in self.source.constants:
            return self.source.constants[name]
        value = self.values.get(name)
        if value is not None and value.const_value is not None:
            return value.const_value.numpy()
        return None

    def const_ints(self, name: str | None, op: SourceOp, what: str, low: int | None = None) -> list[int] | None:
        """A constant integer list (a shape, axes, a kernel size) held in a tensor of any rank, or
        None when it is computed at run time; a tensor of non-integers, of more entries than
        such a list has, or (low) of an entry below `low` is the file's error, naming the op."""
        data = self.array(name)
        if data is None:
            return None
        flat = np.asarray(data).ravel()
        integral = flat.dtype.kind in "iub" or (flat.dtype.kind == "f" and bool(np.all(np.isfinite(flat) & (flat == np.round(flat)))))
        if not integral or flat.size > MAX_CONST_INTS:
            raise InputError(f"op {op.label}: {what} {name!r} is not a list of integers ({flat.dtype}, {flat.size} values)")
        values = [int(v) for v in flat]
        if low is not None and any(v < low for v in values):
            raise InputError(f"op {op.label}: {what} {name!r} is {values[:8]}: each must be at least {low}")
        return values

    def const_scalar(self, name: str | None, op: SourceOp, what: str) -> float | None:
        """A constant number held in a one-value tensor (a scale, a bound, a fill value), or None
        when it is computed at run time (or absent); a tensor of another size or of non-numbers
        is the file's error, naming the op."""
        data = self.array(name)
        if data is None:
            return None
        flat = np.asarray(data).ravel()
        if flat.size != 1 or flat.dtype.kind not in "iufb":
            raise InputError(f"op {op.label}: {what} {name!r} holds {flat.size} values of {flat.dtype}, not one number")
        return float(flat[0])

    def value(self, name: str | None) -> ir.Value:
        if name is None:
            raise InputError("missing input")
        if name not in self.values:
            if name not in self.source.constants:
                raise InputError(f"{self.source.path}: tensor {name!r} is used before it is produced")
            qp = self.source.quant.get(name)
            data = self.source.constants[name]
            self.values[name] = self.b.const(data, name) if qp is None else self.b.int_weight(data, qp, name)
        return self.values[name]

    def float_array(self, name: str | None) -> np.ndarray | None:
        """A constant's real value: integer data of a quantized constant dequantized."""
        data = self.array(name)
        qp = self.source.quant.get(name or "")
        return data if data is None or qp is None else qp.dequantize(data)

    def laid_out(self, name: str, perm: Sequence[int] | None = None) -> ir.Value:
        """The tensor transposed by `perm` from its source layout (None: as in the source)."""
        want = tuple(perm) if perm is not None else None
        value = self.value(name)
        rank = len(self.shape(name) or ())
        if want is not None and (want == tuple(range(rank)) or rank < 2):
            want = None
        steps = compose(self.perms.get(name), want, rank) if rank else None
        if steps is None:
            return value
        key = (name, want)
        if key not in self._layouts:
            self._layouts[key] = self._transpose_quantized(value, steps)
        return self._layouts[key]

    def _transpose_quantized(self, value: ir.Value, perm: list[int]) -> ir.Value:
        """Move a quantized tensor as DQ -> Transpose -> Q -> DQ with its own parameters (exact:
        Q(DQ(q)) == q), so its consumer still reads a DQ, its producer keeps a single Q, and ORT
        turns DQ -> Transpose -> Q into an integer Transpose."""
        dq = value.producer()
        moved = self.b.op("Transpose", [value], {"perm": perm})
        if dq is None or dq.op_type != "DequantizeLinear" or dq.attributes.get("axis") is not None:
            return moved
        return self.b.op("DequantizeLinear", [self.b.op("QuantizeLinear", [moved, *dq.inputs[1:]]), *dq.inputs[1:]])

    def input(self, op: SourceOp, slot: str, index: int = 0) -> ir.Value:
        name = op.input(slot, index)
        if name is None:
            raise InputError(f"op {op.label}: missing input {slot}")
        return self.value(name)

    def shape(self, name: str | None) -> tuple[int, ...] | None:
        if name is None:
            return None
        if name in self.source.constants:
            return tuple(self.source.constants[name].shape)
        return self.source.shapes.get(name)

    def rank(self, op: SourceOp, slot: str) -> int:
        shape = self.shape(op.input(slot))
        if shape is None:
            raise InputError(f"op {op.label}: rank of input {slot} is unknown")
        return len(shape)

    # -- binding outputs ----------------------------------------------------------
    def bind(self, op: SourceOp, result: MapperResult) -> None:
        if result is None:
            return
        if isinstance(result, dict):
            items = list(result.items())
        else:
            slot = next((s for s in MAIN_OUTPUT_SLOTS if op.outputs.get(s)), next(iter(op.outputs), None))
            if slot is None:
                return
            items = [(slot, result)]
        for slot, res in items:
            names = op.outputs.get(slot) or []
            vals = [res] if isinstance(res, (ir.Value, Laid)) else list(res)
            for name, val in zip(names, vals, strict=False):
                self._bind_one(name, val)

    def _bind_one(self, name: str, val: ir.Value | Laid) -> None:
        perm: tuple[int, ...] | None = None
        if isinstance(val, Laid):
            perm = val.perm
            val = val.value
        declared = self.shape(name)
        if perm is not None and declared is not None and len(declared) != len(perm):  # what the mappers index by
            raise InputError(f"tensor {name!r}: declared with rank {len(declared)}, but its op writes rank {len(perm)}")
        qp = self.source.quant.get(name)
        if qp is not None:  # an integer tensor in the source: Q (named as the source tensor) -> DQ
            if qp.per_axis and perm is not None:
                qp = qp.with_axis(perm.index(qp.axis or 0))
            q = self.b.quantize(val, qp, name=name)
            val = self.b.dequantize(q, qp, name=self.b.unique(f"{name}_dq"))
            if q.name != name:
                self.name_map[name] = q.name or ""
        elif val.producer() is not None and id(val) not in self._bound and val.name not in self.b.initializers:
            if val.name != name:
                self.b.rename(val, name)
            if val.name != name:
                self.name_map[name] = val.name or ""
        elif val.name != name:
            self.name_map[name] = val.name or ""
        self._bound.add(id(val))
        self.values[name] = val
        if perm is not None and perm != tuple(range(len(perm))):
            self.perms[name] = perm

    def output(self, name: str) -> ir.Value:
        """A graph output as the source has it: in its source layout (or the io layout asked
        for) and, for an integer tensor, quantized again."""
        perm = self.source.io_perms.get(name)
        own_q = self._own_q(name)
        if own_q is not None and own_q.name == name and self.laid_out(name, perm) is not self.values[name]:
            own_q.name = self.b.unique(f"{name}_held")  # the output Q takes the source name
            self.name_map[name] = own_q.name
            self.b.release(name)
        return self.codes(name, perm, q_name=name)

    def codes(self, name: str, perm: Sequence[int] | None = None, q_name: str | None = None) -> ir.Value:
        """The tensor as the source holds it, in layout `perm` (None: the source's): an integer
        tensor's codes (its own Q where the layout is its own), any other its value."""
        value = self.laid_out(name, perm)
        qp = self.source.quant.get(name)
        if qp is None:
            return value
        own_q = self._own_q(name)
        if own_q is not None and value is self.values[name]:
            return own_q
        return self.b.quantize(value, qp, name=q_name)

    def _own_q(self, name: str) -> ir.Value | None:
        """The Q an integer tensor's DQ reads (None for a float tensor)."""
        dq = self.values[name].producer() if name in self.source.quant and name in self.values else None
        return dq.inputs[0] if dq is not None and dq.op_type == "DequantizeLinear" else None


def run_mappers(source: SourceGraph, builder: GraphBuilder) -> ConversionContext:
    """Pre-flight every op, the control-flow subgraphs' too (all unsupported ones in one error),
    then map them in order."""
    missing: dict[str, list[str]] = {}
    for op in source.all_ops():
        if lookup(source.framework, op.type) is None:
            missing.setdefault(op.type, []).append(op.label)
    if missing:
        raise UnsupportedOpsError(source.path, missing)

    ctx = ConversionContext(source, builder)
    for info in source.inputs:
        if info.dtype not in NP_TO_IR:
            raise InputError(f"{source.path}: input {info.name!r} has dtype {info.dtype!r:.40}, not a tensor type")
        perm = source.io_perms.get(info.name)
        shape = [info.shape[p] for p in perm] if perm else list(info.shape)
        dims = [d if d >= 0 else f"{info.name}_d{i}" for i, d in enumerate(shape)]
        value = ir.Value(name=builder.unique(info.name), shape=ir.Shape(dims), type=ir.TensorType(NP_TO_IR[info.dtype]))
        ctx.graph_inputs.append(value)
        ctx.bind_input(info.name, value)
        if perm:
            ctx.perms[info.name] = perm
    _map_ops(ctx, path=str(source.path))
    return ctx


def inline_graph(parent: ConversionContext, source: SourceGraph, inputs: Sequence[ir.Value]) -> list[ir.Value]:
    """Map a subgraph (a TFLite WHILE body, an IF branch) into the parent's builder, where its
    nodes go wherever the builder's node list points: its inputs bound to `inputs`, its outputs
    returned, each as the source holds it (an integer tensor's codes, in the source layout)."""
    ctx = ConversionContext(source, parent.b)
    for info, value in zip(source.inputs, inputs, strict=True):
        ctx.bind_input(info.name, value)
    _map_ops(ctx, path="")  # an error names the file once, with the op running the subgraph
    for text in ctx.remarks:
        parent.remark(text)
    return [ctx.codes(name) for name in source.outputs]


def _map_ops(ctx: ConversionContext, path: str) -> None:
    """Each op's mapper, its result bound; an error names the file (`path`, "" in a subgraph) and
    the op, each once."""
    source, builder = ctx.source, ctx.b
    release = page_releaser(mapped_files(source.constants.values()))
    for op in source.ops:
        mapper = lookup(source.framework, op.type)
        assert mapper is not None
        release(sum(source.constants[n].nbytes for names in op.inputs.values() for n in names if n in source.constants))
        first = len(builder.nodes)
        try:
            ctx.bind(op, mapper(ctx, op))
            for node in builder.nodes[first:]:  # what verify names a diverging layer by
                node.metadata_props[SOURCE_OP] = op.label[:200]
        except QonvertError as exc:
            text = str(exc)
            place = ": ".join(p for p in (path if path not in text else "", "" if op.type in text else f"op {op.label}") if p)
            if not place:
                raise
            raise located(exc, place) from exc
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # what the mapper did not expect: qonvert's bug, named by the op
            where = f"{path}: " if path else ""
            raise InternalError(f"{where}op {op.label}: internal error, {type(exc).__name__}: {exc}") from exc
