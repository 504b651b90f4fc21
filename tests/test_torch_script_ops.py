"""TorchScript archives of FX- and eager-quantized models using the ops real models use and our
first fixtures did not: aten pad / slice / select / unsqueeze / zeros / norm (torchlib),
quantized::prelu and quantized::softmax, and eager dynamic quantization of an nn.LSTM
(aten::quantized_lstm). Traced in memory, converted, and checked against PyTorch's own run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

torch = pytest.importorskip("torch")
nn = torch.nn


class ShapeOps(nn.Module):
    def __init__(self, prelu: bool) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 10)
        self.act = nn.PReLU(8) if prelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.c1(nn.functional.pad(x, (1, 1, 1, 1))))
        y = torch.cat([self.c2(y)[:, :, 1:-1], torch.zeros(1, 8, 12, 2)], dim=3)
        y = y.mean(dim=3).select(2, 0).unsqueeze(1)  # [N, 1, 8]
        y = y / (torch.norm(y, dim=2, keepdim=True) + 1.0)
        return torch.softmax(self.fc(y) * 4.0, dim=-1)


def _fx_traced(engine: str) -> tuple[torch.jit.ScriptModule, torch.Tensor]:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(0)
    torch.backends.quantized.engine = engine
    example = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(ShapeOps(prelu=True).eval(), get_default_qconfig_mapping(engine), (example,))
        for _ in range(16):
            prepared(torch.randn(1, 3, 16, 16) * 2)
        return torch.jit.trace(convert_fx(prepared), (example,)), example


@pytest.mark.parametrize("engine", ["x86", "qnnpack"])
def test_fx_shape_ops_prelu_softmax(engine: str) -> None:
    script, example = _fx_traced(engine)
    ops = {n.kind() for n in script.inlined_graph.nodes()}
    assert {"aten::pad", "aten::slice", "aten::select", "aten::unsqueeze", "quantized::prelu"} <= ops, ops
    result = qonvert.convert(script, example_inputs=(example,), engine=engine)
    assert check_canonical(result.model) == []
    report = qonvert.verify(script, result.model, samples=20, per_layer=True, example_inputs=(example,), engine=engine)
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers]
    assert any(layer.source_op.startswith("quantized.prelu") for layer in report.layers)


def test_prelu_positive_multiplier_is_pytorchs() -> None:
    """PyTorch's quantized prelu multiplies the positive side by 1.0 in the slope's own quantization:
    for slopes quantized over [0, 0.25] that is 0.25, and the converted graph computes the same."""
    torch.backends.quantized.engine = "x86"
    x = torch.quantize_per_tensor(torch.linspace(-2, 2, 64).reshape(1, 4, 4, 4), 0.02, 100, torch.quint8)
    slope = torch.quantize_per_tensor(torch.full((4,), 0.25), 0.25 / 255, 0, torch.quint8)
    out = torch.ops.quantized.prelu(x, slope, 0.01, 128)
    positive = x.dequantize() > 0
    assert torch.allclose(out.dequantize()[positive], (x.dequantize() * 0.25)[positive], atol=0.011)  # not x itself

    class Prelu(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            q = torch.quantize_per_tensor(t, 0.02, 100, torch.quint8)
            return torch.ops.quantized.prelu(q, slope, 0.01, 128).dequantize()

    example = x.dequantize()
    script = torch.jit.trace(Prelu(), (example,))
    result = qonvert.convert(script, example_inputs=(example,))
    assert any("quantized prelu" in r for r in result.remarks)
    report = qonvert.verify(script, result.model, samples=10, example_inputs=(example,))
    assert report.outputs[0].max_diff_lsb <= 1.0 + 1e-3 and report.outputs[0].levels >= 100, report.outputs[0]


@pytest.mark.parametrize("engine", ["x86", "qnnpack"])
def test_dynamic_quantized_lstm(engine: str) -> None:
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.fc = nn.LSTM(12, 16, 2, batch_first=True), nn.Linear(16, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, _ = self.lstm(x)
            return self.fc(y[:, -1])

    torch.manual_seed(0)
    torch.backends.quantized.engine = engine
    example = torch.randn(1, 20, 12) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(Recurrent().eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
        script = torch.jit.trace(quantized, (example,))
    assert "aten::quantized_lstm" in {n.kind() for n in script.inlined_graph.nodes()}
    result = qonvert.convert(script, example_inputs=(example,), engine=engine)
    assert check_canonical(result.model) == []
    assert sum(n.op_type == "Scan" for n in result.model.graph.node) == 2  # one per layer
    rng = np.random.default_rng(1)
    from qonvert.runtime.ort import session

    sess = session(result.model)
    worst = 0.0
    with torch.no_grad():
        for _ in range(10):
            x = (rng.standard_normal((1, 20, 12)) * 3).astype(np.float32)
            ref = script(torch.from_numpy(x)).numpy()
            ours = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            worst = max(worst, float(np.abs(ref - ours).max() / np.abs(ref).max()))
    assert worst <= 0.01, worst  # of the output's magnitude: h's per-step dynamic quantization flips a step at most now and then


def test_float_lstm_between_fx_quantized_linears() -> None:
    """FX quantizes the Linears and leaves the LSTM float (aten::lstm, its weights a tensor list)."""
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from .torch_nets import LinearLSTMLinear as Recurrent

    torch.manual_seed(0)
    torch.backends.quantized.engine = "x86"
    example = torch.randn(1, 7, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = QConfigMapping().set_global(get_default_qconfig("x86")).set_module_name("lstm", None)
        prepared = prepare_fx(Recurrent().eval(), mapping, (example,))
        for _ in range(8):
            prepared(torch.randn(1, 7, 6) * 2)
        script = torch.jit.trace(convert_fx(prepared), (example,))
    assert "aten::lstm" in {n.kind() for n in script.inlined_graph.nodes()}
    result = qonvert.convert(script, example_inputs=(example,))
    assert any(n.op_type == "LSTM" for n in result.model.graph.node)
    report = qonvert.verify(script, result.model, samples=20, per_layer=True, example_inputs=(example,))
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1
    assert report.outputs[0].levels >= 30 and report.outputs[0].max_diff_lsb <= 1.0 + 1e-3, report.outputs[0]


def test_quantized_softmax() -> None:
    """quantized::softmax (eager's nnq.Softmax, fixed output parameters 1/256): exact per layer."""
    from torch.ao.quantization import DeQuantStub, QuantStub, convert, get_default_qconfig, prepare

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.conv, self.softmax, self.dequant = QuantStub(), nn.Conv2d(3, 8, 3), nn.Softmax(dim=1), DeQuantStub()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dequant(self.softmax(self.conv(self.quant(x))))

    torch.manual_seed(0)
    torch.backends.quantized.engine = "x86"
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    example = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare(model)
        for _ in range(8):
            prepared(torch.randn(1, 3, 8, 8) * 2)
        converted = convert(prepared)
        converted.softmax = torch.ao.nn.quantized.Softmax(dim=1, scale=1.0 / 256, zero_point=0)
        script = torch.jit.trace(converted, (example,))
    assert "quantized::softmax" in {n.kind() for n in script.inlined_graph.nodes()}
    result = qonvert.convert(script, example_inputs=(example,))
    report = qonvert.verify(script, result.model, samples=20, per_layer=True, example_inputs=(example,))
    layers = {layer.source_op.split(" ")[0]: layer for layer in report.layers if layer.source_op}
    assert layers["quantized.softmax.default"].max_steps == 0, layers
    assert max(layer.max_steps for layer in report.layers) <= 1
