"""Every Paddle fixture: converts, passes onnx.checker and the QDQ contract, fuses on ORT CPU,
and matches Paddle's own outputs (recorded in reference.npz by fixtures/paddle/make_fixtures.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

from .conftest import PADDLE_FIXTURES, paddle_fixtures

# Quantized Conv/MatMul/Gemm that must stay float, with the reason (DESIGN item 5/6): their output
# reaches the next quantization only through an inexact float op in the source.
EXPECTED_FLOAT = {
    # the first two convs feed a residual Add (and a Relu shared with it) in float
    "ptq_cnn_fakeops_legacy": 2,
    "ptq_cnn_fakeops_pir": 2,  # the same program translated to PIR
    # the same for onnx_format=True read as Paddle runs it (observer-only Q/DQ are identity)
    "ptq_cnn_legacy": 2,
    # rank-3 Linear outputs go through a float bias Add into reshape/softmax/LayerNorm; the attention
    # q@k^T and attn@v MatMuls read float activations (measured: 4 QGemm of 13, see the note)
    "qat_transformer_pir": 9,
}
# Measured figures of fixtures that do not meet the <= 1 LSB bar yet (see the closing note).
BELOW_BAR = {
    "ptq_cnn_legacy+quantize": "measured max 8.1 LSB, top-1 0.90: 7 observer-only points (BN/residual/pool outputs) "
    "rounded here, float in Paddle's executor; the price of full int8, reported by verify",
}
# Every fixture as Paddle runs it; the onnx_format=True PTQ one also with its observers made real.
CASES = [*paddle_fixtures(), "ptq_cnn_legacy+quantize"]


@pytest.fixture(scope="module", params=CASES)
def converted(request):  # type: ignore[no-untyped-def]
    case = request.param
    name, _, observers = case.partition("+")
    return case, qonvert.convert(PADDLE_FIXTURES / name, observers=observers or "skip")


def test_checker_and_contract(converted) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    onnx.checker.check_model(result.model, full_check=True)
    assert check_canonical(result.model) == [], name
    assert result.opset >= 13
    inputs = [i.name for i in result.model.graph.input]
    assert inputs == ["x"], "graph inputs keep the source names"


def test_ort_fusion(converted) -> None:  # type: ignore[no-untyped-def]
    from qonvert.runtime.ort import fusion_report

    name, result = converted
    report = fusion_report(result.model)
    assert report.quantized_in_source > 0
    assert report.fused == report.quantized_in_source - EXPECTED_FLOAT.get(name, 0), report.integer


def _fidelity(case: str, result: qonvert.ConvertResult) -> qonvert.VerifyReport:
    name = case.partition("+")[0]
    return qonvert.verify(PADDLE_FIXTURES / name, result.model, reference=PADDLE_FIXTURES / name / "reference.npz", fusion=False)


def test_matches_paddle_within_one_lsb(converted, request) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    if name in BELOW_BAR:
        request.applymarker(pytest.mark.xfail(strict=True, reason=BELOW_BAR[name]))
    report = _fidelity(name, result)
    assert report.samples >= 20
    for out in report.outputs:
        assert out.max_diff_lsb <= 1.0 + 1e-3, out
        assert out.top1_agreement in (None, 1.0), out


def test_reference_is_not_degenerate(converted) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    report = _fidelity(name, result)
    for out in report.outputs:
        assert out.levels >= 20, f"{name}: reference spans only {out.levels} quantization levels"
        assert out.cosine > 0.99, out


@pytest.mark.paddle
@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")
@pytest.mark.parametrize("name", [n for n in paddle_fixtures() if n.endswith("_legacy") and n not in BELOW_BAR])
def test_live_paddle_reference(name: str) -> None:
    """Paddle run now (its static executor on the ProgramDesc program) on fresh inputs."""
    result = qonvert.convert(PADDLE_FIXTURES / name)
    report = qonvert.verify(PADDLE_FIXTURES / name, result.model, samples=20, fusion=False)
    assert report.equivalent, report.as_dict()


@pytest.mark.paddle
@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")
@pytest.mark.parametrize("case", [n for n in paddle_fixtures() if n.endswith("_legacy")] + ["ptq_cnn_legacy+quantize"])
def test_every_op_within_one_step_of_paddle(case: str, request: pytest.FixtureRequest) -> None:
    """Per layer: Paddle's executor fetches every quantized tensor (quantize_linear's codes, a fake
    quantize-dequantize's real value quantized at its Q), and each ONNX segment, fed Paddle's own
    inputs, lands within 1 step, also where end to end misses (the observer-made model)."""
    if case == "ptq_cnn_legacy+quantize":  # the observer mode's own departure from Paddle, located
        # The observer points are real Q/DQ here but identity in Paddle: batch_norm_1's observer
        # scale spans +-4.6 while verify's inputs drive it to +-10, so the ONNX Add reads clipped
        # inputs and Paddle's does not. Per layer names that Add first (measured 82-88 steps).
        reason = "observers made real clip where Paddle does not: the residual Add after a clipped observer point, 82-88 steps"
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    name, _, observers = case.partition("+")
    result = qonvert.convert(PADDLE_FIXTURES / name, observers=observers or "skip")
    report = qonvert.verify(PADDLE_FIXTURES / name, result.model, samples=10, per_layer=True, fusion=False)
    assert report.layers and len(report.layers) >= 2
    worst = max(report.layers, key=lambda layer: layer.max_steps)
    assert worst.max_steps <= 1, [layer.as_dict() for layer in report.layers]


@pytest.mark.paddle
@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")
def test_per_layer_on_pir_is_one_clear_error() -> None:
    result = qonvert.convert(PADDLE_FIXTURES / "qat_cnn_perchannel_pir")
    with pytest.raises(qonvert.QonvertError, match="cannot fetch its intermediate values; use the ProgramDesc"):
        qonvert.verify(PADDLE_FIXTURES / "qat_cnn_perchannel_pir", result.model, samples=2, per_layer=True)


def test_pir_and_programdesc_give_one_graph() -> None:
    a = qonvert.convert(PADDLE_FIXTURES / "qat_cnn_perchannel_pir").model
    b = qonvert.convert(PADDLE_FIXTURES / "qat_cnn_perchannel_legacy").model
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    wa = sorted(onnx.numpy_helper.to_array(i).tobytes() for i in a.graph.initializer if i.data_type == onnx.TensorProto.INT8)
    wb = sorted(onnx.numpy_helper.to_array(i).tobytes() for i in b.graph.initializer if i.data_type == onnx.TensorProto.INT8)
    assert wa == wb and len(wa) > 0
    assert np.isclose(len(a.graph.initializer), len(b.graph.initializer))


def test_float_parts_alone_are_float_rounding() -> None:
    """The float tail (the fc after the last quantized tensor), computed from Paddle's own
    quantized tensors, is float rounding (measured 4.8e-07); end to end the per-layer steps carried
    into it give 0.015 on logits spanning 8.5."""
    name = "ptq_cnn_fakeops_legacy"
    result = qonvert.convert(PADDLE_FIXTURES / name)
    report = qonvert.verify(PADDLE_FIXTURES / name, result.model, samples=5, per_layer=True, fusion=False)
    (remark,) = [r for r in report.remarks if "set to the reference's own" in r]
    assert float(remark.rsplit(" ", 1)[1]) < 1e-5, remark
    assert report.outputs[0].max_abs_diff > 1e-3 and report.outputs[0].ref_range > 5, report.outputs[0]
