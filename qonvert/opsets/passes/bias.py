"""Bias handling for quantized Conv / MatMul: fold a following constant Add into the op's bias,
and store every bias of a quantized op as int32 at scale s_x * s_w (zero point 0)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...errors import InputError
from ..canonical import input_channel_weight, quantized_op_bias
from ..graph_edit import add_dq, const_array, fresh_name, producer_op, qparams_of, single_consumer, source_label, weight_dq
from ..qparams import MIN_SCALE, QuantParams
from .base import RewritePass


def _channel_vector(add: ir.Node, out: ir.Value, channels: int, channel_axis: int, rank: int) -> np.ndarray | None:
    """The Add's other operand as a per-channel vector, if it broadcasts along `channel_axis` only."""
    other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    data = const_array(other)
    if data is None or data.dtype != np.float32 or data.size != channels or data.ndim > rank:
        return None
    shape = (1,) * (rank - data.ndim) + data.shape
    if shape[channel_axis] != channels:
        return None
    return data.reshape(-1).astype(np.float64)


def _rank(value: ir.Value) -> int | None:
    return len(value.shape) if value.shape is not None else None


def fold_bias_add(graph: ir.Graph) -> int:
    folded = 0
    for node in list(graph):
        if node.op_type not in ("Conv", "MatMul") or node.domain:
            continue
        if producer_op(node.inputs[0], "DequantizeLinear") is None or weight_dq(node.inputs[1]) is None:
            continue
        out = node.outputs[0]
        add = single_consumer(out)
        rank = _rank(out)
        if add is None or add.op_type != "Add" or rank is None:
            continue
        if node.op_type == "Conv":
            channels = weight_dq(node.inputs[1])[1].shape[0]  # type: ignore[index]
            vec = _channel_vector(add, out, channels, 1, rank)
            if vec is None:
                continue
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                old = const_array(node.inputs[2])
                if old is None:
                    continue
                vec = vec + old.astype(np.float64)
            node.resize_inputs(3)
            node.replace_input_with(2, graph_initializer(graph, vec, f"{node.name}_bias"))
        else:
            w = weight_dq(node.inputs[1])
            in_rank = _rank(node.inputs[0]) if node.inputs[0] is not None else None
            if w is None or w[1].ndim != 2 or in_rank != 2:
                continue
            vec = _channel_vector(add, out, w[1].shape[1], rank - 1, rank)
            if vec is None:
                continue
            gemm = ir.Node(
                "",
                "Gemm",
                [node.inputs[0], node.inputs[1], graph_initializer(graph, vec, f"{node.name}_bias")],
                name=f"{node.name}_gemm",
            )
            graph.insert_before(node, gemm)
            gemm.outputs[0].name = fresh_name(graph, f"{node.name}_gemm_out")
            gemm.outputs[0].shape, gemm.outputs[0].type = out.shape, out.type
            out.replace_all_uses_with(gemm.outputs[0])
            graph.remove(node, safe=True)
            node = gemm
        add_out = add.outputs[0]
        add_out.replace_all_uses_with(node.outputs[0], replace_graph_outputs=True)
        graph.remove(add, safe=True)
        folded += 1
    return folded


def graph_initializer(graph: ir.Graph, vec: np.ndarray, name: str) -> ir.Value:
    from ..graph_edit import initializer

    return initializer(graph, vec.astype(np.float32), name)


INT32_MAX = 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _widen_starved_channels(
    graph: ir.Graph, node: ir.Node, w_dq: ir.Node, w_data: np.ndarray, w_qp: QuantParams, x_qp: QuantParams, bias: np.ndarray
) -> QuantParams | None:
    """A weight channel whose scale is so small (a channel PTQ found nearly dead, ~1e-17) that its
    bias does not fit int32 at s_x * s_w: the channel's scale grows to the smallest that fits and
    its weights are requantized at it. Its weights then move by at most half that step, which
    against the bias they sit beside is below float32's resolution (|b| / 2^32 per weight)."""
    if not w_qp.per_axis or len(w_dq.outputs[0].consumers()) != 1 or bias.ndim != 1 or w_qp.axis != 0:
        return None
    need = np.abs(bias.astype(np.float64)) / (float(x_qp.scale) * (INT32_MAX - 1))
    old = w_qp.scale.astype(np.float64)
    new = np.where(need > old, need * (1 + 1e-6), old)
    if np.any(new > FLOAT32_MAX):  # no float32 scale is wide enough
        return None
    new = new.astype(np.float32)
    moved = new != w_qp.scale
    data = w_data.astype(np.int64)
    top = w_qp.dtype_range[1]  # symmetric weights: [-127, 127] for int8, [-7, 7] for int4
    data[moved] = np.clip(np.rint(data[moved] * (old[moved] / new[moved]).reshape(-1, *([1] * (data.ndim - 1)))), -top, top)
    qp = w_qp.with_scale(new)
    node.replace_input_with(1, add_dq(graph, data, qp, f"{node.name}_w_widened", before=node))
    return qp


