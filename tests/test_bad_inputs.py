"""Bad input: one-line QonvertError naming the file/op/tensor, CLI exit 2, no output file left."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import QonvertError

PIR = "qat_cnn_perchannel_pir"
LEGACY = "qat_cnn_perchannel_legacy"


def _expect_error(model: Path, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "out.onnx"
    with pytest.raises(QonvertError) as info:
        qonvert.convert(model, out)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert main(["convert", str(model), "-o", str(out)]) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.onnx")], "temporary file left behind"


def _edit_pir(model_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = model_dir / "model.json"
    doc = json.loads(path.read_text())
    edit(doc["program"]["regions"][0]["blocks"][0]["ops"])
    path.write_text(json.dumps(doc))


def test_missing_params(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(LEGACY)
    (d / "model.pdiparams").unlink()
    _expect_error(d, tmp_path, "no .pdiparams")


@pytest.mark.parametrize("name", [PIR, LEGACY])
def test_truncated_params(fixture_copy, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(name)
    data = (d / "model.pdiparams").read_bytes()
    (d / "model.pdiparams").write_bytes(data[: len(data) // 2])
    _expect_error(d, tmp_path, "model.pdiparams", "truncated")


def test_corrupt_json(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)
    (d / "model.json").write_text('{"program": {"regions": [')
    _expect_error(d, tmp_path, "model.json")


def test_corrupt_pdmodel(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(LEGACY)
    (d / "model.pdmodel").write_bytes(b"\xff\xff\xff\xff garbage")
    _expect_error(d, tmp_path, "model.pdmodel")


def test_unknown_ops_listed_at_once(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)

    def rename(ops):  # type: ignore[no-untyped-def]
        kinds = [o for o in ops if o["#"] in ("1.relu", "1.conv2d")]
        kinds[0]["#"], kinds[-1]["#"] = "1.frobnicate", "1.wibble"

    _edit_pir(d, rename)
    _expect_error(d, tmp_path, "frobnicate", "wibble", "2 unsupported")


def test_quant_axis_out_of_range(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)

    def bad_axis(ops):  # type: ignore[no-untyped-def]
        for o in ops:
            if o["#"] == "1.dequantize_linear":
                for a in o["A"]:
                    if a["N"] == "quant_axis" and a["AT"]["D"] == 0:
                        a["AT"]["D"] = 7
                        return

    _edit_pir(d, bad_axis)
    _expect_error(d, tmp_path, "quant_axis 7")


def _with_weight_scale(d: Path, value: float) -> Path:
    import numpy as np

    from qonvert.converters.paddle import load
    from qonvert.converters.paddle.params import read_params
    from tests.pdparams import write_params

    names = sorted(load(d).constants)  # all parameters (no fake ops to add computed scales)
    params = read_params(d / "model.pdiparams", names)
    victim = next(n for n in names if "scale" in n and params[n].size > 1)  # a conv's per-channel weight scale
    params[victim] = np.full_like(params[victim], value)
    write_params(d / "model.pdiparams", params)
    return d


@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_bad_scale(fixture_copy, tmp_path: Path, value: float) -> None:  # type: ignore[no-untyped-def]
    _expect_error(_with_weight_scale(fixture_copy(LEGACY), value), tmp_path, "scale")


def test_zero_weight_scale_gives_zero_weights(fixture_copy) -> None:  # type: ignore[no-untyped-def]
    """An all-zero weight scale is no bad input: Paddle's dequantize_linear gives zero weights
    (q * 0 / bnt), the conv then adds only its bias, and so does the converted model (a float
    conv on the dequantized activation; it was an internal error)."""
    d = _with_weight_scale(fixture_copy(LEGACY), 0.0)
    result = qonvert.convert(d)
    report = qonvert.verify(d, result.model, samples=3, fusion=False)
    assert report.equivalent and report.outputs[0].levels > 8, report.outputs[0]


def test_nonexistent_path(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nothing", tmp_path, "no such file")


# -- TFLite: corrupt flatbuffers, each edited at the byte the schema puts the field at ----------
TFLITE = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "small_cnn_int8.tflite"


def _tflite_copy(tmp_path: Path) -> tuple[Path, bytearray]:
    data = bytearray(TFLITE.read_bytes())
    return tmp_path / "bad.tflite", data


def _tensor(data: bytearray, want):  # type: ignore[no-untyped-def]
    """The first tensor of subgraph 0 for which `want(tensor)` holds (found through the schema)."""
    import tflite

    sub = tflite.Model.GetRootAs(bytes(data), 0).Subgraphs(0)
    return next(sub.Tensors(i) for i in range(sub.TensorsLength()) if want(sub.Tensors(i)))


def test_tflite_truncated(tmp_path: Path) -> None:
    path, data = _tflite_copy(tmp_path)
    path.write_bytes(bytes(data[: len(data) // 3]))
    _expect_error(path, tmp_path, "bad.tflite", "truncated or corrupt")


def test_tflite_wrong_identifier(tmp_path: Path) -> None:
    path, data = _tflite_copy(tmp_path)
    data[4:8] = b"XXXX"
    path.write_bytes(bytes(data))
    _expect_error(path, tmp_path, "bad.tflite", "file identifier")


def test_tflite_buffer_out_of_range(tmp_path: Path) -> None:
    import tflite

    path, data = _tflite_copy(tmp_path)
    model = tflite.Model.GetRootAs(bytes(data), 0)
    buf = next(model.Buffers(i) for i in range(model.BuffersLength()) if model.Buffers(i).DataLength() > 16)
    start = buf._tab.Vector(buf._tab.Offset(4))
    data[start - 4 : start] = (len(data) * 2).to_bytes(4, "little")  # the data vector's length prefix
    path.write_bytes(bytes(data))
    _expect_error(path, tmp_path, "bad.tflite", "past the file end")


@pytest.mark.parametrize("bad", [0.0, float("nan")])
def test_tflite_bad_scale(tmp_path: Path, bad: float) -> None:
    import struct

    path, data = _tflite_copy(tmp_path)
    tensor = _tensor(data, lambda t: t.Quantization() is not None and t.Quantization().ScaleLength() == 1)
    q = tensor.Quantization()
    start = q._tab.Vector(q._tab.Offset(8))  # QuantizationParameters.scale
    data[start : start + 4] = struct.pack("<f", bad)
    path.write_bytes(bytes(data))
    _expect_error(path, tmp_path, tensor.Name().decode(), "scale must be finite and > 0")


def test_tflite_quantized_dimension_out_of_range(tmp_path: Path) -> None:
    path, data = _tflite_copy(tmp_path)
    tensor = _tensor(data, lambda t: t.Quantization() is not None and t.Quantization().QuantizedDimension() == 3)
    q = tensor.Quantization()
    at = q._tab.Pos + q._tab.Offset(16)  # QuantizationParameters.quantized_dimension
    data[at : at + 4] = (7).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    _expect_error(path, tmp_path, tensor.Name().decode(), "quantized_dimension 7 out of range")


def test_tflite_unknown_opcode(tmp_path: Path) -> None:
    import tflite

    path, data = _tflite_copy(tmp_path)
    code = tflite.Model.GetRootAs(bytes(data), 0).OperatorCodes(0)
    at = code._tab.Pos + code._tab.Offset(10)  # OperatorCode.builtin_code
    assert code._tab.Offset(10), "fixture stores builtin_code"
    data[at : at + 4] = (4000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    _expect_error(path, tmp_path, "UNKNOWN_OPCODE_4000", "unsupported")


@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")
def test_per_layer_needs_a_runtime_with_intermediates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Paddle's executor cannot fetch a PIR program's intermediate values: one line, exit 2."""
    paddle_model = Path(__file__).resolve().parents[1] / "fixtures" / "paddle" / PIR
    out = tmp_path / "m.onnx"
    qonvert.convert(paddle_model, out)
    assert main(["verify", str(paddle_model), str(out), "--per-layer", "--samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot fetch its intermediate values" in err and "Traceback" not in err, err
