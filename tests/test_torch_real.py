"""PyTorch models with trained weights nobody here made (fixtures/torch/real/make_real.py): MTCNN's
ONet from facenet-pytorch and resemblyzer's LSTM speaker encoder, quantized by PT2E (x86, XNNPACK),
FX (x86, qnnpack), eager dynamic quantization and torchao's quantize_. Each converts, passes the
contract, and is verified against PyTorch run live on the committed face crops and mel frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "torch" / "real"
FACE, VOICE = {"x": [1, 3, 48, 48]}, {"mels": [1, 160, 40]}

# fixture: (inputs, options, measured max LSB end to end per output (the softmax's reference spans
# only 2-6 levels: every crop is a face), per-layer cut points or None where every activation is
# quantized at run time)
CASES: dict[str, tuple[str, dict[str, Any], list[float], int | None]] = {
    "onet_pt2e_x86.pt2": ("faces", {}, [1.0, 1.0, 1.0], 6),
    # 3 LSB on the landmarks output, 0.94 top-1 on the box output: per layer every op within 1 step
    "onet_pt2e_xnnpack.pt2": ("faces", {}, [3.0, 1.0, 1.0], 14),
    "onet_fx_x86.pt": ("faces", {"engine": "x86", "input_shapes": FACE}, [1.0, 1.0, 6.0], 20),
    "onet_fx_qnnpack.pt": ("faces", {"engine": "qnnpack", "input_shapes": FACE}, [0.0, 0.0, 0.0], 20),
    "voice1_pt2e_xnnpack.pt2": ("mels", {}, [0.0], 4),
}
TOP1 = {"onet_pt2e_xnnpack.pt2": 0.9375}  # measured (one crop of 16 flips its argmax on a near tie)


def _feeds(kind: str) -> Path:
    return REAL / f"{kind}.npz"


def _verified(name: str, kind: str, options: dict[str, Any], per_layer: bool = True) -> tuple[Any, Any]:
    result = qonvert.convert(REAL / name, **options)
    checked = {k: v for k, v in options.items() if k != "input_shapes"}
    return result, qonvert.verify(REAL / name, result.model, inputs=_feeds(kind), per_layer=per_layer, **checked)


@pytest.mark.parametrize("name", sorted(CASES))
def test_static_routes_match_pytorch(name: str) -> None:
    kind, options, measured, cuts = CASES[name]
    result, report = _verified(name, kind, options)
    assert check_canonical(result.model) == []
    assert report.layers is not None and len(report.layers) == cuts
    assert max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers if layer.max_steps > 1]
    assert [o.name for o in report.outputs] and len(report.outputs) == len(measured)
    for out, bar in zip(report.outputs, measured, strict=True):
        assert out.max_diff_lsb <= bar + 1e-3, out
        assert out.top1_agreement is None or out.top1_agreement >= TOP1.get(name, 1.0), out
    assert max(o.levels for o in report.outputs) >= 14  # the boxes / landmarks span many levels


def test_onet_fx_keeps_pytorchs_prelu_multiplier() -> None:
    """PyTorch's quantized prelu scales the positive side by 1.0 in the slope's quantization: on
    ONet's trained slopes (all below 0.17 in dense5's PReLU) that is 0.16, and qonvert says so."""
    result = qonvert.convert(REAL / "onet_fx_x86.pt", engine="x86", input_shapes=FACE)
    notes = [r for r in result.remarks if "quantized prelu" in r]
    assert notes and any("0.16" in r for r in notes), result.remarks


@pytest.mark.parametrize("engine", ["x86", "qnnpack"])
def test_dynamic_lstm_speaker_encoder(engine: str) -> None:
    """Eager quantize_dynamic of resemblyzer's 3-layer LSTM: every step's h quantized at run time.
    Measured on the 8 utterances: max |diff| 0.0110 (x86) / 0.0037 (qnnpack) on unit-norm
    256-d embeddings whose elements span 0..0.3, cosine >= 0.9998: float accumulation (ORT) vs
    int32 (fbgemm / qnnpack) flips a step of h's dynamic quantization now and then, carried
    through 480 recurrent steps (no per-layer cut: every activation is quantized at run time)."""
    result, report = _verified(f"voice_dynamic_{engine}.pt", "mels", {"engine": engine, "input_shapes": VOICE}, per_layer=False)
    assert check_canonical(result.model) == []
    assert any(n.op_type == "Scan" for n in result.model.graph.node)
    weights = {i.name for i in result.model.graph.initializer if i.data_type == 3}  # int8
    assert len(weights) >= 7  # 3 layers x (w_ih, w_hh) + the Linear
    out = report.outputs[0]
    assert out.max_abs_diff <= {"x86": 0.0111, "qnnpack": 0.0038}[engine], out
    assert out.cosine >= 0.9998, out
    assert out.ref_range > 0.25, out  # the embeddings' elements span 0..0.3


def test_pt2e_dynamic_linear_after_float_lstm() -> None:
    """XNNPACK's dynamic config: the Linear's input quantized at run time (choose_qparams), after
    the float LSTM layer. Measured: 0.00058 off on the 0..0.3 normalised embedding."""
    result, report = _verified("voice1_pt2e_xnnpack_dyn.pt2", "mels", {}, per_layer=False)
    assert check_canonical(result.model) == []
    out = report.outputs[0]
    assert out.max_abs_diff <= 0.0006 and out.cosine >= 0.99999 and out.ref_range > 0.25, out


def test_torchao_onet_matches_torchao() -> None:
    """quantize_(Int8DynamicActivationInt8WeightConfig) on ONet's Linears: torchao's per-token codes
    exact per layer, the outputs to float rounding."""
    result, report = _verified("onet_torchao_int8dyn.pt2", "faces", {})
    assert check_canonical(result.model) == []
    assert report.layers and len(report.layers) == 4 and all(layer.max_steps == 0 for layer in report.layers)
    ranges = [o.ref_range for o in report.outputs]
    assert max(ranges) > 0.5, ranges
    assert all(o.max_abs_diff <= 1e-5 * max(o.ref_range, 1.0) for o in report.outputs), report.outputs
