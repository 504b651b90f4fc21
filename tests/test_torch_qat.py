"""QAT models prepared in memory and not converted (eager prepare_qat with the default QAT
qconfig, FX prepare_qat_fx, PT2E prepare_qat_pt2e), and calibrated PTQ models likewise: qonvert
converts each through PyTorch's own convert of a copy (the observers' scales exactly as PyTorch
computes them), leaves the user's module untouched, and verifies against that int8 model, end to
end and per layer."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import QonvertError
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime.ort import fusion_report

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torch"

# (model, mode, engine): measured max LSB end to end on 20 inputs (per layer: every op within 1 step)
MEASURED = {
    ("eager", "eager", "x86"): 1.0,
    ("eager", "eager", "qnnpack"): 1.0,
    ("resnet", "fx", "x86"): 5.0,  # 4 at stop 17; 5 on this AVX512 machine, same code (PyTorch's fbgemm reference moves)
    ("mobilenet", "fx", "x86"): 7.0,
    ("audio", "fx", "qnnpack"): 1.0,
    ("resnet", "pt2e", "x86"): 5.0,
    ("mobilenet", "pt2e", "x86"): 2.0,
    ("transformer", "pt2e", "x86"): 1.0,
    ("decoder", "pt2e", "x86"): 1.0,
}
# Float on ORT CPU, as in the source: XNNPACK quantizes a ConvTranspose weight per input channel
# (no integer kernel), and leaves the attention's first MatMul operand float.
FLOAT_KERNELS = {"decoder": 2, "transformer": 1}
TOP1_BELOW = {("mobilenet", "pt2e", "x86"): 0.9}  # measured top-1 agreement (2 LSB apart)


def _make_fixtures() -> Any:
    """fixtures/torch/make_fixtures.py, under its own name (fixtures/paddle has a make_fixtures
    too), importable so that its modules pickle."""
    if "torch_make_fixtures" not in sys.modules:
        spec = importlib.util.spec_from_file_location("torch_make_fixtures", FIXTURES / "make_fixtures.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["torch_make_fixtures"] = module
        spec.loader.exec_module(module)
    return sys.modules["torch_make_fixtures"]


def _qat(name: str, mode: str, engine: str) -> tuple[Any, tuple[Any, ...]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _make_fixtures().qat_module(name, mode, engine)  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=sorted(MEASURED), ids=lambda key: "_".join(key))
def verified(request):  # type: ignore[no-untyped-def]
    name, mode, engine = request.param
    module, example = _qat(name, mode, engine)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = qonvert.convert(module, example_inputs=example, engine=engine)
        report = qonvert.verify(module, result.model, samples=20, per_layer=True, example_inputs=example, engine=engine)
    return request.param, module, before, result, report


def test_contract_and_fusion(verified) -> None:  # type: ignore[no-untyped-def]
    (name, _, _), _, _, result, _ = verified
    assert check_canonical(result.model) == []
    fusion = fusion_report(result.model)
    assert fusion.quantized_in_source - fusion.fused == FLOAT_KERNELS.get(name, 0), fusion.float_ops


def test_matches_pytorch_convert(verified) -> None:  # type: ignore[no-untyped-def]
    key, _, _, _, report = verified
    out = report.outputs[0]
    assert out.levels >= 16, out  # the outputs span many levels, so the bar means something
    assert out.max_diff_lsb <= MEASURED[key] + 1e-3, out
    assert out.top1_agreement is None or out.top1_agreement >= TOP1_BELOW.get(key, 1.0), out
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers if layer.max_steps > 1]
    assert "PyTorch's own convert of the QAT module" in report.remarks[0]


def test_end_to_end_within_one_lsb(verified, request) -> None:  # type: ignore[no-untyped-def]
    key, _, _, _, report = verified
    if MEASURED[key] > 1:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"measured max {MEASURED[key]} LSB end to end; per layer within 1 step"))
    out = report.outputs[0]
    assert out.max_diff_lsb <= 1.0 + 1e-3 and out.top1_agreement in (None, 1.0), out


def test_user_module_untouched(verified) -> None:  # type: ignore[no-untyped-def]
    """Converting and verifying copies the module: no observer update, no BN folding in place."""
    _, module, before, _, _ = verified
    after = module.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_calibrated_ptq_module() -> None:
    """Observers only (prepare_fx, calibrated): PyTorch's convert gives the same int8 model."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = "qnnpack"
    model, shape = _make_fixtures().calibrated_float("audio")
    example = (torch.randn(*shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("qnnpack"), example)
        with torch.no_grad():
            for _ in range(8):
                prepared(torch.randn(*shape))
        result = qonvert.convert(prepared, example_inputs=example, engine="qnnpack")
        report = qonvert.verify(prepared, result.model, samples=20, example_inputs=example, engine="qnnpack")
    assert report.equivalent and report.outputs[0].levels >= 16, report.outputs[0]
    assert "calibrated module" in report.remarks[0]


def test_uncalibrated_observers_refused() -> None:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    model, shape = _make_fixtures().calibrated_float("audio")
    example = (torch.randn(*shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example)
    with pytest.raises(QonvertError, match="has seen no data"):
        qonvert.convert(prepared, example_inputs=example)


def test_pickled_converted_module_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """torch.save of a whole converted module: PyTorch's quantized modules come back from
    torch.load without their submodule table, so even a trusted pickle is one error line, not a
    traceback. (A prepared QAT module does not pickle at all: its qconfig holds local functions.)"""
    from torch.ao.quantization import convert

    module, _ = _qat("eager", "eager", "x86")
    path = tmp_path / "qat.pt"
    torch.save(convert(module.eval()), str(path))
    args = ["convert", str(path), "-o", str(tmp_path / "qat.onnx"), "--trust-pickle", "--input-shape", "x=1,3,32,32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the unpickled module is broken" in err and "torch.jit.save" in err and "Traceback" not in err, err
    assert not (tmp_path / "qat.onnx").exists()
