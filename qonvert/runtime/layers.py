"""Per-layer check: every quantized tensor of the source, computed by ORT from the reference
runtime's own values of the tensors it reads, compared in integer steps.

The converted graph is cut at each Q named after a source tensor: the Q's output becomes a graph
output (ours) and its consumers read a new graph input, fed with the reference's value. So each
segment (one source op, with the transposes and Q/DQ around it) starts from exactly what the
source framework computed, and an end-to-end difference can be traced to the op that makes it
rather than to the amplification of one flipped step through the layers after it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import InputError
from ..metadata import LAYOUTS, NAME_MAP, SOURCE_FRAMEWORK, SOURCE_OP, TARGET, TWIN, metadata
from .ort import run, session

OURS = "/qonvert_ours"  # suffix of the cut Q outputs (a name no framework makes)
HOPS = 3  # how many producers name a layer's op (Conv+Relu, Mul+Add+Clip ...)


@dataclass
class LayerStats:
    name: str  # the source tensor
    op: str  # the ONNX ops between the segment's DQs and its Q
    max_steps: int  # max |ours - reference| in integer steps
    pct_exact: float
    elements: int
    source_op: str = ""  # the source op computing the tensor (its label), where the model records it
    shape: tuple[int, ...] = ()  # the tensor's shape in the reference

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Cut:
    source: str  # tensor name in the reference
    value: str  # the Q output's name in ONNX (a graph input after the cut)
    perm: tuple[int, ...] | None  # ONNX value = reference value transposed by perm
    dtype: np.dtype
    shape: tuple[int | None, ...] | None  # from the model's value_info, where known
    scale: np.ndarray | None = None  # the Q's own, to quantize a reference that holds real values
    zero_point: np.ndarray | None = None
    axis: int = 1
    twins: list[str] = field(default_factory=list)  # twin Qs of the same value (twin_shared_q): fed the same


def compare_layers(
    model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]], device: str = "cpu", required: bool = True
) -> list[LayerStats]:
    """One LayerStats per quantized source tensor the reference exposes, in graph order (none
    found: an error, unless not `required`)."""
    cut_model, cuts = _cut(model, set(reference[0]) if reference else set())
    if not cuts and not required:
        return []
    if not cuts:
        raise InputError("per-layer: no quantized tensor of the ONNX model is named as a tensor of the reference")
    sess = session(cut_model, device)
    worst: dict[str, list[int]] = {c.value: [0, 0, 0] for c in cuts}  # max steps, exact, elements
    shapes = {c.value: tuple(int(d) for d in np.shape(reference[0][c.source])) for c in cuts} if reference else {}
    for feed, ref in zip(feeds, reference, strict=True):
        full = dict(feed) | {c.value: _to_onnx(ref[c.source], c) for c in cuts}
        full |= {twin: full[c.value] for c in cuts for twin in c.twins}
        outs = run(sess, {i.name: full[i.name] for i in sess.get_inputs()})
        for c, ours in zip(cuts, outs, strict=True):
            diff = np.abs(ours.astype(np.int64) - full[c.value].astype(np.int64))
            w = worst[c.value]
            w[0], w[1], w[2] = max(w[0], int(diff.max(initial=0))), w[1] + int((diff == 0).sum()), w[2] + diff.size
    producers = {o: n for n in model.graph.node for o in n.output}
    values = {c.value for c in cuts}
    return [
        LayerStats(
            c.source,
            _op_label(producers, c.value, values),
            w[0],
            100.0 * w[1] / max(w[2], 1),
            w[2],
            _source_op(producers, c.value),
            shapes.get(c.value, ()),
        )
        for c, w in ((c, worst[c.value]) for c in cuts)
    ]


def outputs_from_reference(
    model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]], device: str = "cpu"
) -> dict[str, float]:
    """max |diff| of each float graph output from the reference's, computed with every quantized
    tensor set to the reference's own: what the float parts between them, and after the last, give
    alone. Near 0, the end-to-end difference is the per-layer steps carried through the layers."""
    cut_model, cuts = _cut(model, set(reference[0]) if reference else set())
    cut_values = {c.value for c in cuts}
    outputs = [o for o in model.graph.output if o.name in reference[0] and o.name not in cut_values] if reference else []
    if not cuts or not outputs:
        return {}
    cut_model.graph.output.extend(outputs)
    sess = session(cut_model, device)
    worst = dict.fromkeys((o.name for o in outputs), 0.0)
    for feed, ref in zip(feeds, reference, strict=True):
        full = dict(feed) | {c.value: _to_onnx(ref[c.source], c) for c in cuts}
        full |= {twin: full[c.value] for c in cuts for twin in c.twins}
        ours = run(sess, {i.name: full[i.name] for i in sess.get_inputs()})[len(cuts) :]
        for name, value in zip(worst, ours, strict=True):
            worst[name] = max(worst[name], float(np.max(np.abs(value.astype(np.float64) - ref[name]), initial=0.0)))
    return worst


def _source_op(producers: dict[str, onnx.NodeProto], value: str) -> str:
    """The source op label the converter stamped on the op computing `value` (behind its Q)."""
    node = producers.get(value)
    for _ in range(HOPS + 1):
        if node is None:
            return ""
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or not node.input:
            return next((p.value for p in node.metadata_props if p.key == SOURCE_OP), "")
        node = producers.get(node.input[0])
    return ""


def _to_onnx(ref: np.ndarray, cut: _Cut) -> np.ndarray:
    """The reference's value as the ONNX tensor holds it: transposed, and int8 stored as uint8
    with zero point + 128 (asymmetric_activations_to_uint8)."""
    value = ref.transpose(cut.perm) if cut.perm is not None else ref
    if cut.shape is not None and not _fits(value.shape, cut.shape):
        held = f" (transposed {list(cut.perm)}: {value.shape})" if cut.perm is not None else ""
        where = f"per-layer: tensor {cut.source!r} is {ref.shape} in the reference{held}, {cut.shape} in ONNX"
        raise InputError(f"{where}: not this model's reference?")
    if ref.dtype.kind == "f" and np.array_equal(value, np.rint(value)):
        value = value.astype(np.int8 if cut.dtype == np.uint8 else cut.dtype)  # Paddle's codes, as floats
    elif ref.dtype.kind == "f":  # a real value (Paddle's observer-only points): as this Q quantizes it
        return _quantize(value, cut)
    if value.dtype == np.int8 and cut.dtype == np.uint8:
        value = (value.astype(np.int16) + 128).astype(np.uint8)
    return np.asarray(value)  # a 0-d tensor's arithmetic gives a numpy scalar, which ORT refuses


def _quantize(value: np.ndarray, cut: _Cut) -> np.ndarray:
    if cut.scale is None:
        raise InputError(f"per-layer: tensor {cut.source!r} holds real values in the reference and its Q has no constant scale")
    shape = [-1 if i == cut.axis else 1 for i in range(value.ndim)] if cut.scale.size > 1 else []
    scale = cut.scale.reshape(shape) if shape else cut.scale
    zp = np.zeros_like(scale) if cut.zero_point is None else (cut.zero_point.reshape(shape) if shape else cut.zero_point)
    info = np.iinfo(cut.dtype)
    return np.asarray(np.clip(np.rint(value / scale) + zp, info.min, info.max).astype(cut.dtype))


def _cut(model: onnx.ModelProto, reference_names: set[str]) -> tuple[onnx.ModelProto, list[_Cut]]:
    meta = metadata(model)
    to_source = {v: k for k, v in json.loads(meta.get(NAME_MAP, "{}")).items()}
    layouts = {k: tuple(v) for k, v in json.loads(meta.get(LAYOUTS, "{}")).items()}
    if SOURCE_FRAMEWORK not in meta:
        raise InputError("per-layer: the ONNX model was not made by qonvert (no qonvert metadata to map its tensors)")
    zero_points = {i.name: i.data_type for i in model.graph.initializer}
    constants = {i.name: i for i in model.graph.initializer}
    shapes = {vi.name: _dims(vi) for vi in (*model.graph.value_info, *model.graph.output)}
    # A zero point computed at run time (torchao's dynamic activations): the type of the Cast that
    # makes it, through the reshapes after it.
    for n in model.graph.node:
        if n.op_type == "Cast":
            zero_points[n.output[0]] = next(a.i for a in n.attribute if a.name == "to")
        elif n.op_type in ("Reshape", "Identity", "Squeeze", "Unsqueeze") and n.input and n.input[0] in zero_points:
            zero_points[n.output[0]] = zero_points[n.input[0]]
    cut_model = onnx.ModelProto()
    cut_model.CopyFrom(model)
    graph = cut_model.graph
    del graph.output[:]
    cuts: list[_Cut] = []
    by_data: dict[str, _Cut] = {}  # the float value a cut Q quantizes -> its cut
    by_source: dict[str, _Cut] = {}  # the first cut of each source tensor
    producers = {o: n for n in model.graph.node for o in n.output}
    # A model in integer arithmetic (the litert-exact form) makes its codes without a Q: there
    # every int8/uint8 value named as a source tensor is cut.
    code_types = {vi.name: vi.type.tensor_type.elem_type for vi in (*model.graph.value_info, *model.graph.output)} if meta.get(TARGET) else {}
    for node in graph.node:
        integer = bool(node.output) and code_types.get(node.output[0]) in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
        if (node.op_type != "QuantizeLinear" or node.domain) and not integer:
            continue
        value = node.output[0]
        source = to_source.get(value, value)
        if source not in reference_names:
            original = by_data.get(node.input[0]) if TWIN in value else None
            if original is not None:
                original.twins.append(value)
                node.output[0] = value + OURS  # computed, not compared: its original is
                graph.input.append(onnx.helper.make_tensor_value_info(value, onnx.helper.np_dtype_to_tensor_dtype(original.dtype), None))
            continue
        if integer and node.op_type != "QuantizeLinear":
            elem, scale, zp = code_types[value], None, None
        else:
            elem = zero_points.get(node.input[2], onnx.TensorProto.UINT8) if len(node.input) > 2 else onnx.TensorProto.UINT8
            scale, zp = (numpy_helper.to_array(constants[n]) if n in constants else None for n in (*node.input[1:3], "")[:2])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
        perm = layouts.get(source)
        if source in by_source:  # the tensor again, after the layout ops that restore the source's
            perm = _perm_after(producers, value, by_source[source])  # (an output's Transpose)
        cuts.append(_Cut(source, value, perm, dtype, shapes.get(value), scale, zp, axis))
        by_data[node.input[0]] = by_source.setdefault(source, cuts[-1])
        node.output[0] = value + OURS
        graph.input.append(onnx.helper.make_tensor_value_info(value, elem, None))
        graph.output.append(onnx.helper.make_tensor_value_info(value + OURS, elem, None))
    return cut_model, cuts


def _perm_after(producers: dict[str, onnx.NodeProto], value: str, first: _Cut) -> tuple[int, ...] | None:
    """The layout of `value`, a copy of the tensor that `first` cuts, reached from it through Q/DQ
    pairs and Transposes: first's perm followed by each Transpose's. Not such a copy (a twin Q of
    the same value): first's perm."""
    transposes: list[list[int]] = []
    node = producers.get(value)
    while value != first.value:
        if node is None or not node.input or node.op_type not in ("QuantizeLinear", "DequantizeLinear", "Identity", "Transpose", "Cast", "Gather"):
            return first.perm
        if node.op_type == "Transpose":
            transposes.append(list(next((a.ints for a in node.attribute if a.name == "perm"), [])))
        # a Gather here is a table lookup (the litert-exact form's requantization): its codes are its indices
        value = node.input[1] if node.op_type == "Gather" and len(node.input) > 1 else node.input[0]
        node = producers.get(value)
    perm = list(first.perm) if first.perm is not None else None
    for t in reversed(transposes):  # in graph order
        base = perm if perm is not None else list(range(len(t)))
        perm = [base[i] for i in (t or reversed(range(len(base))))]
    return None if perm is None or perm == sorted(perm) else tuple(perm)


def _fits(shape: tuple[int, ...], dims: tuple[int | None, ...]) -> bool:
    return len(shape) == len(dims) and all(d in (None, v) for d, v in zip(dims, shape, strict=True))


def _dims(info: onnx.ValueInfoProto) -> tuple[int | None, ...] | None:
    """The shape as far as it is known: None for an unknown rank, a None dim for a symbolic one."""
    if not info.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim)


def _op_label(producers: dict[str, onnx.NodeProto], value: str, cuts: set[str]) -> str:
    """The ops computing `value` back to the cut values and weights it starts from (at most
    HOPS), passing through the Q/DQ pairs that sit inside the segment."""
    ops: list[str] = []
    node = producers.get(value)
    while node is not None and node.input and len(ops) < HOPS:
        start = node.input[0]
        node = producers.get(start)
        if node is None or (node.op_type == "QuantizeLinear" and start in cuts):
            break
        if node.op_type not in ("DequantizeLinear", "QuantizeLinear"):
            ops.append(node.op_type)
    return "+".join(reversed(ops)) or "QuantizeLinear"
