"""The LiteRT-exact form (`convert --target litert-exact`): a TFLite int8 model as an ONNX graph in
integer arithmetic that reproduces LiteRT's reference kernels (BUILTIN_REF, what TFLite Micro
computes too) bit for bit: a golden model that runs wherever ONNX runs.

Each island of the canonical graph (islands.py: the float ops between the DQs of quantized
tensors and the Qs of their results, one LiteRT op) becomes the arithmetic of that op's
reference kernel on the codes:
- convolutions and fully connected: ConvInteger / MatMulInteger (exact int32 sums), the int32
  bias, then MultiplyByQuantizedMultiplier in int64 (arithmetic.py, emit.py);
- ADD, SUB, MUL, AVERAGE_POOL_2D, MEAN: their own fixed-point rescaling and rounding;
- ops of one input whose result depends on the code alone (LOGISTIC, TANH, HARD_SWISH, the RELU
  family, LEAKY_RELU, a requantization): a Gather over a 256-entry table (tables.py);
- ops that only move or pick codes (reshapes, transposes, concatenation, slicing, max pooling,
  nearest resize, padding ...) where input and output share their quantization: the op itself
  on the codes.
An island with none of these forms is refused, all of them in one error line: this form never
approximates. The tensors keep their canonical names and storage, so verify compares every one
against LiteRT's reference kernels (`--reference-kernels reference`), at 0 LSB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common

from ...errors import InputError
from ...metadata import SOURCE_FRAMEWORK, SOURCE_OP, TARGET, metadata, write_input_quantization
from ...opsets.graph_edit import TAKEN_NAMES, const_array, qparams_of, value_names
from .. import Target
from . import arithmetic, softmax, tables
from .emit import Emitter
from .islands import Codes, Island, Unsupported, find_islands, q_codes

NAME = "litert-exact"
# Ops that move or pick codes without computing on them: on the codes they give what LiteRT's
# kernels give, where input and output share one quantization (LiteRT requires that of them).
MOVEMENT = frozenset(
    {
        "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Concat", "Split", "Slice",
        "Gather", "GatherND", "MaxPool", "DepthToSpace", "SpaceToDepth", "Pad", "Tile", "Expand",
        "Min", "Max", "ReduceMax", "ReduceMin", "Resize",
    }
)  # fmt: skip
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish")
# Float ops whose IEEE results ORT and LiteRT share bit for bit (one rounding each, no
# accumulation order, no transcendental): an island of them between the source's own DEQUANTIZE
# and QUANTIZE ops (LiteRT runs it in float) stays as it is, and only its Q is made exact.
FLOAT_EXACT = frozenset({"PRelu", "Relu", "Clip", "LeakyRelu", "Add", "Sub", "Mul", "Div", "Max", "Min", "Neg", "Abs"})
FLOAT_KIND = "float ops, as the source runs them"


class LiteRtExact(Target):
    name = NAME
    form = "the LiteRT-exact form"

    def derive(self, model: ir.Model, where: str, **options: Any) -> list[str]:
        framework = metadata(model).get(SOURCE_FRAMEWORK)
        if framework != "tflite":
            raise InputError(f"{where}: --target {NAME} reproduces LiteRT's kernels: it takes TFLite models, not {framework}")
        graph = model.graph
        inputs = {v.name: qp for v in graph.inputs if v.name and (qp := _input_quantization(v)) is not None}
        graph.meta[TAKEN_NAMES] = value_names(graph)
        try:
            problems, counts = exact_form(graph)
        finally:
            graph.meta.pop(TAKEN_NAMES, None)
        if problems:
            kinds = _grouped(problems)
            raise InputError(f"{where}: {NAME} cannot reproduce {len(problems)} ops of {len(kinds)} kinds exactly: {'; '.join(kinds)}")
        common.RemoveUnusedNodesPass()(model)
        model.metadata_props[TARGET] = NAME
        write_input_quantization(model, inputs)
        ops = sorted({n.op_type for n in graph})
        return [f"{NAME}: {sum(counts.values())} LiteRT ops reproduced ({_counted(counts)}); ORT ops used: {', '.join(ops)}"]

    def findings(self, model: onnx.ModelProto) -> list[str]:
        ir_model = ir.from_proto(model)
        if metadata(ir_model).get(SOURCE_FRAMEWORK) != "tflite":
            return [f"{NAME} takes TFLite models only"]
        ir_model.graph.meta[TAKEN_NAMES] = value_names(ir_model.graph)
        return _grouped(exact_form(ir_model.graph)[0])  # (on a copy: rewritten where it can be)


def _input_quantization(value: ir.Value) -> tuple[float, int] | None:
    """An integer input's scale and zero point, from the DQ that reads it (gone in this form)."""
    users = value.consumers()
    if value.dtype not in (ir.DataType.INT8, ir.DataType.UINT8) or len(users) != 1 or users[0].op_type != "DequantizeLinear":
        return None
    qp = qparams_of(users[0])
    return None if qp is None or qp.per_axis else (float(qp.scale), int(qp.zero_point))


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def exact_form(graph: ir.Graph) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Rewrite the graph in place, and count the islands of each kind; or, untouched but for
    unused constants, every island that cannot be reproduced: (its label, why)."""
    islands, code_readers, problems = find_islands(graph, MOVEMENT)
    made: list[tuple[Island, str, Emitter, dict[ir.Node, ir.Value]]] = []
    counts: dict[str, int] = {}
    for k, island in enumerate(islands):
        emit = Emitter(graph, f"exact{k}", island.label)
        try:
            kind, results = _rewrite(emit, island)
        except Unsupported as exc:
            problems.append((island.label, str(exc)))
            continue
        counts[kind] = counts.get(kind, 0) + 1
        made.append((island, kind, emit, results))
    if problems:
        return problems, {}
    for reader in code_readers:  # a DQ output's shape or order: the same from its codes
        dq = reader.inputs[0].producer() if reader.inputs[0] is not None else None
        if dq is not None:
            reader.replace_input_with(0, dq.inputs[0])
    retired: list[ir.Node] = []
    for island, kind, emit, results in made:
        graph.extend(emit.nodes)
        for q, codes in results.items():
            old = q.outputs[0]
            name = old.name
            old.replace_all_uses_with(codes, replace_graph_outputs=True)
            old.name = f"{name}/retired"
            codes.name, codes.shape, codes.type = name, old.shape, old.type
        retired += [*(island.nodes if kind != FLOAT_KIND else []), *island.quantizes]
    graph.remove(retired, safe=True)
    graph.sort()
    return [], counts


def _grouped(problems: list[tuple[str, str]]) -> list[str]:
    """One line per op kind and reason, its count and first tensor ("PRELU x23 (p_re_lu): ...")."""
    groups: dict[tuple[str, str], list[str]] = {}
    for label, reason in problems:
        kind, _, name = label.partition(" -> ")
        groups.setdefault((kind, reason), []).append(name or kind)
    return [f"{kind}{f' x{len(names)}' if len(names) > 1 else ''} ({names[0]}): {reason}" for (kind, reason), names in groups.items()]


def _rewrite(emit: Emitter, island: Island) -> tuple[str, dict[ir.Node, ir.Value]]:
    """The island's integer form: (what kind, the codes standing for each of its Qs)."""
    if not island.quantizes:
        raise Unsupported(f"{'+'.join(island.op_types)} computes in float in the source")
    outs = [q_codes(q) for q in island.quantizes]
    if not island.nodes:
        return _requantize(emit, island.quantizes[0], outs[0])
    if all(t in MOVEMENT for t in island.op_types):
        return "code moves", _movement(emit, island, outs)
    if all(q.metadata_props.get(SOURCE_OP, "").startswith("QUANTIZE") for q in island.quantizes) and set(island.op_types) <= FLOAT_EXACT | MOVEMENT:
        return FLOAT_KIND, {q: _quantize_float(emit, q.inputs[0], o) for q, o in zip(island.quantizes, outs, strict=True)}  # type: ignore[arg-type]
    if any(not o.same_as(outs[0]) for o in outs[1:]):
        raise Unsupported("its result is quantized two ways")
    out = outs[0]
    core, low, high = arithmetic.fused_activation(island.nodes)
    if len(island.reads) == 1 and all(n.op_type in ACTIVATIONS for n in island.nodes):
        return "tables", _table(emit, island, outs, core, low, high)
    if island.op_types[-1:] == ("Softmax",) and low is None and high is None:
        result = softmax.softmax(emit, island, island.nodes[-1], out, _softmax_beta(island))
        return "integer kernels", {q: emit.stored(result, o.storage) for q, o in zip(island.quantizes, outs, strict=True)}
    main = [n for n in core if n.op_type not in MOVEMENT]
    if len(main) != 1:
        raise Unsupported(f"{'+'.join(island.op_types)} is not one LiteRT int8 op")
    node = main[0]
    clamp = tables.activation_range(out, low, high)
    if node.op_type in ("Gemm", "MatMul"):
        result = _fully_connected(emit, island, core, node, out, clamp)
    elif core != [node]:
        raise Unsupported(f"{'+'.join(island.op_types)} is not one LiteRT int8 op")
    elif node.op_type == "Conv":
        result = arithmetic.conv(emit, island, node, out, clamp)
    elif node.op_type in ("Add", "Sub"):
        result = arithmetic.add_sub(emit, island, node, out, clamp)
    elif node.op_type == "PRelu":
        result = arithmetic.prelu(emit, island, node, out, clamp)
    elif node.op_type == "Mul":
        result = arithmetic.mul(emit, island, node, out, clamp)
    elif node.op_type == "AveragePool":
        result = arithmetic.average_pool(emit, island, node, out, clamp)
    elif node.op_type == "ReduceMean" and low is None and high is None:
        result = arithmetic.mean(emit, island, node, out)
    else:
        raise Unsupported(f"{node.op_type} has no LiteRT-exact form here")
    return "integer kernels", {q: emit.stored(result, o.storage) for q, o in zip(island.quantizes, outs, strict=True)}


