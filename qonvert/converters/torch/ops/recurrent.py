"""aten::quantized_lstm (eager quantize_dynamic of an nn.LSTM, in TorchScript archives).

PyTorch's CPU kernel (ATen RNN.cpp, QuantizedCellParamsDynamic) computes each layer as:
the input projection of the WHOLE sequence at once (one dynamic quantization of the layer's
input, int8 weights, bias), then per time step the hidden projection of h (h quantized
dynamically at each step), gates = hidden + input projections, chunked i, f, g, o:
c = sigmoid(f) * c + sigmoid(i) * tanh(g), h = sigmoid(o) * tanh(c). ONNX's LSTM op cannot
quantize h at every step, so each layer is a Scan over time whose body does it (the same
dynamic quantization as quantized::linear_dynamic); weights stay int8 initializers behind DQs.
A float aten::lstm is torchlib's LSTM (the fallback).
"""

from __future__ import annotations

import onnx_ir as ir

from ....errors import InputError
from ....opsets.builder import GraphBuilder
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from .args import literal, tensor
from .quantized import dynamic_quantized


def _projection(b: GraphBuilder, x: ir.Value, weight: ir.Value, bias: ir.Value | None, reduce_range: bool) -> ir.Value:
    """quantized::linear_dynamic: x (dynamically quantized) @ W^T + b."""
    out = b.op("MatMul", [dynamic_quantized(b, x, reduce_range), b.op("Transpose", [weight], {"perm": [1, 0]})])
    return b.op("Add", [out, bias]) if bias is not None else out


@register("torch", "aten.quantized_lstm.input")
def quantized_lstm(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    """quantized_lstm(input, [h0, c0], cells, has_biases, num_layers, dropout, train,
    bidirectional, batch_first, *, dtype, use_dynamic) -> (output, h_n, c_n)."""
    has_biases, layers, _dropout, train, bidirectional, batch_first = (literal(op, i, "") for i in range(3, 9))
    if bidirectional or train or not literal(op, 10, "use_dynamic", False):
        raise InputError(f"op {op.label}: only a unidirectional, dynamically quantized LSTM in inference is supported")
    if not isinstance(layers, int) or not all(op.inputs.get(f"w_ih{k}") for k in range(layers)):
        raise InputError(f"op {op.label}: {layers!r} layers, but not as many cell parameters")
    reduce_range = bool(op.attrs.get("reduce_range_applied"))
    states = op.inputs.get("1") or []
    if len(states) != 2:
        raise InputError(f"op {op.label}: expects the initial (h, c), got {len(states)} tensors")
    h0_name, c0_name = states
    hidden = (ctx.shape(h0_name) or (0, 0, 0))[-1]
    sequence = tensor(ctx, op, 0)
    if batch_first:  # [B, T, F] -> [T, B, F]: the Scan runs over axis 0
        sequence = ctx.b.op("Transpose", [sequence], {"perm": [1, 0, 2]})
    h_last, c_last = [], []
    for k in range(layers):
        weight_ih, weight_hh = ctx.value(op.input(f"w_ih{k}")), ctx.value(op.input(f"w_hh{k}"))
        bias_ih = ctx.value(op.input(f"b_ih{k}")) if has_biases and op.input(f"b_ih{k}") else None
        bias_hh = ctx.value(op.input(f"b_hh{k}")) if has_biases and op.input(f"b_hh{k}") else None
        projected = _projection(ctx.b, sequence, weight_ih, bias_ih, reduce_range)  # the whole sequence at once
        index = ctx.b.ints([k], "layer")
        h0 = ctx.b.op("Squeeze", [ctx.b.op("Gather", [ctx.value(h0_name), index], {"axis": 0}), ctx.b.ints([0], "axis0")])
        c0 = ctx.b.op("Squeeze", [ctx.b.op("Gather", [ctx.value(c0_name), index], {"axis": 0}), ctx.b.ints([0], "axis0")])
        body = _step(ctx.b, weight_hh, bias_hh, hidden, reduce_range)
        h_n, c_n, sequence = ctx.b.op("Scan", [h0, c0, projected], {"body": body, "num_scan_inputs": 1}, outputs=3)
        h_last.append(h_n)
        c_last.append(c_n)
    output = ctx.b.op("Transpose", [sequence], {"perm": [1, 0, 2]}) if batch_first else sequence
    stack = ctx.b.ints([0], "axis0")
    return [output, *(ctx.b.op("Concat", [ctx.b.op("Unsqueeze", [v, stack]) for v in last], {"axis": 0}) for last in (h_last, c_last))]


def _step(outer: GraphBuilder, weight_hh: ir.Value, bias_hh: ir.Value | None, hidden: int, reduce_range: bool) -> ir.Graph:
    """One time step: (h, c, the step's input projection) -> (h', c', h')."""
    b = GraphBuilder(outer.opset)
    b._names = outer._names  # one namespace: a subgraph may not reuse an outer name
    dims: list[int | str | None] = [None, hidden]
    h, c = (ir.Value(name=b.unique(n), type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape(dims)) for n in ("step_h", "step_c"))
    x = ir.Value(name=b.unique("step_x"), type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([None, 4 * hidden]))
    gates = b.op("Add", [_projection(b, h, weight_hh, bias_hh, reduce_range), x])
    i, f, g, o = b.op("Split", [gates, b.ints([hidden] * 4, "gate_sizes")], {"axis": 1}, outputs=4)
    sigmoid = [b.op("Sigmoid", [gate]) for gate in (i, f, o)]
    c_next = b.op("Add", [b.op("Mul", [sigmoid[1], c]), b.op("Mul", [sigmoid[0], b.op("Tanh", [g])])])
    h_next = b.op("Mul", [sigmoid[2], b.op("Tanh", [c_next])])
    # The scan output is a value of its own: ORT's Scan reads a state that is also listed as a scan
    # output as never updated (and onnx_ir's identity elimination would merge an Identity copy).
    h_out = b.op("Reshape", [h_next, b.ints([-1, hidden], "step_shape")])
    for value in (h_next, c_next, h_out):  # a subgraph's outputs carry their types
        value.type, value.shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape(dims)
    return ir.Graph([h, c, x], [h_next, c_next, h_out], nodes=b.nodes, initializers=list(b.initializers.values()), name="lstm_step")
