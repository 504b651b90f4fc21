"""Which of Resize and ConvTranspose ORT CPU runs on integer codes (issue 24): each between a DQ
and a Q, with the same or other quantization on either side, loaded with ORT's optimizations; the
ops ORT kept (its optimized graph) and the result against the QDQ graph run as written.

    python benchmarks/ort_integer_ops.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

STEP = 0.02


def _qdq(name: str, x: str, scale: float, zero: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    nodes = [
        helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
        helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name]),
    ]
    return nodes, [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"), numpy_helper.from_array(np.array(zero, np.uint8), f"{name}_z")]


def model(kind: str, same: bool) -> onnx.ModelProto:
    into, into_inits = _qdq("a", "x", STEP, 128)
    if kind.startswith("Resize"):
        ops = [helper.make_node("Resize", ["a", "", "scales"], ["r"], mode=kind.split()[1])]
        inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    else:
        weight = np.random.default_rng(0).integers(-127, 128, (16, 8, 2, 2)).astype(np.int8)
        ops = [
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
            helper.make_node("ConvTranspose", ["a", "w"], ["r"], strides=[2, 2]),
        ]
        inits = [numpy_helper.from_array(weight, "wq"), numpy_helper.from_array(np.full(16, 0.01, np.float32), "ws")]
        inits.append(numpy_helper.from_array(np.zeros(16, np.int8), "wz"))
    out, out_inits = _qdq("y", "r", STEP if same else 1.5 * STEP, 128 if same else 120)
    graph = helper.make_graph(
        into + ops + out,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16, 40, 40])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        into_inits + inits + out_inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def main() -> None:
    x = np.random.default_rng(1).standard_normal((1, 16, 40, 40)).astype(np.float32)
    print(f"ORT {ort.__version__} CPU")
    print("| op | quantization in / out | ops ORT runs | max diff vs the QDQ graph (steps) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("Resize nearest", "Resize linear", "ConvTranspose"):
            for same in (True, False):
                data = model(kind, same).SerializeToString()
                fused_options = ort.SessionOptions()
                fused_options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
                fused = ort.InferenceSession(data, fused_options, providers=["CPUExecutionProvider"])
                ops = [n.op_type for n in onnx.load(fused_options.optimized_model_filepath).graph.node]
                literal_options = ort.SessionOptions()
                literal_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                literal = ort.InferenceSession(data, literal_options, providers=["CPUExecutionProvider"])
                diff = float(np.abs(fused.run(None, {"x": x})[0] - literal.run(None, {"x": x})[0]).max()) / STEP
                print(f"| {kind} | {'the same' if same else 'other'} | {' -> '.join(ops)} | {diff:.2f} |")


if __name__ == "__main__":
    main()
