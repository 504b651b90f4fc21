"""TFLite models with trained weights nobody here made (fixtures/tflite/real/make_real.py): MediaPipe's
face landmark, face detection, iris and hand landmark models, quantized by LiteRT's own quantizer
(ai-edge-quantizer) in its static int8, int16x8, per-tensor, dynamic and weight-only recipes. Each
file's operator codes are read as LiteRT reads them, each converts, passes the contract and is
verified against LiteRT run live on the committed face images."""

from __future__ import annotations

from pathlib import Path

import pytest
import tflite

import qonvert
from qonvert.converters import load_source
from qonvert.opsets.canonical import check_canonical

pytest.importorskip("ai_edge_litert")
pytestmark = pytest.mark.slow

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "real"
SIZE = {"face_landmark": 192, "face_detection_short_range": 128, "iris_landmark": 64, "hand_landmark_lite": 224}

# static fixture: measured max LSB end to end per output (2026-12-06, ORT 1.32 CPU vs LiteRT's
# default kernels, 16 images), per-layer cut points. Every op is within 1 step per layer; the
# end-to-end figures past 1 LSB are those steps carried through the layers after them (the face
# score `conv2d_31` spans only 3-5 levels: every image is a face).
STATIC: dict[str, tuple[list[float], int]] = {
    "face_landmark_static_wi8_ai8": ([1.0, 6.0], 99),
    "face_landmark_static_wi8_ai8_tensor": ([2.0, 3.0], 99),
    "face_landmark_static_wi8_ai16": ([3.0, 28.0], 99),
    "face_detection_short_range_static_wi8_ai8": ([10.0, 2.0], 92),
    "face_detection_short_range_static_wi8_ai16": ([50.0, 121.0], 92),
    "iris_landmark_static_wi8_ai8": ([0.0, 1.0], 169),
}


def _model(name: str) -> str:
    return next(model for model in SIZE if name.startswith(model))


def _inputs(name: str) -> Path:
    return REAL / f"faces_{SIZE[_model(name)]}.npz"


def test_operator_codes_are_read_as_litert_reads_them() -> None:
    """ai-edge-quantizer writes the codes it adds with deprecated_builtin_code 0 (the `tflite`
    package's BuiltinCode() then answers 0, ADD): qonvert's op list is LiteRT's, op for op."""
    from ai_edge_litert.interpreter import Interpreter

    name = "face_landmark_static_wi8_ai8"
    model = tflite.Model.GetRootAsModel(bytearray((REAL / f"{name}.tflite").read_bytes()), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    assert any(c.DeprecatedBuiltinCode() == 0 and c.BuiltinCode() == 0 for c in codes)  # the helper's reading: ADD
    litert = [op["op_name"] for op in Interpreter(model_path=str(REAL / f"{name}.tflite"))._get_ops_details()]
    assert "QUANTIZE" in litert and "DEQUANTIZE" in litert
    assert [op.type for op in load_source(REAL / f"{name}.tflite").ops] == litert


@pytest.mark.parametrize("name", sorted(STATIC))
def test_static_recipes_match_litert(name: str) -> None:
    measured, cuts = STATIC[name]
    result = qonvert.convert(REAL / f"{name}.tflite")
    assert check_canonical(result.model) == []
    report = qonvert.verify(REAL / f"{name}.tflite", result.model, inputs=_inputs(name), per_layer=True)
    assert report.layers is not None and len(report.layers) == cuts
    assert max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers if layer.max_steps > 1]
    assert any("given as float: quantized" in r for r in report.remarks)  # the images, quantized as LiteRT's input is
    assert len(report.outputs) == len(measured)
    for out, bar in zip(report.outputs, measured, strict=True):
        assert out.max_diff_lsb <= bar, out
    assert max(o.levels for o in report.outputs) >= 80  # landmarks / boxes span many levels


def test_weight_only_recipe_is_float_exact() -> None:
    """weight_only_wi8_afp32: int8 weights dequantized, float compute on both sides."""
    name = "hand_landmark_lite_weight_only_wi8_afp32"
    result = qonvert.convert(REAL / f"{name}.tflite")
    assert check_canonical(result.model) == []
    report = qonvert.verify(REAL / f"{name}.tflite", result.model, inputs=_inputs(name))
    landmarks = report.outputs[0]
    assert landmarks.ref_range > 100 and landmarks.max_abs_diff <= 1e-3, landmarks  # pixels, over the 224 image


def test_dynamic_recipe_measured() -> None:
    """dynamic_wi8_afp32: LiteRT quantizes each conv's input on the fly (hybrid kernels), and the
    converted model does the same (tflite/hybrid.py). Against LiteRT's default (XNNPACK) kernels,
    whose own on-the-fly quantization rounds differently, measured 9.45 px on landmarks spanning
    219 px (31.1 px with float activations); the figure is marked."""
    name = "hand_landmark_lite_dynamic_wi8_afp32"
    result = qonvert.convert(REAL / f"{name}.tflite")
    assert check_canonical(result.model) == []
    report = qonvert.verify(REAL / f"{name}.tflite", result.model, inputs=_inputs(name))
    landmarks = report.outputs[0]
    assert landmarks.ref_range > 100 and landmarks.max_abs_diff <= 9.46, landmarks
