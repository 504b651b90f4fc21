"""The ORT-CPU speed form (opt-in: `convert --speed`): the canonical model changed where ORT's CPU
integer kernels need it, each change's cost counted against the source.

ORT drops a Relu before a Q only where the Q's zero point is the bottom of its range (uint8 zero
point 0), and fuses a quantized Conv only where its output reaches a Q. Paddle quantizes
activations symmetric int8 with zero point 0 and leaves the convs before a residual Add or a
hard-swish in float, so its models keep a DQ -> Relu -> Q and float convs between the integer
kernels (and the NHWC transposes cannot cancel across them). The changes, in this order:

1. Conv -> Q -> DQ -> Relu -> Q, both Qs alike: the first pair goes (exact: relu and the clip
   commute, so the second Q computes the same codes from the conv's float output).
2. A symmetric int8 activation that cannot be negative (after Relu, Clip at 0, or a max-pool or
   layout op of such a tensor) is stored as uint8 with zero point 0 and the same scale. Identical
   except where the value passes 127 steps: the source saturates there, uint8 keeps it. verify
   counts those elements (the Qs carry node metadata SPEED_UINT8).
3. With calibration inputs (targets/ort_calibration.py; the rest rounds values the source keeps in float):
   - a float BatchNorm after such a conv folds into it, and so does a constant scale-and-shift
     (Mul, then Add: PP-LCNet's learnable affine blocks) (float rounding only), so the Q follows it;
   - an Add/Mul/Concat reading the float value of a tensor that also has a Q (the residual
     identity path) reads the Q's DQ instead, where the calibration data stays inside its range;
   - each quantized Conv/MatMul/Gemm whose output reaches no Q gets a Q/DQ, uint8 asymmetric over
     the range its output takes on the calibration data (what ORT's own quantizer does).
4. A PRelu with a constant slope becomes Mul and Max (or Min, Mul, Relu and Add), which ORT runs
   2-4x faster than its PRelu (exact: opsets/passes/prelu.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes as ir_passes
import onnx_ir.passes.common as common

from ..metadata import SPEED_UINT8, TWIN
from ..opsets.canonical import quantized_op_bias
from ..opsets.graph_edit import initializer, non_negative, producer_op, qparams_of
from ..opsets.passes import RewritePass, run_passes
from ..opsets.passes.batchnorm import fold_batchnorm, fold_scale_shift
from ..opsets.passes.bias import quantize_biases
from ..opsets.passes.prelu import prelu_as_elementwise
from ..opsets.passes.qdq import twin_shared_q
from ..opsets.passes.weights import FoldFloatConvWeights
from ..runtime import refio
from . import Target
from .ort_calibration import CalibrateFloatOutputs, calibration_feeds, float_output
from .ort_matmul import MS, blocked_weights


@dataclass
class SpeedChanges:
    merged: int = 0  # step 1 (exact)
    uint8: int = 0  # step 2 (exact below 127 steps)
    calibrated: int = 0  # step 3: calibrated Q/DQ on float outputs
    rerouted: int = 0  # float readers of a quantized value moved to its DQ (rounds what the source keeps float)
    beyond_range: int = 0  # such readers left float: on the calibration data the value passes the Q's range
    folded: int = 0  # float BatchNorms and constant scale-and-shifts folded into the conv before them
    float_left: int = 0  # quantized ops whose output still reaches no Q (no calibration given)
    nbits: int = 0  # weight-only / blocked weights as MatMulNBits, int8 activations (rounds them)
    prelu: int = 0  # PRelus with a constant slope as Mul and Max (or Min, Relu, Mul, Add): exact

    def lines(self) -> list[str]:
        lines = [
            f"{self.merged} requantizations before a Relu dropped (exact)",
            f"{self.uint8} non-negative int8 activations stored as uint8, zero point 0, same scale (exact below 127 steps; verify counts the rest)",
            f"{self.rerouted} Add/Mul/Concat inputs read the quantized value of a tensor the source also reads in float (rounds it)",
            f"{self.folded} float BatchNorms or constant scale-and-shifts folded into their convs (float rounding only)",
            f"{self.calibrated} float outputs of quantized ops given a calibrated uint8 Q/DQ (rounds what the source keeps in float)",
        ]
        lines.append(f"{self.nbits} matmuls of int4/int8 weights as MatMulNBits with int8 activations per block (rounds the activations)")
        lines.append(f"{self.prelu} PRelus as plain elementwise ops, which ORT runs faster (exact)")
        counts = (self.merged, self.uint8, self.rerouted, self.folded, self.calibrated, self.nbits, self.prelu)
        lines = [line for line, n in zip(lines, counts, strict=True) if n]
        if self.beyond_range:
            lines.append(f"{self.beyond_range} Add/Mul/Concat inputs kept float: on the calibration data their values pass their Q's range")
        if self.float_left:
            lines.append(f"{self.float_left} quantized ops still write float (the source leaves them so): --calibration CALIB.npz quantizes them")
        return lines


def speed_form(model: onnx.ModelProto, calibration: refio.Samples | None = None) -> tuple[onnx.ModelProto, SpeedChanges]:
    """The speed form of a canonical model (left as it is); calibration: input feeds (ONNX layout)
    for step 3."""
    ir_model = ir.from_proto(model)
    changes = speed_passes(ir_model, calibration)
    return ir.to_proto(ir_model), changes


def speed_passes(ir_model: ir.Model, calibration: refio.Samples | None = None) -> SpeedChanges:
    """The speed form's passes, run on the IR model in place."""
    changes = SpeedChanges()
    passes: list[ir_passes.PassBase] = [MergeRequantizationBeforeRelu(), NonNegativeToUint8(), BlockedWeightsToNBits()]
    if calibration:
        # The BNs the source keeps after a float conv go into it first, so the calibrated Q follows them.
        # The weight DQs the folding replaced go before the calibration run: ORT would run them there
        # (Paddle's PTQ ResNet-50: 20 dead DQs, a third of the probe's weights).
        passes += [FoldFloatBatchnorm(), QuantizeFoldedBiases(), common.RemoveUnusedNodesPass()]
        passes += [CalibrateFloatOutputs(calibration), TwinRerouted()]
    passes += [PReluAsElementwise(), FoldFloatConvWeights()]
    passes += [common.RemoveUnusedNodesPass(), common.TopologicalSortPass()]  # the weight DQs replaced: ORT would run them
    counts = run_passes(ir_model, passes)
    for field_name in ("merged", "uint8", "nbits", "folded", "rerouted", "beyond_range", "calibrated", "prelu"):
        setattr(changes, field_name, counts.get(field_name, 0))
    if not calibration:
        changes.float_left = sum(1 for node in ir_model.graph if float_output(node) is not None)
    return changes


