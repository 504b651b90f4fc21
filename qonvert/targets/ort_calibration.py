"""The speed form's step 3 (targets/ort_speed.py): with calibration inputs, the float outputs of
quantized ops get a uint8 Q/DQ over the range they take on that data, and float readers of a
quantized value read its DQ where the value stays inside the Q's range. The ranges come from one ORT
run per input over the model, a segment at a time (ort_segments.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx_ir as ir
import onnx_ir.passes as ir_passes

from ..errors import InputError
from ..metadata import read_states
from ..opsets.graph_edit import QUANTIZED_OPS, add_dq_of, add_q, producer_op, qparams_of
from ..opsets.passes import RewritePass
from ..opsets.passes.qdq import next_quantize
from ..opsets.qparams import QuantParams
from ..runtime import refio
from .ort_segments import value_ranges

MULTI_INPUT = ("Add", "Mul", "Concat")  # ORT runs them quantized only where every input is a DQ


class CalibrateFloatOutputs(RewritePass):
    """Step 3: the float outputs of quantized ops get a uint8 Q/DQ over their calibrated range, and
    float readers of a quantized value read its DQ where the value stays within the Q's range."""

    counts_as = ("rerouted", "beyond_range", "calibrated")
    after = ("FoldFloatBatchnorm",)

    def __init__(self, calibration: refio.Samples) -> None:
        super().__init__()
        self.calibration = calibration

    def call(self, model: ir.Model) -> ir_passes.PassResult:
        self.model = model  # the ranges are measured on the model as it stands (ORT runs a proto of it)
        return super().call(model)

    def rewrite(self, graph: ir.Graph) -> tuple[int, int, int]:
        outputs = [out for node in graph if (out := float_output(node)) is not None]
        reads = _float_reads_of_quantized(graph)
        names = {v.name for v in outputs} | {q.inputs[0].name for q, _, _ in reads if q.inputs[0] is not None}
        ranges = value_ranges(self.model, sorted(n for n in names if n), self.calibration)
        rerouted = beyond = 0
        for q, user, index in reads:
            data, qp = q.inputs[0], qparams_of(q)
            if data is None or qp is None or not _within(ranges[str(data.name)], qp):
                beyond += 1  # rounding it to the Q's grid would clip it: the float read stays
                continue
            user.replace_input_with(index, add_dq_of(graph, q.outputs[0], qp, f"{q.outputs[0].name}_speed_dq", before=user))
            rerouted += 1
        for out in outputs:
            users = list(out.uses())
            qp = _uint8_params(*ranges[str(out.name)])
            q_value = add_q(graph, out, qp, f"{out.name}_speed_q", before=users[0][0])
            dq = add_dq_of(graph, q_value, qp, f"{out.name}_speed_dq", before=users[0][0])
            for user, index in users:
                user.replace_input_with(index, dq)
        return rerouted, beyond, len(outputs)


def float_output(node: ir.Node) -> ir.Value | None:
    """A quantized op's output that reaches no Q (the source keeps it float), if it is one."""
    if node.op_type not in QUANTIZED_OPS or node.domain or producer_op(node.inputs[0], "DequantizeLinear") is None:
        return None
    out = node.outputs[0]
    users = out.consumers()
    if not users or out.is_graph_output() or next_quantize(out) is not None or any(u.op_type == "QuantizeLinear" for u in users):
        return None
    return out


def _float_reads_of_quantized(graph: ir.Graph) -> list[tuple[ir.Node, ir.Node, int]]:
    """(Q, reader, input index): an Add/Mul/Concat reading the float value of a tensor that also has a
    per-tensor Q (the residual Add's identity path, which Paddle reads before its quantization)."""
    reads = []
    for q in graph:
        data = q.inputs[0] if q.op_type == "QuantizeLinear" and not q.domain else None
        qp = qparams_of(q) if data is not None else None
        if data is None or qp is None or qp.per_axis or q.outputs[0].is_graph_output():
            continue
        reads += [(q, user, index) for user, index in data.uses() if user.op_type in MULTI_INPUT and not user.domain]
    return reads


def _within(value_range: tuple[float, float], qp: QuantParams) -> bool:
    scale, zero = float(qp.scale), int(qp.zero_point)
    return (int(qp.qmin or 0) - zero) * scale <= value_range[0] and value_range[1] <= (int(qp.qmax or 0) - zero) * scale


def _uint8_params(low: float, high: float) -> QuantParams:
    low, high = min(low, 0.0), max(high, 0.0)  # zero exactly representable
    scale = (high - low) / 255.0 or 1.0
    return QuantParams(np.asarray(scale, np.float32), np.asarray(np.clip(np.rint(-low / scale), 0, 255), np.int64), "uint8")


def calibration_feeds(model: ir.Model, calibration: str | os.PathLike[str] | None) -> refio.Samples | None:
    """The calibration file's input feeds, checked against the model's inputs (float values of an
    integer input quantized by its own parameters; a streaming model's state inputs fed their
    initial values: its first step)."""
    if calibration is None:
        return None
    from ..verify.sampling import check_feeds, input_specs, quantize_float_feeds

    feeds, _, _ = refio.load(Path(calibration), mapped=True)  # paged in as each segment reads them
    if not feeds:
        raise InputError(f"{calibration}: holds no input samples")
    state = {s.input: s.initial for s in read_states(model)}
    specs = [spec for spec in input_specs(model, None) if spec.name not in state]
    feeds, _ = quantize_float_feeds(specs, feeds)  # the images verify takes for an int8 input, as verify takes them
    check_feeds(str(calibration), specs, feeds)
    return [state | feed for feed in feeds]
