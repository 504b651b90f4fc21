"""The streamed ONNX writer (qonvert/onnx_file.py): the file it writes, one weight at a time, parses
as the very model that protobuf would have serialised whole, and ORT runs it alike."""

from __future__ import annotations

import io
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

import qonvert
from qonvert.converters import build, load_source
from qonvert.onnx_file import write_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = [FIXTURES / "tflite" / "mobilenet_v2_int8.tflite", FIXTURES / "paddle" / "qat_cnn_perchannel_legacy" / "model"]


def _run(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("source", MODELS, ids=lambda p: p.parent.name if p.name == "model" else p.stem)
def test_streamed_file_is_the_model(source: Path) -> None:
    model = build(load_source(source)).model
    whole = ir.to_proto(model)
    buffer = io.BytesIO()
    write_model(model, buffer)
    streamed = onnx.load_from_string(buffer.getvalue())
    assert len(whole.graph.initializer) > 20  # weights, biases, scales: all written as records
    assert list(streamed.graph.initializer) == list(whole.graph.initializer)  # every field, in order
    assert list(streamed.graph.node) == list(whole.graph.node)
    assert (list(streamed.graph.input), list(streamed.graph.output)) == (list(whole.graph.input), list(whole.graph.output))
    assert (streamed.opset_import, streamed.metadata_props) == (whole.opset_import, whole.metadata_props)
    # onnx_ir also writes a value_info for each initializer, which repeats the tensor's own type and dims
    left_out = [v for v in whole.graph.value_info if v not in streamed.graph.value_info]
    assert {v.name for v in left_out} <= {t.name for t in whole.graph.initializer}
    assert all(v in whole.graph.value_info for v in streamed.graph.value_info)
    assert ir.to_proto(model) == whole  # the IR is left as it was
    onnx.checker.check_model(streamed, full_check=True)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.uniform(-1, 1, [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]).astype(np.float32) for i in whole.graph.input}
    for a, b in zip(_run(buffer.getvalue(), feeds), _run(whole.SerializeToString(), feeds), strict=True):
        assert len(np.unique(a)) >= 8, np.unique(a)  # outputs that could tell two weight sets apart
        np.testing.assert_array_equal(a, b)


def test_release_is_called_while_writing() -> None:
    model = build(load_source(MODELS[0])).model
    calls: list[int] = []
    buffer = io.BytesIO()
    sizes: list[int] = []
    write_model(model, buffer, release=lambda nbytes: (calls.append(buffer.tell()), sizes.append(nbytes)))
    assert len(calls) == len(model.graph.initializers)  # once per weight, once it is written
    assert calls[-1] == len(buffer.getvalue())
    assert sum(sizes) >= sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def test_result_reads_the_written_model_back(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = qonvert.convert(MODELS[0], out)
    assert result._model is None  # nothing held after a conversion to a file
    assert result.model == onnx.load(str(out))
    in_memory = qonvert.convert(MODELS[0]).model  # no output: the same model, kept in memory
    assert list(in_memory.graph.node) == list(result.model.graph.node)
    assert list(in_memory.graph.initializer) == list(result.model.graph.initializer)


def test_every_kind_of_tensor_is_written_as_protobuf_would() -> None:
    """raw_data straight from the array (C order, little-endian), and onnx_ir's own serialisation
    where the bytes are not a plain array's: packed int4, bfloat16, strings."""
    rng = np.random.default_rng(1)
    arrays: dict[str, ir.TensorProtocol] = {
        "int8": ir.Tensor(rng.integers(-128, 128, (3, 5), dtype=np.int8)),
        "transposed": ir.Tensor(rng.standard_normal((4, 6)).astype(np.float32).T),  # not C-contiguous
        "scalar": ir.Tensor(np.float32(0.5)),
        "empty": ir.Tensor(np.zeros((0, 3), np.int64)),
        "float16": ir.Tensor(rng.standard_normal(7).astype(np.float16)),
        "int4": ir.Tensor(np.array([-8, 7, 1], dtype=np.int8), dtype=ir.DataType.INT4),
        "bfloat16": ir.Tensor(np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)),
        "strings": ir.StringTensor([b"a", b"bc"], shape=ir.Shape([2])),
    }
    graph = ir.Graph([], [], nodes=[], opset_imports={"": 21}, name="g")
    for name, tensor in arrays.items():
        graph.register_initializer(ir.Value(name=name, shape=tensor.shape, type=ir.TensorType(tensor.dtype), const_value=tensor))
    model = ir.Model(graph, ir_version=10)
    buffer = io.BytesIO()
    write_model(model, buffer)
    written = {t.name: t for t in onnx.load_from_string(buffer.getvalue()).graph.initializer}
    expected = {t.name: t for t in ir.to_proto(model).graph.initializer}
    assert list(written) == list(arrays)
    for name in arrays:
        assert written[name] == expected[name], name
        if name != "strings":
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(written[name]), arrays[name].numpy())