def _bias_scale(node: ir.Node, x_qp: QuantParams, w_qp: QuantParams, shape: tuple[int, ...]) -> np.ndarray:
    """float32(s_x * s_w), per bias element. Under float32's smallest normal the product keeps
    fewer digits than the contract's 1e-6 (under 1e-45 none), and past its largest it is inf: no
    int32 bias at that scale exists, and the scales that ask for it are the file's (a live weight
    channel is >= DEAD_SCALE)."""
    product = x_qp.scale.astype(np.float64) * np.broadcast_to(w_qp.scale, shape)
    outside = product[(product < MIN_SCALE) | (product > FLOAT32_MAX)]
    if outside.size:
        raise InputError(
            f"op {source_label(node)}: its bias scale s_x * s_w = {float(outside[0]):.3g} (s_x {float(x_qp.scale):.3g}) "
            f"is outside float32's normal range; an int32 bias cannot be stored at it"
        )
    return product.astype(np.float32)


def quantize_biases(graph: ir.Graph) -> int:
    """Float bias of a quantized Conv/ConvTranspose/Gemm -> int32 DQ at s_x * s_w."""
    done = 0
    for node in list(graph):
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or node.domain or len(node.inputs) < 3:
            continue
        bias = const_array(node.inputs[2])
        x_dq = producer_op(node.inputs[0], "DequantizeLinear")
        w = weight_dq(node.inputs[1])
        if bias is None or x_dq is None or w is None:
            continue
        x_qp = qparams_of(x_dq)
        if x_qp is None:
            continue
        if x_qp.per_axis:  # no one s_x to scale an integer bias by: the file's choice, not ours
            raise InputError(f"op {source_label(node)}: its input is quantized per channel (axis {x_qp.axis}); a quantized op's input has one scale")
        w_dq, w_data, w_qp = w
        if input_channel_weight(node, w_qp):
            continue  # no s_x * s_w per output channel: the bias stays float (canonical.py)
        if not np.all(np.isfinite(bias)):
            raise InputError(f"op {source_label(node)}: its bias holds non-finite values")
        if bias.ndim != 1 or w_qp.scale.size not in (1, bias.size):  # the file's bias and weight disagree
            raise InputError(f"op {source_label(node)}: a bias of shape {list(bias.shape)} for {w_qp.scale.size} weight channels")
        scale = _bias_scale(node, x_qp, w_qp, bias.shape)
        q = np.rint(bias.astype(np.float64) / scale.astype(np.float64))
        if np.any(np.abs(q) > INT32_MAX):
            widened = _widen_starved_channels(graph, node, w_dq, w_data, w_qp, x_qp, bias)
            if widened is None:
                big = float(np.abs(bias).max())
                raise InputError(f"op {source_label(node)}: a bias of {big:.3g} does not fit int32 at s_x * s_w (per-tensor weight scale)")
            w_qp = widened
            scale = _bias_scale(node, x_qp, w_qp, bias.shape)
            q = np.rint(bias.astype(np.float64) / scale.astype(np.float64))
        qp = QuantParams(scale, np.zeros(scale.shape, np.int64), "int32", 0)
        new = add_dq(graph, q.astype(np.int32), qp, f"{node.name}_bias", before=node)
        node.replace_input_with(2, new)
        done += 1
    return done


class FoldBiasAdd(RewritePass):
    counts_as = ("bias_add_folded",)
    after = ("Cleanup",)  # it reads the Add's operand ranks: those shape inference gives

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_bias_add(graph)


class QuantizeBiases(RewritePass):
    counts_as = ("bias_quantized",)
    after = ("FoldBatchnorm",)  # BN folding rewrites the float bias it quantizes
    promises = (quantized_op_bias,)

    def rewrite(self, graph: ir.Graph) -> int:
        return quantize_biases(graph)
