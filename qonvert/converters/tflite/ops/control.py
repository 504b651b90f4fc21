"""Control flow: WHILE as an ONNX Loop, IF as an ONNX If.

A TFLite subgraph is a function: its inputs and outputs are tensors as TFLite holds them, an
integer tensor's codes passed as bytes and read with the receiving tensor's own quantization. The
ONNX subgraphs carry the same thing (context.codes / inline_graph), so a loop value quantized
differently in the body and outside is read the way LiteRT reads it.

WHILE runs `while cond(v): v = body(v)`; an ONNX Loop tests its condition after each iteration,
so the cond subgraph is mapped twice: once before the Loop (is there a first iteration?) and once
at the end of the body (is there another?). IF's branches take the IF's operands as subgraph
inputs; an ONNX If branch has none, so each branch reads the operands from the outer scope.
"""

from __future__ import annotations

import math

import onnx_ir as ir

from ....errors import InputError
from ....opsets.builder import ONNX_QDTYPES
from ...context import NP_TO_IR, ConversionContext, inline_graph
from ...registry import register
from ...source import SourceGraph, SourceOp
from ..layout import arg
from ..model import CONTROL_FLOW


@register("tflite", "WHILE")
def while_loop(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    cond, body = (_subgraph(ctx, op, option) for option in CONTROL_FLOW["WHILE"])
    names = list(op.inputs.get("in", []))
    if "" in names:
        raise InputError(f"op {op.label}: a loop value is left out")
    _check_arity(op, cond, len(names), 1)
    _check_arity(op, body, len(names), len(names))
    _check_arity(op, None, len(names), len(op.outputs.get("out", [])))
    outer = [(ctx.source, n) for n in names]
    _check_passed(op, outer, [(cond, i.name) for i in cond.inputs])
    _check_passed(op, outer, [(body, i.name) for i in body.inputs])
    _check_passed(op, [(body, n) for n in body.outputs], [(body, i.name) for i in body.inputs])
    _check_passed(op, [(body, n) for n in body.outputs], [(ctx.source, n) for n in op.outputs["out"]])
    _check_condition(op, cond, cond.outputs[0])
    initial = [ctx.codes(n) for n in names]
    first = _scalar(ctx, inline_graph(ctx, cond, initial)[0])
    with ctx.b.subgraph() as nodes:
        carried = [_graph_input(ctx, body, info.name) for info in body.inputs]
        step = inline_graph(ctx, body, carried)
        again = _scalar(ctx, inline_graph(ctx, cond, step)[0])
        results = _made_here(ctx, [again, *step], nodes, body, ["", *body.outputs])
    iteration = ir.Value(name=ctx.b.unique("iteration"), type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([]))
    going = ir.Value(name=ctx.b.unique("keep_going"), type=ir.TensorType(ir.DataType.BOOL), shape=ir.Shape([]))
    graph = ir.Graph([iteration, going, *carried], results, nodes=nodes, name=ctx.b.unique("while_body"))
    loop = ctx.b.op("Loop", [None, first, *initial], {"body": graph}, outputs=len(names))
    return _from_codes(ctx, op, list(loop) if len(names) > 1 else [loop])


@register("tflite", "IF")
def if_then_else(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    condition = arg(op, 0)
    if condition is None:
        raise InputError(f"op {op.label}: no condition")
    _check_condition(op, ctx.source, condition)
    operands = [ctx.codes(n) for n in op.inputs["in"][1:]]
    count = len(op.outputs.get("out", []))
    branches: dict[str, ir.Graph] = {}
    for attr, option in zip(("then_branch", "else_branch"), CONTROL_FLOW["IF"], strict=True):
        branch = _subgraph(ctx, op, option)
        _check_arity(op, branch, len(operands), count)
        _check_passed(op, [(ctx.source, n) for n in op.inputs["in"][1:]], [(branch, i.name) for i in branch.inputs])
        _check_passed(op, [(branch, n) for n in branch.outputs], [(ctx.source, n) for n in op.outputs["out"]])
        with ctx.b.subgraph() as nodes:
            results = _made_here(ctx, inline_graph(ctx, branch, operands), nodes, branch, branch.outputs)
        branches[attr] = ir.Graph([], results, nodes=nodes, name=ctx.b.unique(attr))
    chosen = ctx.b.op("If", [_scalar(ctx, ctx.codes(condition))], branches, outputs=count)
    return _from_codes(ctx, op, list(chosen) if count > 1 else [chosen])


def _subgraph(ctx: ConversionContext, op: SourceOp, option: str) -> SourceGraph:
    index = op.attrs.get(option)
    if index not in ctx.source.subgraphs:  # the reader reads every subgraph an op names
        raise InputError(f"op {op.label}: {option}={index} names no subgraph of the model")
    return ctx.source.subgraphs[index]


def _check_arity(op: SourceOp, graph: SourceGraph | None, inputs: int, outputs: int) -> None:
    """The subgraph (None: the op's outputs) takes and gives as many tensors as the op passes."""
    if graph is None:
        if inputs != outputs:
            raise InputError(f"op {op.label}: {inputs} loop values in, {outputs} out")
        return
    if len(graph.inputs) != inputs or len(graph.outputs) != outputs:
        given = f"{len(graph.inputs)} inputs and gives {len(graph.outputs)} outputs"
        raise InputError(f"op {op.label}: its subgraph takes {given}; the op needs {inputs} and {outputs}")


def _check_passed(op: SourceOp, given: list[tuple[SourceGraph, str]], taken: list[tuple[SourceGraph, str]]) -> None:
    """Each tensor passed (into a subgraph, around a loop, out of it) has the type of the one taking
    it, both quantized or neither: their codes are passed as they are (LiteRT copies the bytes)."""
    for k, ((g_graph, g_name), (t_graph, t_name)) in enumerate(zip(given, taken, strict=True)):
        g_type, t_type = _source_type(g_graph, g_name), _source_type(t_graph, t_name)
        g_quant, t_quant = g_name in g_graph.quant, t_name in t_graph.quant
        if g_type != t_type or g_quant != t_quant:
            said = [f"{t.dtype.name.lower() if t else '?'}{' quantized' if q else ''}" for t, q in ((g_type, g_quant), (t_type, t_quant))]
            raise InputError(f"op {op.label}: value {k} passed as {g_name!r} ({said[0]}) is taken as {t_name!r} ({said[1]})")


def _check_condition(op: SourceOp, graph: SourceGraph, name: str) -> None:
    """A condition is a bool of one element, as LiteRT's kernels require."""
    shape = graph.shapes.get(name)
    if _source_type(graph, name) != ir.TensorType(ir.DataType.BOOL) or (shape is not None and math.prod(shape) != 1):
        raise InputError(f"op {op.label}: its condition {name!r} is not one bool (dtype {graph.dtypes.get(name, '?')}, shape {shape})")


def _scalar(ctx: ConversionContext, flag: ir.Value) -> ir.Value:
    """A one-element condition ([] or [1] in TFLite) as the scalar ONNX Loop and If test."""
    return ctx.b.op("Reshape", [flag, ctx.b.ints([], "scalar_shape")])


def _source_type(graph: SourceGraph, name: str) -> ir.TensorType | None:
    """The ONNX type of a tensor as the source holds it (an integer tensor's codes)."""
    qp = graph.quant.get(name)
    dtype = qp.dtype if qp is not None else graph.dtypes.get(name, "")
    onnx_type = ONNX_QDTYPES.get(dtype) if qp is not None else NP_TO_IR.get(dtype)
    return ir.TensorType(onnx_type) if onnx_type is not None else None


def _graph_input(ctx: ConversionContext, graph: SourceGraph, name: str) -> ir.Value:
    """A Loop body input for the subgraph's input `name`: typed (ONNX requires it); its shape
    left open, as a loop value's may change between iterations."""
    onnx_type = _source_type(graph, name)
    if onnx_type is None:
        raise InputError(f"tensor {name!r}: a loop value of type {graph.dtypes.get(name)!r}; not supported")
    return ir.Value(name=ctx.b.unique(name), type=onnx_type)


def _made_here(ctx: ConversionContext, values: list[ir.Value], nodes: list[ir.Node], graph: SourceGraph, names: list[str]) -> list[ir.Value]:
    """Subgraph outputs produced inside it, typed: a value passed through (a subgraph input, an
    outer value, a constant) goes through an Identity here, as ONNX requires; each output once."""
    inside = {id(node) for node in nodes}
    results: list[ir.Value] = []
    for value, name in zip(values, names, strict=True):
        producer = value.producer()
        if producer is None or id(producer) not in inside or value in results:
            value = ctx.b.op("Identity", [value])
        onnx_type = _source_type(graph, name) if name else ir.TensorType(ir.DataType.BOOL)
        if onnx_type is not None:
            value.type = onnx_type
        results.append(value)
    return results


def _from_codes(ctx: ConversionContext, op: SourceOp, values: list[ir.Value]) -> list[ir.Value]:
    """The op's outputs as real values: an integer output's codes read with its own quantization."""
    names = op.outputs["out"]
    return [ctx.b.dequantize(v, ctx.source.quant[n]) if n in ctx.source.quant else v for v, n in zip(values, names, strict=True)]