def _softmax_beta(island: Island) -> float:
    """SOFTMAX's beta: 1, or the constant the canonical form multiplies the input by first."""
    if island.op_types == ("Softmax",):
        return 1.0
    scale = island.nodes[0]
    beta = const_array(scale.inputs[1]) if island.op_types == ("Mul", "Softmax") and len(scale.inputs) > 1 else None
    if beta is None or beta.size != 1 or island.nodes[1].inputs[0] is not scale.outputs[0]:
        raise Unsupported(f"{'+'.join(island.op_types)} is not one LiteRT int8 op")
    return float(beta)


def _fully_connected(emit: Emitter, island: Island, core: list[ir.Node], node: ir.Node, out: Codes, clamp: tuple[int, int]) -> ir.Value:
    """FULLY_CONNECTED: the reshapes the canonical form puts around its Gemm moved onto the
    codes before it and the result after it."""
    at = core.index(node)
    x = island.codes_of(_first_input(core[0]))
    mapped: dict[ir.Value, ir.Value] = {_first_input(core[0]): x.value}  # type: ignore[dict-item]
    for before in core[:at]:
        _clone(emit, before, mapped)
    x_codes = mapped.get(node.inputs[0])  # type: ignore[arg-type]
    if x_codes is None:
        raise Unsupported("its input is not a quantized tensor")
    result = arithmetic.fully_connected(emit, island, node, x_codes, x, out, clamp)
    mapped[node.outputs[0]] = result
    for after in core[at + 1 :]:
        _clone(emit, after, mapped)
    return mapped[core[-1].outputs[0]]


