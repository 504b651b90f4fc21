"""The weights of convolutions ORT runs in float, stored float (exact).

A Conv whose output reaches no Q (Paddle quantizes a conv's input and weight but leaves its
output float before a hard-swish, a squeeze-excite Mul or a residual Add) runs as a float Conv on
ORT CPU, on its dequantized weight. ORT does not constant-fold a DequantizeLinear (it keeps QDQ
node units whole), so such a weight is dequantized on every run, and a Conv whose weight is not an
initializer misses ORT's NCHWc layout (its fastest float convolution): PP-OCRv4 det's 47 such convs
made the int8 model slower than fp32. Their weights (and int32 biases) become float initializers,
computed as ORT's DequantizeLinear computes them: (code - zero point) as an integer, then times the
scale in float32. The conv still reads its activation through a DQ: it is still a quantized op of
the source, which verify's fusion report lists as run in float and why. A target that quantizes
such outputs (the speed form's calibration) runs before this, on the int8 weights.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..graph_edit import initializer, producer_op, weight_dq
from ..qparams import QuantParams
from .base import RewritePass

CONVS = ("Conv", "ConvTranspose")  # ORT CPU's QDQ Gemm/MatMul without a Q run as integer kernels (MatMulIntegerToFloat)


def float_on_quantized_input(node: ir.Node) -> bool:
    """A conv reading a quantized activation that ORT still runs in float: ORT's QDQ selector
    fuses one only where a single Q reads its output. (A conv on a float activation, a
    weight-only model's, keeps its int8 weight: there the source chose int8 for its size.)"""
    users = node.outputs[0].consumers()
    single_q = len(users) == 1 and users[0].op_type == "QuantizeLinear" and not node.outputs[0].is_graph_output()
    return not single_q and producer_op(node.inputs[0], "DequantizeLinear") is not None


def fold_float_conv_weights(graph: ir.Graph) -> int:
    folded = 0
    for node in list(graph):
        if node.op_type not in CONVS or node.domain or not float_on_quantized_input(node):
            continue
        for index in (1, 2):
            value = node.inputs[index] if len(node.inputs) > index else None
            found = weight_dq(value)
            if found is None or value is None or len(value.consumers()) != 1:
                continue
            dq, codes, qp = found

            def real(codes: np.ndarray = codes, qp: QuantParams = qp) -> ir.TensorProtocol:
                return ir.Tensor(qp.dequantize(codes))  # (code - zero point) in integers, as float32, times the scale

            # computed as the writer reaches it (a float copy of every such weight at once doubled
            # the peak memory of a converted ResNet-50)
            lazy = ir.LazyTensor(real, ir.DataType.FLOAT, ir.Shape(codes.shape))
            node.replace_input_with(index, initializer(graph, lazy, f"{value.name}_float"))
            graph.remove(dq, safe=True)
            folded += index == 1
    return folded


class FoldFloatConvWeights(RewritePass):
    counts_as = ("float_conv_weights_folded",)

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_float_conv_weights(graph)
