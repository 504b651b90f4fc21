"""Fold an inference BatchNormalization into the preceding quantized Conv (docs/design.md, "Exact rewrites"):
only the per-channel weight scale changes (its sign goes into the int8 values), plus the bias."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..graph_edit import add_dq, const_array, initializer, producer_op, single_consumer, weight_dq
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
        wdq = weight_dq(conv.inputs[1])
        if wdq is None or producer_op(conv.inputs[0], "DequantizeLinear") is None:
            continue
        _dq, q_data, qp = wdq
        if qp.per_axis and qp.axis != 0:
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
        eps_attr = bn.attributes.get("epsilon")
        eps = eps_attr.as_float() if eps_attr is not None else 1e-5
        factor = gamma / np.sqrt(var + np.float64(np.float32(eps)))
        channels = q_data.shape[0]
        w_scale = np.broadcast_to(qp.scale.astype(np.float64), (channels,))
        sign = np.where(factor < 0, -1, 1)
        if np.any(factor == 0):
            continue
        # Only the signs of negative-gamma channels change: the codes themselves are kept where none is.
        new_q = q_data if np.all(sign > 0) else q_data.astype(np.int16) * sign.reshape(-1, *([1] * (q_data.ndim - 1))).astype(np.int16)
        new_qp = qp.with_scale((w_scale * np.abs(factor)).astype(np.float32)).with_axis(0)
        zp = np.broadcast_to(qp.zero_point, (channels,))
        new_qp = type(new_qp)(new_qp.scale, zp, new_qp.dtype, 0, new_qp.qmin, new_qp.qmax)
        old_bias = _float_bias(conv)
        bias = (np.zeros(channels) if old_bias is None else old_bias) * factor + beta - mean * factor
        new_w = add_dq(graph, new_q, new_qp, f"{conv.name}_w_bn", before=conv)
        conv.replace_input_with(1, new_w)
        b_init = initializer(graph, bias.astype(np.float32), f"{conv.name}_bias_bn")
        if len(conv.inputs) > 2:
            conv.replace_input_with(2, b_init)
        else:
            conv.resize_inputs(3)
            conv.replace_input_with(2, b_init)
        bn.outputs[0].replace_all_uses_with(conv.outputs[0], replace_graph_outputs=True)
        graph.remove(bn, safe=True)
        folded += 1
    return folded


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