def _first_input(node: ir.Node) -> ir.Value:
    value = node.inputs[0]
    if value is None:
        raise Unsupported(f"{node.op_type} has no input")
    return value


def _clone(emit: Emitter, node: ir.Node, mapped: dict[ir.Value, ir.Value]) -> list[ir.Value]:
    """The node again, on the values `mapped` gives for its inputs (constants as they are)."""
    inputs = [mapped.get(v, v) if v is not None else None for v in node.inputs]  # type: ignore[arg-type]
    attrs = {name: attr.value for name, attr in node.attributes.items()}
    outputs = emit.ops(node.op_type, *inputs, outputs=len(node.outputs), **attrs)
    mapped.update(zip(node.outputs, outputs, strict=True))
    return outputs


def _movement(emit: Emitter, island: Island, outs: list[Codes]) -> dict[ir.Node, ir.Value]:
    """Ops that move codes, run on the codes (every input and output of one quantization)."""
    inputs = list(island.reads.values())
    if not inputs or any(not c.same_as(inputs[0]) for c in (*inputs, *outs)):
        raise Unsupported(f"{'+'.join(island.op_types)}: its inputs and outputs are quantized differently")
    first = inputs[0]
    storage = outs[0].storage  # the inputs are brought to it, so that the op makes the output (per layer follows the layout ops)
    mapped: dict[ir.Value, ir.Value] = {}
    for value, codes in island.reads.items():
        mapped[value] = codes.value if codes.storage == storage else emit.stored(emit.int8_codes(codes.value), storage)
    for node in island.nodes:
        mode = node.attributes.get("mode")
        if node.op_type == "Resize" and mode is not None and mode.value != "nearest":
            raise Unsupported(f"Resize mode {mode.value}: LiteRT's int8 kernel rounds its own way")
        pad_value = node.inputs[2] if node.op_type == "Pad" and len(node.inputs) > 2 else None
        if pad_value is not None:
            real = const_array(pad_value)
            if real is None:
                raise Unsupported("a Pad value computed at run time")
            code = _stored(np.asarray(first.zero_point + int(np.rint(float(real) / float(first.scale)))), storage)
            mapped[pad_value] = emit.const(code, code.dtype)
        _clone(emit, node, mapped)
    results = {}
    for q, out in zip(island.quantizes, outs, strict=True):
        moved = mapped[q.inputs[0]]  # type: ignore[index]
        results[q] = moved if out.storage == storage else emit.stored(emit.int8_codes(moved), out.storage)
    return results


