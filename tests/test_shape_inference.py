"""ONNX's shape inference as the passes run it (opsets/passes/shapes.py): data propagation where it
resolves shape arithmetic, and bounded where a corrupt file declares a vector 2^31 long."""

from __future__ import annotations

import resource

import numpy as np
import onnx_ir as ir
import pytest

from qonvert.opsets.passes.shapes import infer_shapes


def _model(inputs: list[ir.Value], nodes: list[ir.Node]) -> ir.Model:
    graph = ir.Graph(inputs, [nodes[-1].outputs[0]], nodes=nodes, opset_imports={"": 21})
    return ir.Model(graph, ir_version=10)


def _input(name: str, dtype: ir.DataType, dims: list[int]) -> ir.Value:
    return ir.Value(name=name, type=ir.TensorType(dtype), shape=ir.Shape(dims))


def _node(op: str, inputs: list[ir.Value], name: str, **attributes: int) -> ir.Node:
    node = ir.node(op, inputs, attributes)
    node.outputs[0].name = name
    return node


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_shape_arithmetic_still_propagates() -> None:
    """Reshape(x, Cast(Shape(x))): only data propagation gives the output its static shape."""
    x = _input("x", ir.DataType.FLOAT, [2, 3, 4])
    shape = _node("Shape", [x], "shape")
    cast = _node("Cast", [shape.outputs[0]], "cast", to=ir.DataType.INT64)
    reshape = _node("Reshape", [x, cast.outputs[0]], "y")
    model = _model([x], [shape, cast, reshape])
    infer_shapes(model)
    assert list(reshape.outputs[0].shape or ()) == [2, 3, 4]
    assert [n.op_type for n in model.graph] == ["Shape", "Cast", "Reshape"]  # the bound is gone again
    assert reshape.inputs[1] is cast.outputs[0]


def test_a_declared_2_to_31_vector_costs_no_memory() -> None:
    """A run-time vector declared 2^31 - 1 long, cast and fed as a Reshape's shape: ONNX's data
    propagation would hold it as 2^31 entries, Reshape's inference would build a rank-2^31 shape
    (both gigabytes in C++). Found by the coverage fuzzer (fuzz_corpus/coverage-tflite/long-vector-*)."""
    x = _input("x", ir.DataType.FLOAT, [2, 3])
    vector = _input("v", ir.DataType.INT32, [2**31 - 1])
    cast = _node("Cast", [vector], "cast", to=ir.DataType.INT64)
    reshape = _node("Reshape", [x, cast.outputs[0]], "y")
    model = _model([x, vector], [cast, reshape])
    before = _peak_mb()
    infer_shapes(model)
    assert _peak_mb() - before < 100
    assert cast.outputs[0].dtype == ir.DataType.INT64 and list(cast.outputs[0].shape or ()) == [2**31 - 1]
    assert [n.op_type for n in model.graph] == ["Cast", "Reshape"]


def test_a_long_constant_vector_keeps_propagation() -> None:
    """Constants are read as their values (integer ones only): a 6625-entry per-channel scale, as in
    PP-OCRv4 rec's last layer, does not turn propagation off."""
    x = _input("x", ir.DataType.FLOAT, [2, 3, 4])
    scale = ir.Value(name="scale", const_value=ir.tensor(np.ones(6625, np.float32)))
    shape = _node("Shape", [x], "shape")
    cast = _node("Cast", [shape.outputs[0]], "cast", to=ir.DataType.INT64)
    reshape = _node("Reshape", [x, cast.outputs[0]], "y")
    reduce = _node("ReduceMax", [scale], "m", keepdims=1)
    mul = _node("Mul", [reshape.outputs[0], reduce.outputs[0]], "z")
    model = _model([x], [shape, cast, reshape, reduce, mul])
    model.graph.register_initializer(scale)
    infer_shapes(model)
    assert list(reshape.outputs[0].shape or ()) == [2, 3, 4]


def test_data_propagation_runs_only_where_a_shape_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph whose shape operands are all constants is inferred once, without propagation (most
    quantized CNNs: the second inference cost a ResNet-50 conversion 3-4 ms); one that reads a
    shape as data is inferred again with it."""
    import onnx

    calls: list[bool] = []
    real = onnx.shape_inference.infer_shapes

    def counted(proto: onnx.ModelProto, **kwargs: bool) -> onnx.ModelProto:
        calls.append(kwargs.get("data_prop", False))
        return real(proto, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counted)
    x = _input("x", ir.DataType.FLOAT, [2, 3, 4])
    static = _node("Reshape", [x, ir.Value(name="to", const_value=ir.tensor(np.array([6, 4], np.int64)))], "y")
    model = _model([x], [static])
    model.graph.register_initializer(static.inputs[1])  # type: ignore[arg-type]
    infer_shapes(model)
    assert calls == [False] and list(static.outputs[0].shape or ()) == [6, 4]
    calls.clear()
    x = _input("x", ir.DataType.FLOAT, [2, 3, 4])
    shape = _node("Shape", [x], "shape")
    reshape = _node("Reshape", [x, shape.outputs[0]], "z")
    infer_shapes(_model([x], [shape, reshape]))
    assert calls == [False, True]
