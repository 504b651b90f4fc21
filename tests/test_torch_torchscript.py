"""TorchScript archives (torch.jit.trace of eager- and FX-converted quantized models, x86 and
qnnpack engines; fixtures/torch/make_fixtures.py): each converts from the archive, its input
shapes and its engine (torch.jit.load repacks weights for the engine active at load time, and the
engines round differently), passes the contract, fuses on ORT CPU, and matches the archive run by
PyTorch, end to end and per layer (qonvert runs the archive's graph op by op for both shapes and
intermediates)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import QonvertError
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime.ort import fusion_report

torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torch" / "ts"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.pt"))
IMAGE = [1, 3, 32, 32]
SHAPES = {"resnet": IMAGE, "mobilenet": IMAGE, "audio": [1, 1, 400], "decoder": [1, 8, 8, 8], "eager": IMAGE, "transformer": [1, 8, 32]}
# ConvTranspose: no integer kernel on ORT CPU; dynamic Linears: a run-time scale (weight-only
# MatMulNBits on ORT CPU, as for PT2E's dynamic quantization)
EXPECTED_FLOAT = {"decoder_fx_x86": 2, "decoder_fx_qnnpack": 2, "transformer_dynamic_x86": 7, "transformer_dynamic_qnnpack": 7}
# Dynamic quantization has float outputs and no fixed-scale tensor: its bar is a fraction of the
# output's range (measured, 20 inputs), as for the PT2E dynamic transformer.
DYNAMIC_RANGE_FRACTION = {"transformer_dynamic_x86": 0.0080, "transformer_dynamic_qnnpack": 0.0050}
# End to end above 1 LSB (measured, 20 inputs); per layer every op within 1 step (below), but one.
BELOW_BAR = {
    "mobilenet_fx_x86": 5.0,
    "resnet_fx_x86": 5.0,
    "resnet_fx_qnnpack": 2.0,
    "audio_fx_onednn": 2.0,
    "eager_onednn": 2.0,
    "mobilenet_fx_onednn": 7.0,
    "resnet_fx_onednn": 5.0,
}
# PyTorch's own x86 quantized::conv_transpose2d disagrees with its float definition (the same
# unpacked weights through F.conv_transpose2d: up to 10 steps off on 85% of values; qnnpack's
# kernel matches exactly), so the ONNX model, which computes the definition, cannot follow it.
KERNEL_DEVIATES = {"decoder_fx_x86": 255.0}


def _engine(name: str) -> str:
    return name.rsplit("_", 1)[1]


@pytest.fixture(scope="module", params=NAMES)
def converted(request):  # type: ignore[no-untyped-def]
    name = request.param
    return name, qonvert.convert(FIXTURES / f"{name}.pt", input_shapes={"x": SHAPES[name.split("_")[0]]}, engine=_engine(name))


def test_fixtures_exist() -> None:
    assert len(NAMES) == 16, NAMES  # 4 FX x 3 engines (decoder: 2), eager x 3, dynamic x 2


def test_checker_contract_and_fusion(converted) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    onnx.checker.check_model(result.model, full_check=True)
    assert check_canonical(result.model) == [], name
    assert [i.name for i in result.model.graph.input] == ["x"]  # TorchScript's x.1, named as the argument
    report = fusion_report(result.model)
    assert report.quantized_in_source - report.fused == EXPECTED_FLOAT.get(name, 0), (report.integer, report.float_ops)


def test_matches_pytorch(converted, request) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    if name in BELOW_BAR or name in KERNEL_DEVIATES:
        figure = BELOW_BAR.get(name) or KERNEL_DEVIATES[name]
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"measured max {figure} LSB"))
    report = qonvert.verify(FIXTURES / f"{name}.pt", result.model, samples=20, engine=_engine(name))
    if name in DYNAMIC_RANGE_FRACTION:
        out = report.outputs[0]
        assert out.levels >= 256 and out.max_abs_diff <= DYNAMIC_RANGE_FRACTION[name] * out.ref_range, out
        return
    for out in report.outputs:
        assert out.levels >= 8, out
        assert out.max_diff_lsb <= 1.0 + 1e-3, out
        assert out.top1_agreement in (None, 1.0), out


def test_every_op_within_one_step(converted, request) -> None:  # type: ignore[no-untyped-def]
    name, result = converted
    if name in KERNEL_DEVIATES:
        request.applymarker(pytest.mark.xfail(strict=True, reason="PyTorch's x86 conv_transpose2d kernel deviates (see KERNEL_DEVIATES)"))
    if name in DYNAMIC_RANGE_FRACTION:  # nothing to cut the graph at: said so, in one line
        with pytest.raises(QonvertError, match="no quantized tensor"):
            qonvert.verify(FIXTURES / f"{name}.pt", result.model, samples=20, per_layer=True, fusion=False, engine=_engine(name))
        return
    report = qonvert.verify(FIXTURES / f"{name}.pt", result.model, samples=20, per_layer=True, fusion=False, engine=_engine(name))
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers]
    if name in BELOW_BAR:
        assert max(o.max_diff_lsb for o in report.outputs) <= BELOW_BAR[name] + 0.05


def test_cli_needs_input_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = FIXTURES / "eager_qnnpack.pt"
    assert main(["convert", str(src), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("qonvert: error")]
    assert len(errors) == 1 and "records no input shapes: pass --input-shape x=D,D,.." in errors[0], err
    args = ["convert", str(src), "-o", str(tmp_path / "m.onnx"), "--input-shape", "x=1,3,32,32", "--engine", "qnnpack", "--verify"]
    assert main(args) == 0
    assert "EQUIVALENT" in capsys.readouterr().out


def _in_memory(name: str, mode: str):  # type: ignore[no-untyped-def]
    """An eager-, FX- or FX-reference-converted module (x86), calibrated as the fixtures are."""
    import importlib.util
    import warnings

    # by path, under its own name: fixtures/paddle has a make_fixtures module too
    spec = importlib.util.spec_from_file_location("torch_make_fixtures", FIXTURES.parents[0] / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    from torch.ao.quantization import convert, get_default_qconfig, get_default_qconfig_mapping, prepare
    from torch.ao.quantization.quantize_fx import convert_fx, convert_to_reference_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, shape = make_fixtures.calibrated_float(name)
        example = (torch.randn(*shape),)
        if mode == "eager":
            model.fuse()
            model.qconfig = get_default_qconfig("x86")
            prepared = prepare(model)
        else:
            prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example)
        torch.manual_seed(1)
        with torch.no_grad():
            for _ in range(16):
                prepared(torch.randn(*shape))
        converted = {"eager": convert, "fx": convert_fx, "reference": convert_to_reference_fx}[mode](prepared)
    return converted, example


# measured max LSB end to end (20 inputs); per layer within 1 step
IN_MEMORY = {("eager", "eager"): 1.0, ("audio", "fx"): 2.0, ("audio", "reference"): 2.0, ("mobilenet", "reference"): 8.0}


@pytest.mark.parametrize(("name", "mode"), sorted(IN_MEMORY))
def test_in_memory_converted_modules(name: str, mode: str) -> None:
    """Eager- and FX-converted modules and FX reference models, passed as objects: traced, then
    read as their archive would be."""
    module, example = _in_memory(name, mode)
    result = qonvert.convert(module, example_inputs=example, engine="x86")
    assert check_canonical(result.model) == []
    report = qonvert.verify(module, result.model, samples=20, per_layer=True, example_inputs=example, engine="x86")
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers]
    out = report.outputs[0]
    assert out.levels >= 8 and out.top1_agreement in (None, 1.0), out
    assert out.max_diff_lsb <= IN_MEMORY[(name, mode)] + 1e-3, out
    fusion = fusion_report(result.model)
    assert fusion.fused == fusion.quantized_in_source, fusion.float_ops


@pytest.mark.parametrize(("name", "mode"), sorted(IN_MEMORY))
def test_in_memory_end_to_end_within_one_lsb(name: str, mode: str, request: pytest.FixtureRequest) -> None:
    if IN_MEMORY[(name, mode)] > 1:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"measured max {IN_MEMORY[(name, mode)]} LSB; per layer within 1 step"))
    module, example = _in_memory(name, mode)
    result = qonvert.convert(module, example_inputs=example, engine="x86")
    report = qonvert.verify(module, result.model, samples=20, example_inputs=example, engine="x86", fusion=False)
    assert report.outputs[0].max_diff_lsb <= 1.0 + 1e-3, report.outputs[0]
