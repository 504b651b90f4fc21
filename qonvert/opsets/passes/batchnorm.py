"""Fold an inference BatchNormalization into the preceding quantized Conv (docs/design.md, "Exact rewrites"):
only the per-channel weight scale changes (its sign goes into the int8 values), plus the bias. The
speed form folds a constant scale-and-shift (Mul, then Add) the same way."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...errors import InputError
from ..graph_edit import add_dq, const_array, initializer, producer_op, single_consumer, source_label, weight_dq
from .base import RewritePass
from .qdq import next_quantize


def fold_batchnorm(graph: ir.Graph, float_outputs: bool = False) -> int:
    """float_outputs: also where the result reaches no Q (the speed form, which quantizes it next;
    the canonical form keeps the source's float BN there)."""
    folded = 0
    for bn in list(graph):
        if bn.op_type != "BatchNormalization" or bn.domain:
            continue
        conv = producer_op(bn.inputs[0], "Conv")
        params = [const_array(v) for v in bn.inputs[1:5]]
        if conv is None or single_consumer(conv.outputs[0]) is not bn or any(p is None for p in params):
            continue
        if next_quantize(bn.outputs[0]) is None and not float_outputs:
            continue  # the conv would stay float anyway: keep the source's exact float BN
        _check_channels(bn, conv)
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
        eps_attr = bn.attributes.get("epsilon")
        eps = eps_attr.as_float() if eps_attr is not None else 1e-5
        spread = var + np.float64(np.float32(eps))
        if not np.all(spread > 0):  # a variance below -epsilon (or NaN): no factor; the BN stays as the source computes it
            continue
        factor = gamma / np.sqrt(spread)
        folded += _fold_into_conv(graph, conv, factor, beta - mean * factor, [bn])
    return folded


def _check_channels(bn: ir.Node, conv: ir.Node) -> None:
    """A BN's parameters are one value per output channel of the conv it follows: other lengths
    (or a [C, 1] vector, which would broadcast into a [C, C] scale) are the file's error."""
    channels, _ = _output_channels(conv)
    for value in bn.inputs[1:5]:
        data = const_array(value)
        if value is not None and data is not None and channels and data.shape != (channels,):
            shape = list(data.shape)
            raise InputError(f"op {source_label(bn)}: its parameter {value.name!r} has shape {shape} after a conv of {channels} output channels")


def fold_scale_shift(graph: ir.Graph) -> int:
    """A constant Mul (and an Add after it) on a float conv's output, per tensor or per channel, as
    a BN is folded (the speed form: PP-LCNet's learnable affine blocks after each conv; float
    rounding only)."""
    folded = 0
    for mul in list(graph):
        if mul.op_type != "Mul" or mul.domain or len(mul.inputs) != 2:
            continue
        conv = next((c for v in mul.inputs if (c := producer_op(v, "Conv")) is not None), None)
        if conv is None or single_consumer(conv.outputs[0]) is not mul:
            continue
        channels, rank = _output_channels(conv)
        factor = _per_channel(const_array(next((v for v in mul.inputs if v is not conv.outputs[0]), None)), channels, rank)
        if factor is None:
            continue
        add = single_consumer(mul.outputs[0])
        shift = None
        if add is not None and add.op_type == "Add" and not add.domain and len(add.inputs) == 2:
            other = next((v for v in add.inputs if v is not mul.outputs[0]), None)
            shift = _per_channel(const_array(other), channels, rank) if other is not None else None
        chain = [mul, add] if shift is not None and add is not None else [mul]
        folded += _fold_into_conv(graph, conv, factor, np.zeros(channels) if shift is None else shift, chain)
    return folded


def _output_channels(conv: ir.Node) -> tuple[int, int]:
    """(output channels, output rank) of a conv with a quantized constant weight; (0, 0) otherwise."""
    wdq = weight_dq(conv.inputs[1])
    return (int(wdq[1].shape[0]), wdq[1].ndim) if wdq is not None else (0, 0)


def _per_channel(value: np.ndarray | None, channels: int, rank: int) -> np.ndarray | None:
    """A float constant as one value per channel (axis 1) of a rank-`rank` output it broadcasts to,
    if it is one: a single value, or C on the axis that aligns with 1 and ones elsewhere."""
    if value is None or channels == 0 or not np.issubdtype(value.dtype, np.floating) or value.ndim > rank:
        return None
    if value.size == 1:
        return np.full(channels, float(value.ravel()[0]))
    expected = [1] * value.ndim
    if rank - value.ndim > 1:
        return None
    expected[1 - (rank - value.ndim)] = channels
    return value.ravel().astype(np.float64) if list(value.shape) == expected else None


def _fold_into_conv(graph: ir.Graph, conv: ir.Node, factor: np.ndarray, shift: np.ndarray, replaced: list[ir.Node]) -> int:
    """conv(x) * factor + shift (per output channel) as the conv itself: its per-channel weight
    scale times |factor| (a negative factor's sign goes into the int8 codes), its bias affine too;
    `replaced` (the nodes computing it) removed. 0 where the conv's weight cannot take it."""
    wdq = weight_dq(conv.inputs[1])
    if wdq is None or producer_op(conv.inputs[0], "DequantizeLinear") is None:
        return 0
    _dq, q_data, qp = wdq
    if (qp.per_axis and qp.axis != 0) or np.any(factor == 0):
        return 0
    channels = q_data.shape[0]
    w_scale = np.broadcast_to(qp.scale.astype(np.float64), (channels,))
    sign = np.where(factor < 0, -1, 1)
    # Only the signs of negative-factor channels change: the codes themselves are kept where none is.
    new_q = q_data if np.all(sign > 0) else q_data.astype(np.int16) * sign.reshape(-1, *([1] * (q_data.ndim - 1))).astype(np.int16)
    new_qp = qp.with_scale((w_scale * np.abs(factor)).astype(np.float32)).with_axis(0)
    zp = np.broadcast_to(qp.zero_point, (channels,))
    new_qp = type(new_qp)(new_qp.scale, zp, new_qp.dtype, 0, new_qp.qmin, new_qp.qmax)
    old_bias = _float_bias(conv)
    bias = (np.zeros(channels) if old_bias is None else old_bias) * factor + shift
    new_w = add_dq(graph, new_q, new_qp, f"{conv.name}_w_bn", before=conv)
    conv.replace_input_with(1, new_w)
    b_init = initializer(graph, bias.astype(np.float32), f"{conv.name}_bias_bn")
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(2, b_init)
    replaced[-1].outputs[0].replace_all_uses_with(conv.outputs[0], replace_graph_outputs=True)
    graph.remove(replaced, safe=True)
    return 1


def _float_bias(conv: ir.Node) -> np.ndarray | None:
    if len(conv.inputs) < 3 or conv.inputs[2] is None:
        return None
    value = const_array(conv.inputs[2])
    if value is not None:
        return value.astype(np.float64)
    wdq = weight_dq(conv.inputs[2])
    if wdq is None:
        raise ValueError("conv bias is neither constant nor dequantized constant")
    _, data, qp = wdq
    return qp.dequantize(data).astype(np.float64)


class FoldBatchnorm(RewritePass):
    counts_as = ("batchnorm_folded",)
    after = ("FoldBiasAdd",)  # it needs Conv -> BatchNormalization adjacent: the bias Adds between folded

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_batchnorm(graph)
