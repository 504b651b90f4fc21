"""Fold a zero-value constant Pad into the Conv or MaxPool it feeds (TFLite writes ZeroPadding2D,
and "same" padding of some strided convs, as an explicit PAD): exact for a Conv, since a quantized
Conv pads with its input's zero point, which is real 0, as the Pad does; exact for a MaxPool where
the padded tensor cannot be negative (after a Relu, or quantized with its zero point at the bottom
of its range: ResNet's pool after conv1 + ReLU), since a window's max over values >= 0 is the same
with or without zeros beside them. The Pad may reach its op through Q/DQ pairs and layout
Transposes (the model's edge), each read by nothing else; its padding is moved through those
Transposes onto the op's spatial axes. ORT then has one float op less between integer kernels."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..graph_edit import const_array, non_negative, rename, single_consumer
from .base import RewritePass

_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Transpose")


def fold_zero_pad(graph: ir.Graph) -> int:
    folded = 0
    for pad in list(graph):
        if pad.op_type != "Pad" or pad.domain or pad.attributes.get_string("mode", "constant") != "constant":
            continue
        pads = const_array(pad.inputs[1]) if len(pad.inputs) > 1 else None
        value = const_array(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] is not None else np.zeros(())
        if pads is None or value is None or np.any(value != 0) or np.any(pads < 0) or (len(pad.inputs) > 3 and pad.inputs[3] is not None):
            continue
        rank = pads.size // 2
        begin, end = list(pads[:rank]), list(pads[rank:])
        chain, node = [], single_consumer(pad.outputs[0])
        while node is not None and node.op_type in _THROUGH:
            if node.op_type == "Transpose":
                perm = list(node.attributes.get_ints("perm", list(reversed(range(rank)))))
                begin, end = [begin[p] for p in perm], [end[p] for p in perm]
            chain.append(node)
            node = single_consumer(node.outputs[0])
        conv = node
        source = pad.inputs[0]
        if source is None or conv is None or not chain or conv.inputs[0] is not chain[-1].outputs[0]:
            continue
        if not (conv.op_type == "Conv" or (conv.op_type == "MaxPool" and non_negative(source) and _within_window(conv, begin, end))):
            continue
        if conv.attributes.get_string("auto_pad", "NOTSET") != "NOTSET" or any(begin[:2]) or any(end[:2]):
            continue  # padding on batch or channels, or an op that chooses its own
        spatial = rank - 2
        old = list(conv.attributes.get_ints("pads", [0] * (2 * spatial)))
        new = [o + p for o, p in zip(old, [*begin[2:], *end[2:]], strict=True)]
        conv.attributes["pads"] = ir.AttrInt64s("pads", new)
        ir.convenience.replace_all_uses_with(pad.outputs[0], source)
        graph.remove(pad, safe=True)
        for step in chain:  # the values between now hold the unpadded tensor: no longer the source's
            step.outputs[0].shape = None  # padded one (per-layer must not compare them); its shape is unknown now
            rename(graph, step.outputs[0], f"{step.outputs[0].name}_unpadded")
        folded += 1
    return folded


def _within_window(pool: ir.Node, begin: list[int], end: list[int]) -> bool:
    """Every window still holds a real value: each pad narrower than the kernel."""
    kernel = list(pool.attributes.get_ints("kernel_shape", []))
    return len(kernel) == len(begin) - 2 and all(max(b, e) < k for b, e, k in zip(begin[2:], end[2:], kernel, strict=True))


class FoldZeroPad(RewritePass):
    counts_as = ("pad_folded",)

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_zero_pad(graph)
