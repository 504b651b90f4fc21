"""ONNX Runtime sessions (CPU EP; CUDA EP through onnxruntime-gpu) and fusion analysis."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import InputError, QonvertError, first_line
from ..metadata import StateVariable
from ..opsets.graph_edit import MONOTONE_OPS, QUANTIZED_OPS, producer_op, run_time_scale

INTEGER_KERNELS = (
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "MatMulIntegerToFloat",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
)
# MatMulNBits: ORT's weight-only kernel; an integer one at accuracy level 4 (int8 activations,
# the speed form's), float below (weights dequantized on the fly: the canonical form's fusion).
FLOAT_KERNELS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm", "MatMulNBits")


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise InputError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
    return ort


def providers(device: str) -> list[str]:
    ort = _ort()
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception:
                pass
            available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise InputError(
                f"device cuda: CUDAExecutionProvider is not available (providers: {', '.join(available)}); "
                "install onnxruntime-gpu instead of onnxruntime"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise InputError(f"unknown device {device!r} (cpu or cuda)")


MATMULNBITS_ACCURACY = "1"  # float32 activations (see session())


def session(
    model: onnx.ModelProto | str,
    device: str = "cpu",
    *,
    optimized_path: str | None = None,
    level: str = "all",
    threads: int | None = None,
    arena: bool = True,
) -> Any:
    """An InferenceSession of the model (a proto, or a file's path). arena=False: memory is
    returned as each tensor dies, nodes run in priority order (a one-off session whose peak
    matters, not its speed)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    opts.log_severity_level = 3
    # ORT fuses a blocked int4/int8 weight DQ + MatMul into MatMulNBits, by default computing with
    # the activations quantized to int8 (accuracy level 4): a computation neither the graph nor the
    # source does. Level 1 keeps them float, so ORT computes what the QDQ graph says.
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", MATMULNBITS_ACCURACY)
    if threads:
        opts.intra_op_num_threads = threads
    if not arena:
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        # ORT's priority order holds fewer tensors at once than its default one (calibrating Paddle's
        # PTQ ResNet-50, whose float convs DQ their weights at run time: peak 260 -> 218 MB).
        opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    if isinstance(model, onnx.ModelProto):
        model, folder = _relative_external_data(model)
        if folder is not None:  # weights left in their file (onnx_file.load_onnx): ORT reads them there
            opts.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    try:
        sess = ort.InferenceSession(data, opts, providers=providers(device))
    except QonvertError:
        raise
    except Exception as exc:
        raise InputError(f"ONNX Runtime could not load the model: {first_line(exc, 300)}") from None
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():  # never CPU figures as CUDA ones
        raise InputError(f"device cuda: the session fell back to {', '.join(sess.get_providers())} (CUDA libraries missing?)")
    return sess


def _relative_external_data(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """A model whose external weights are located absolutely (ORT refuses that) as a copy located
    relative to their folder, and the folder; the model itself where it has none."""
    located = [
        entry
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location" and os.path.isabs(entry.value)
    ]
    folders = {os.path.dirname(entry.value) for entry in located}
    if len(folders) != 1:
        return model, None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # small: the weights are in the file
    for tensor in copy.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and os.path.isabs(entry.value):
                entry.value = os.path.basename(entry.value)
    return copy, folders.pop()


def run(sess: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return list(sess.run(None, feeds))
    except Exception as exc:  # ORT raises its own exception types, one per failure kind
        raise InputError(f"ONNX Runtime failed to run the model: {first_line(exc, 300)}") from None


def run_steps(sess: Any, feeds: list[dict[str, np.ndarray]], states: list[StateVariable]) -> list[list[np.ndarray]]:
    """One run per feed; a streaming model's state (qonvert.metadata.read_states) goes from each
    step's outputs into the next step's inputs, starting from its initial value."""
    names = [o.name for o in sess.get_outputs()]
    carried = {s.input: s.initial for s in states}
    results = []
    for feed in feeds:
        outputs = run(sess, {**feed, **carried})
        carried = {s.input: outputs[names.index(s.output)] for s in states}
        results.append(outputs)
    return results


@dataclass
class FusionReport:
    """Which quantized Conv/MatMul/Gemm ORT CPU turned into integer kernels."""

    integer: dict[str, int] = field(default_factory=dict)  # kernel type -> count
    float_ops: list[str] = field(default_factory=list)  # "Conv name: why" left in float
    quantized_in_source: int = 0  # quantized Conv/MatMul/Gemm in our graph

    @property
    def fused(self) -> int:
        return sum(self.integer.values())

    @property
    def coverage(self) -> float:
        return self.fused / self.quantized_in_source if self.quantized_in_source else 1.0


def fusion_report(model: onnx.ModelProto) -> FusionReport:
    """Optimise on ORT CPU (extended level: QDQ fusions, no layout transforms) and count kernels."""

    index = _GraphIndex(model)
    quantized = sum(1 for n in index.nodes.values() if n.op_type in QUANTIZED_OPS and index.reads_dq(n))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        session(model, "cpu", optimized_path=path, level="extended")
        optimized = onnx.load(path)
    report = FusionReport(quantized_in_source=quantized)
    for node in _all_nodes(optimized.graph):
        int8_nbits = node.op_type == "MatMulNBits" and any(a.name == "accuracy_level" and a.i >= 4 for a in node.attribute)
        if node.op_type in INTEGER_KERNELS or int8_nbits:
            report.integer[node.op_type] = report.integer.get(node.op_type, 0) + 1
        elif node.op_type in FLOAT_KERNELS:
            why = float_reason(index, node.name)
            if why != _NOT_QUANTIZED:  # e.g. attention MatMuls on float activations: not a miss
                report.float_ops.append(f"{node.op_type} {node.name}: {why}")
    return report


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes and, nested, those of its Loop / If subgraphs (ORT fuses inside them too)."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            nodes += _all_nodes(attr.g) if attr.type == onnx.AttributeProto.GRAPH else []
    return nodes


class _GraphIndex:
    """The converted graph (onnx_ir) with its nodes by name, subgraphs' included, which ORT's
    optimised graph refers to."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = ir.from_proto(model).graph
        self.nodes = {n.name: n for n in ir.traversal.RecursiveGraphIterator(self.graph)}
        self.outputs = {v.name for v in self.graph.outputs}

    @staticmethod
    def reads_dq(node: ir.Node) -> bool:
        """Whether the op's data or weight input comes from a DequantizeLinear."""
        return any(producer_op(v, "DequantizeLinear") is not None for v in node.inputs[:2])


# Walked through when explaining; BatchNormalization is folded only when a Q follows, so it is on the way too.
_ON_THE_WAY = ("BatchNormalization", *MONOTONE_OPS)
_NOT_QUANTIZED = "its inputs are not quantized in the source"


def float_reason(index: _GraphIndex, node_name: str) -> str:
    """Why a Conv/MatMul stayed float: what its output meets before any quantization."""
    # ORT names what its fusions make "<original>/<FusionName>..."
    node = index.nodes.get(node_name.split("/", 1)[0])
    if node is None:
        return "made by ORT, not in the converted graph"
    if not index.reads_dq(node):
        return _NOT_QUANTIZED
    first = producer_op(node.inputs[0], "DequantizeLinear")
    if first is None:
        return "its first input is float in the source (only the other one is quantized)"
    if run_time_scale(first.inputs[1]):
        return "its activation is quantized at run time (dynamic): ORT's CPU EP fuses no Q/DQ with a run-time scale"
    if node.op_type == "ConvTranspose":
        return "ORT's CPU EP has no integer ConvTranspose kernel (QLinearConvTranspose is XNNPACK's)"
    value, path = node.outputs[0], list[str]()
    while True:
        via = f" via {', '.join(path)}" if path else ""
        users = list(value.consumers())
        if value.name in index.outputs:
            return f"its output is a float graph output{via}"
        if len(users) != 1:
            floats = [f"{u.op_type} {u.name}" for u in users if u.op_type != "QuantizeLinear"]
            return f"its output{via} also feeds {', '.join(floats)} in float, as in the source"
        user = users[0]
        if user.op_type == "QuantizeLinear":
            return "reaches a quantization, but ORT did not fuse it"
        bias = user.op_type == "Add" and any(v is not None and v.const_value is not None for v in user.inputs)
        if user.op_type not in _ON_THE_WAY and not bias:
            return f"its output reaches {user.op_type} {user.name}{via} in float before any quantization, as in the source"
        path.append(user.op_type)
        value = user.outputs[0]
