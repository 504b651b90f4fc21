"""--target tensorrt: what TensorRT would reject (asymmetric or uint8 activations, int32 biases,
weight codes of -128, per-channel axes off the output channel) is listed; the exact fixes are made
on request of the target, the lossy ones only with symmetric=True, and the result is verified
against the source with the cost measured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import qonvert
from qonvert.cli import main
from qonvert.opsets.passes import RewritePass, run_passes
from qonvert.runtime.ort import run, session
from qonvert.targets.tensorrt import ClipWeightCodes, FloatBiases, SymmetricActivations, findings

ROOT = Path(__file__).resolve().parents[1] / "fixtures"
PADDLE_QAT = ROOT / "paddle" / "qat_cnn_perchannel_legacy"  # symmetric int8 throughout
TORCH_X86 = ROOT / "torch" / "pt2" / "resnet_x86.pt2"  # uint8 activations at zero points != 0


def _dq_inputs(model: onnx.ModelProto) -> list[np.dtype]:
    dtypes = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.data_type) for i in model.graph.initializer}
    return [dtypes[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]


def test_findings_name_what_tensorrt_rejects() -> None:
    kinds = {f.kind for f in findings(qonvert.convert(TORCH_X86).model)}
    assert {"asymmetric", "bias", "weight_range"} <= kinds
    assert {f.kind for f in findings(qonvert.convert(PADDLE_QAT).model)} == {"bias", "float_layer", "placement"}


def test_symmetric_model_needs_only_exact_changes() -> None:
    result = qonvert.convert(PADDLE_QAT, target="tensorrt")
    assert result.canonical is not None
    assert not any(n.op_type == "DequantizeLinear" and n.input[0].endswith("bias_quantized") for n in result.model.graph.node)
    assert all(dtype == np.int8 for dtype in _dq_inputs(result.model))
    assert {f.kind for f in findings(result.model)} <= {"float_layer", "placement"}
    report = qonvert.verify(PADDLE_QAT, result.model, reference=PADDLE_QAT / "reference.npz", fusion=False)
    assert report.equivalent and report.outputs[0].levels >= 8, report.outputs[0]


def test_asymmetric_model_is_refused_with_the_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["convert", str(TORCH_X86), "-o", str(out), "--target", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "not TensorRT-ready" in err and "--symmetric" in err and "asymmetric:" in err and "Traceback" not in err, err
    assert not out.exists()


# Measured: x86 uint8 activations re-quantized to int8 around zero lose one bit where the range
# was one-sided (ReLU outputs), so the output moves from 11.9 to 47.7 canonical LSB, top-1 kept.
SYMMETRIC_COST_LSB = 48.0


def test_symmetric_re_derivation_verified_with_its_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["convert", str(TORCH_X86), "-o", str(out), "--target", "tensorrt", "--symmetric", "--verify"]) in (0, 1)
    printed = capsys.readouterr().out
    assert "cost of the symmetric re-derivation" in printed and "top-1 1.0 -> 1.0" in printed, printed
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert findings(model) == [] and all(dtype == np.int8 for dtype in _dq_inputs(model))
    canonical = qonvert.convert(TORCH_X86).model
    lsb = qonvert.verify(TORCH_X86, canonical, samples=20, fusion=False).outputs[0].lsb
    after = qonvert.verify(TORCH_X86, model, samples=20, fusion=False).outputs[0]
    assert after.max_abs_diff / lsb <= SYMMETRIC_COST_LSB and after.top1_agreement == 1.0, after


def test_symmetric_without_its_target_names_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.onnx"
    assert main(["convert", str(TORCH_X86), "-o", str(out), "--speed", "--symmetric"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "qonvert: error: symmetric is an option of target 'tensorrt' (--target tensorrt), not of target 'ort-speed'", err
    assert not out.exists()


def test_targets_table_matches_its_names() -> None:
    from qonvert.targets import TARGET_NAMES, all_targets

    assert tuple(t.name for t in all_targets()) == TARGET_NAMES


@pytest.mark.parametrize(("make", "count"), [(lambda: FloatBiases(), "bias"), (lambda: SymmetricActivations(lossy=False), "restored")])
def test_exact_pass_alone_computes_the_same(make: Callable[[], RewritePass], count: str) -> None:
    """Each exact TensorRT pass, run alone under a PassManager on the canonical model of the Paddle
    QAT net (int32 biases) or the x86 ResNet (uint8 activations), changes the model and not what it
    computes."""
    canonical = qonvert.convert(PADDLE_QAT if count == "bias" else TORCH_X86).model
    changed = ir.from_proto(canonical)
    counts = run_passes(changed, [make()])
    assert counts[count] > 0, counts
    derived = ir.to_proto(changed)
    feeds = qonvert.api.random_inputs(canonical, 3)
    for before, after in zip(*([run(session(m, level="disabled"), feed) for feed in feeds] for m in (canonical, derived)), strict=True):
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)


def test_weight_code_clipping_alone() -> None:
    """ClipWeightCodes alone: a weight holding a -128 code (one planted in the Paddle QAT net's
    first conv) gets -127 there, and only there."""
    changed = ir.from_proto(qonvert.convert(PADDLE_QAT).model)
    dq = next(
        n for n in changed.graph if n.op_type == "DequantizeLinear" and n.inputs[0].const_value is not None and n.inputs[0].dtype == ir.DataType.INT8
    )
    codes = dq.inputs[0].const_value.numpy().copy()
    codes.flat[0] = -128
    dq.inputs[0].const_value = ir.Tensor(codes)
    assert run_passes(changed, [ClipWeightCodes()])["weights"] == 1
    clipped = dq.inputs[0].const_value.numpy()
    assert clipped.flat[0] == -127 and np.array_equal(clipped.flat[1:], codes.flat[1:])