TABLES = {
    "Sigmoid": lambda x, out, node: tables.logistic(x, out),
    "Tanh": lambda x, out, node: tables.tanh(x, out),
    "HardSwish": lambda x, out, node: tables.hard_swish(x, out),
    "LeakyRelu": lambda x, out, node: tables.leaky_relu(x, out, node.attributes["alpha"].value if "alpha" in node.attributes else 0.01),
}


def _table(emit: Emitter, island: Island, outs: list[Codes], head: list[ir.Node], low: float | None, high: float | None) -> dict[ir.Node, ir.Value]:
    """One unary op (or a RELU-family clamp) on the codes: a table of LiteRT's result per code
    (`head`, `low`, `high`: the island split by fused_activation)."""
    x = next(iter(island.reads.values()))
    if len(head) != 1:
        raise Unsupported(f"{'+'.join(island.op_types)} is not one LiteRT int8 op")
    node, fused = head[0], low is not None or high is not None
    if node.op_type in ("Relu", "Clip"):
        if fused:
            raise Unsupported("two clamps in a row")
        table = tables.relu_family(x, outs[0], *arithmetic.clip_bounds(node))
    else:
        if fused:
            raise Unsupported(f"{node.op_type} with a fused activation")
        table = TABLES[node.op_type](x, outs[0], node)
    return {q: emit.table(x.value, _stored(table, o.storage)) for q, o in zip(island.quantizes, outs, strict=True)}


def _stored(table: np.ndarray, storage: ir.DataType) -> np.ndarray:
    return (table + 128).astype(np.uint8) if storage == ir.DataType.UINT8 else table.astype(np.int8)


def _requantize(emit: Emitter, q: ir.Node, out: Codes) -> tuple[str, dict[ir.Node, ir.Value]]:
    """A Q alone: QUANTIZE of a float graph input (AffineQuantize: x / scale in float32, rounded
    half away from zero), or of another quantized tensor (Requantize)."""
    source = q.inputs[0]
    dq = source.producer() if source is not None else None
    if dq is not None and dq.op_type == "DequantizeLinear":
        x = q_codes(dq)
        return "tables", {q: emit.table(x.value, _stored(tables.quantize(x, out), out.storage))}
    if source is None or not source.is_graph_input() or source.dtype != ir.DataType.FLOAT:
        raise Unsupported("a QuantizeLinear of a value computed in float")
    return "input quantization", {q: _quantize_float(emit, source, out)}


def _quantize_float(emit: Emitter, value: ir.Value, out: Codes) -> ir.Value:
    """AffineQuantize: value / scale in float32, rounded half away from zero, plus the zero
    point, clamped (ORT's QuantizeLinear rounds halves to even)."""
    f32 = np.float32
    scaled = emit.op("Clip", emit.op("Div", value, emit.const(out.scale, f32)), emit.const(-1e9, f32), emit.const(1e9, f32))
    codes = emit.clamp(emit.op("Add", emit.round_half_away(scaled), emit.const(out.zero_point)), -128, 127)
    return emit.stored(codes, out.storage)