class MergeRequantizationBeforeRelu(RewritePass):
    counts_as = ("merged",)

    def rewrite(self, graph: ir.Graph) -> int:
        return _merge_requantization_before_relu(graph)


class NonNegativeToUint8(RewritePass):
    counts_as = ("uint8",)
    after = ("MergeRequantizationBeforeRelu",)  # a merged pair leaves the Relu's Q to re-store

    def rewrite(self, graph: ir.Graph) -> int:
        return _non_negative_to_uint8(graph)


class BlockedWeightsToNBits(RewritePass):
    counts_as = ("nbits",)

    def call(self, model: ir.Model) -> ir_passes.PassResult:
        result = super().call(model)
        if self.counts["nbits"]:
            model.opset_imports.setdefault(MS, 1)
        return result

    def rewrite(self, graph: ir.Graph) -> int:
        return blocked_weights(graph)


class FoldFloatBatchnorm(RewritePass):
    """The BatchNorms after float convs too, and constant scale-and-shift pairs (float rounding
    only): the calibrated Q follows them."""

    counts_as = ("folded",)

    def rewrite(self, graph: ir.Graph) -> int:
        return fold_batchnorm(graph, float_outputs=True) + fold_scale_shift(graph)


class QuantizeFoldedBiases(RewritePass):
    counts_as = ("bias_quantized",)
    after = ("FoldFloatBatchnorm",)  # the folding rewrites the float biases
    promises = (quantized_op_bias,)

    def rewrite(self, graph: ir.Graph) -> int:
        return quantize_biases(graph)


class PReluAsElementwise(RewritePass):
    counts_as = ("prelu",)

    def rewrite(self, graph: ir.Graph) -> int:
        return prelu_as_elementwise(graph)


class TwinRerouted(RewritePass):
    counts_as = ("q_twinned",)
    after = ("CalibrateFloatOutputs",)  # a rerouted int8 Q now has two DQs

    def rewrite(self, graph: ir.Graph) -> int:
        return twin_shared_q(graph)


