"""PyTorch through the Python API (in-memory PT2E models) and bad PyTorch inputs: one-line errors
(exit 2 from the CLI), never a traceback or an unpickled file that was not trusted."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import QonvertError

torch = pytest.importorskip("torch")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "torch" / "pt2" / "audio_xnnpack_pc.pt2"


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(y)


def _converted_pt2e(fold_quantize: bool = True) -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    torch.manual_seed(0)
    example = (torch.randn(1, 3, 8, 8),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(
            torch.export.export(Tiny().eval(), example).module(), XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        )
        for _ in range(16):
            prepared(torch.randn(1, 3, 8, 8))
        return convert_pt2e(prepared, fold_quantize=fold_quantize), example


def test_in_memory_graph_module_converts_and_verifies(tmp_path: Path) -> None:
    module, example = _converted_pt2e()
    out = tmp_path / "m.onnx"
    result = qonvert.convert(module, out, example_inputs=example)
    assert out.is_file() and result.framework == "torch"
    report = qonvert.verify(module, out, samples=20, per_layer=True)
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1
    assert report.outputs[0].levels >= 8
    assert report.outputs[0].max_diff_lsb <= 1.0 + 1e-3, report.outputs[0]


def test_in_memory_exported_program(tmp_path: Path) -> None:
    module, example = _converted_pt2e()
    program = torch.export.export(module, example)
    result = qonvert.convert(program)
    report = qonvert.verify(program, result.model, samples=20)
    assert report.equivalent, report.outputs


def test_eager_module_needs_example_inputs() -> None:
    """convert_pt2e's GraphModule is read as it is; any other module must be exported first."""
    with pytest.raises(QonvertError, match="needs example_inputs"):
        qonvert.convert(Tiny().eval())


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("qonvert: error")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_truncated_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cut.pt2"
    bad.write_bytes(FIXTURE.read_bytes()[: FIXTURE.stat().st_size // 2])
    _one_line_exit_2(capsys, ["convert", str(bad), "-o", str(tmp_path / "o.onnx")], "cut.pt2: a truncated or corrupt archive")
    assert not (tmp_path / "o.onnx").exists()


def test_pickle_is_refused_without_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.pt"
    torch.save(Tiny().eval(), path)
    _one_line_exit_2(capsys, ["convert", str(path), "-o", str(tmp_path / "o.onnx")], "pass --trust-pickle")
    with pytest.raises(QonvertError, match="no quantize/dequantize op"):  # trusted: unpickled, exported, read
        qonvert.convert(path, trust_pickle=True, example_inputs=(torch.randn(1, 3, 8, 8),))


def test_float_torchscript_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(Tiny().eval(), torch.randn(1, 3, 8, 8)), str(path))
    _one_line_exit_2(capsys, ["convert", str(path), "-o", str(tmp_path / "o.onnx")], "records no input shapes: pass --input-shape")
    args = ["convert", str(path), "-o", str(tmp_path / "o.onnx"), "--input-shape", "x=1,3,8,8"]
    _one_line_exit_2(capsys, args, "no quantized tensor: a float TorchScript model")


def test_float_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "float.pt2"
    torch.export.save(torch.export.export(Tiny().eval(), (torch.randn(1, 3, 8, 8),)), str(path))
    _one_line_exit_2(capsys, ["convert", str(path), "-o", str(tmp_path / "o.onnx")], "no quantize/dequantize op")


def test_unsupported_ops_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Odd(Tiny):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = super().forward(x)
            return torch.cummax(y, dim=1).values + torch.kthvalue(y, 2, dim=1, keepdim=True).values  # torchlib has neither

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    example = (torch.randn(1, 3, 8, 8),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(
            torch.export.export(Odd().eval(), example).module(), XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        )
        prepared(*example)
        path = tmp_path / "odd.pt2"
        torch.export.save(torch.export.export(convert_pt2e(prepared), example), str(path))
    assert main(["convert", str(path), "-o", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err
    assert "aten.cummax" in err and "aten.kthvalue" in err, err
    assert " in " in err  # each named with the module that calls it


def test_option_of_another_framework(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _one_line_exit_2(capsys, ["convert", str(FIXTURE), "-o", str(tmp_path / "o.onnx"), "--nchw-io"], "does not apply to torch models")


def test_int8_weights_are_the_files_own(tmp_path: Path) -> None:
    """The int8 weights in the ONNX file are PyTorch's frozen int8 parameters, bit for bit."""
    import onnx

    program = torch.export.load(str(FIXTURE))
    frozen = sorted((v.numpy() for k, v in program.state_dict.items() if v.dtype == torch.int8), key=lambda a: a.size)
    model = qonvert.convert(FIXTURE).model
    ours = sorted(
        (onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and i.dims), key=lambda a: a.size
    )
    ours = [a for a in ours if a.ndim > 1]
    assert len(ours) == len(frozen) and all(np.array_equal(a.reshape(b.shape), b) for a, b in zip(ours, frozen, strict=True))


def test_inspect_shows_the_parsed_quantization() -> None:
    """inspect reads the same QuantParams the converter uses: the input's matches the ONNX input's Q."""
    import onnx

    info = qonvert.inspect(FIXTURE)
    tensors = {t.name: t for t in info.quantized}
    weights = [t for t in tensors.values() if t.axis == 0]
    assert len(weights) == 5 and all(t.dtype == "int8" for t in weights)  # 4 conv1d + 1 linear, per channel
    model = qonvert.convert(FIXTURE).model
    (q,) = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"]
    scale = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}[q.input[1]]
    assert float(tensors["x"].scale) == pytest.approx(float(scale), rel=1e-5)  # inspect prints 6 digits


def test_unfolded_weight_quantize() -> None:
    """convert_pt2e(fold_quantize=False) keeps float weights and their quantize op: folded here with
    PyTorch's rounding, so the ONNX weights are int8 codes behind a DQ."""
    module, _ = _converted_pt2e(fold_quantize=False)
    weight_quantize = [n for n in module.graph.nodes if "quantize_per" in str(n.target) and n.args[0].op == "get_attr"]
    assert weight_quantize  # a float weight quantized in the graph
    result = qonvert.convert(module)
    from qonvert.opsets.canonical import check_canonical

    assert check_canonical(result.model) == []
    report = qonvert.verify(module, result.model, samples=20, per_layer=True)
    assert report.outputs[0].max_diff_lsb <= 1.0 + 1e-3 and report.outputs[0].levels >= 8, report.outputs[0]