def _merge_requantization_before_relu(graph: ir.Graph) -> int:
    merged = 0
    for relu in list(graph):
        if relu.op_type != "Relu" or relu.domain:
            continue
        dq = producer_op(relu.inputs[0], "DequantizeLinear")
        q = producer_op(dq.inputs[0], "QuantizeLinear") if dq is not None else None
        after = relu.outputs[0].consumers()
        if q is None or dq is None or len(after) != 1 or after[0].op_type != "QuantizeLinear" or relu.outputs[0].is_graph_output():
            continue
        if len(dq.outputs[0].consumers()) != 1 or len(q.outputs[0].consumers()) != 1 or q.outputs[0].is_graph_output():
            continue
        first, second, between = qparams_of(q), qparams_of(after[0]), qparams_of(dq)
        if first is None or second is None or between is None or not (first.same_as(second) and first.same_as(between)) or first.per_axis:
            continue
        relu.replace_input_with(0, q.inputs[0])
        graph.remove([dq, q], safe=True)
        merged += 1
    return merged


def _non_negative_to_uint8(graph: ir.Graph) -> int:
    """Step 2, in graph order, so a max-pool of an already re-stored tensor follows it."""
    restored = 0
    interface = {v.name for v in (*graph.inputs, *graph.outputs)}
    zero: ir.Value | None = None
    for q in list(graph):
        qp = qparams_of(q) if q.op_type == "QuantizeLinear" and not q.domain else None
        if qp is None or qp.dtype != "int8" or qp.per_axis or int(qp.zero_point) != 0 or q.outputs[0].name in interface:
            continue
        readers = q.outputs[0].consumers()
        if not readers or any(r.op_type != "DequantizeLinear" or len(r.inputs) < 3 for r in readers) or not non_negative(q.inputs[0]):
            continue
        if zero is None:
            zero = initializer(graph, np.asarray(np.uint8(0)), "speed_uint8_zero_point")
        for node in (q, *readers):  # one zero point for all: the twins' scales stay their own
            node.replace_input_with(2, zero)
        q.outputs[0].type = ir.TensorType(ir.DataType.UINT8)
        q.metadata_props[SPEED_UINT8] = "1"
        restored += 1
    return restored


def saturated(model: onnx.ModelProto, feeds: refio.Samples) -> tuple[int, int, int]:
    """(elements above 127 steps, elements, tensors) of the re-stored uint8 activations on these
    feeds: where the source, saturating at 127, differs from the speed form."""
    from ..runtime.ort import run, session

    marked = [n.output[0] for n in model.graph.node if any(p.key == SPEED_UINT8 for p in n.metadata_props)]
    names = [n for n in marked if TWIN not in n]  # a twin holds its original's codes
    if not names:
        return 0, 0, 0
    sess = session(_probe(model, names, onnx.TensorProto.UINT8), "cpu", level="basic")
    inputs = [i.name for i in sess.get_inputs()]
    over = total = 0
    for feed in feeds:
        for arr in run(sess, {n: feed[n] for n in inputs if n in feed}):
            over += int((arr > 127).sum())
            total += arr.size
    return over, total, len(names)


def _probe(model: onnx.ModelProto, names: list[str], elem_type: int) -> onnx.ModelProto:
    """The model with these values as its outputs (and no others)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, elem_type, None) for n in names)
    return probe


class OrtSpeed(Target):
    """ORT CPU's speed form (`--speed`); `calibration`: an .npz of input feeds (the ONNX model's
    layout) to calibrate a Q on the outputs the source leaves in float."""

    name = "ort-speed"
    form = "the speed form"
    options = ("calibration",)

    def derive(self, model: ir.Model, where: str, **options: Any) -> list[str]:
        changes = speed_passes(model, calibration_feeds(model, options.get("calibration")))
        return [f"speed: {line}" for line in changes.lines()]

    def findings(self, model: onnx.ModelProto) -> list[str]:
        return speed_form(model)[1].lines()  # what it would change, uncalibrated

    def stages(self, canonical: onnx.ModelProto, derived: onnx.ModelProto, **options: Any) -> list[tuple[str, onnx.ModelProto]]:
        if not options.get("calibration"):
            return [(self.form, derived)]
        # the two kinds of change told apart: the uint8 storage alone, then the calibrated Qs
        return [("the uint8 storage", speed_form(canonical)[0]), ("the calibrated quantization on top", derived)]

    def verify_remark(self, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> str:
        over, total, tensors = saturated(model, feeds)
        if not tensors:
            return ""
        share = f"{100.0 * over / total:.3g}%" if total else "0%"
        return (
            f"speed form: {over} of {total} elements ({share}) of its {tensors} uint8-stored activations pass 127 steps "
            "on these inputs, where the source saturates at 127"
        )
