"""Each registered PyTorch op family in a small PT2E model (XNNPACKQuantizer, made in memory):
converts, passes the contract, and every quantized tensor is within 1 step of PyTorch when fed
PyTorch's own inputs (per layer); the output within 1 LSB end to end where it passes through few ops."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class Net(nn.Module):
    """conv -> op under test -> conv, so the op sits between quantized tensors."""

    def __init__(self, body: Callable[[torch.Tensor], torch.Tensor], cin: int = 4, cout: int = 4) -> None:
        super().__init__()
        self.pre, self.post, self.body = nn.Conv2d(3, cin, 3, padding=1), nn.Conv2d(cout, 4, 1), body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.body(self.pre(x)))


CASES: dict[str, Callable[[], nn.Module]] = {
    "silu": lambda: Net(F.silu),
    "leaky_relu": lambda: Net(lambda y: F.leaky_relu(y, 0.1)),
    "hardtanh": lambda: Net(lambda y: F.hardtanh(y, -0.5, 0.5)),
    "relu6": lambda: Net(F.relu6),
    "clamp": lambda: Net(lambda y: torch.clamp(y, -0.3, 0.8)),
    "sigmoid": lambda: Net(torch.sigmoid),
    "tanh": lambda: Net(torch.tanh),
    "hardsigmoid": lambda: Net(F.hardsigmoid),
    "hardswish": lambda: Net(F.hardswish),
    "exp_abs_neg": lambda: Net(lambda y: torch.exp(-torch.abs(y))),
    "sqrt": lambda: Net(lambda y: torch.sqrt(torch.abs(y) + 1)),
    "max_pool": lambda: Net(lambda y: F.max_pool2d(y, 2)),
    "avg_pool": lambda: Net(lambda y: F.avg_pool2d(y, 2)),
    "adaptive_pool_2x2": lambda: Net(lambda y: F.adaptive_avg_pool2d(y, 2)),
    "upsample_nearest": lambda: Net(lambda y: F.interpolate(y, scale_factor=2.0, mode="nearest")),
    "upsample_nearest_size": lambda: Net(lambda y: F.interpolate(y, size=(12, 12), mode="nearest")),
    "cat": lambda: Net(lambda y: torch.cat([y, torch.relu(y)], dim=1), cout=8),
    "permute": lambda: Net(lambda y: y.permute(0, 1, 3, 2)),
    "transpose": lambda: Net(lambda y: y.transpose(2, 3)),
    "mean": lambda: Net(lambda y: y.mean(dim=3, keepdim=True)),
    "sub_div": lambda: Net(lambda y: (y - 0.5) / 2.0),
    "softmax": lambda: Net(lambda y: torch.softmax(y, dim=1)),
    "reshape": lambda: Net(lambda y: y.reshape(1, 4, 64, 1)),
    # The long tail, translated by torchlib (LONG_TAIL below checks that no own mapper took them)
    "pad": lambda: Net(lambda y: F.pad(y, (1, 2, 1, 0))),
    "pad_reflect": lambda: Net(lambda y: F.pad(y, (1, 1, 1, 1), mode="reflect")),
    "prelu": lambda: Net(nn.PReLU(4)),
    "select_unsqueeze": lambda: Net(lambda y: y.select(2, 0).unsqueeze(2)),
    "zeros_add": lambda: Net(lambda y: y + torch.zeros(1, 4, 8, 8)),
    "vector_norm": lambda: Net(lambda y: y / (torch.linalg.vector_norm(y, dim=1, keepdim=True) + 1)),
    "flip": lambda: Net(lambda y: torch.flip(y, dims=[3])),
    "pixel_shuffle": lambda: Net(lambda y: F.pixel_shuffle(y, 2), cout=1),
    "group_norm": lambda: Net(nn.GroupNorm(2, 4)),
    "index_channels": lambda: Net(lambda y: y[:, torch.tensor([3, 1, 0, 2])]),  # aten.index.Tensor(y, [None, idx])
}
LONG_TAIL = {"pad", "pad_reflect", "prelu", "select_unsqueeze", "zeros_add", "vector_norm", "flip", "pixel_shuffle", "group_norm", "index_channels"}
SHAPE = (1, 3, 8, 8)


def _pt2e(model: nn.Module) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    torch.manual_seed(0)
    example = (torch.randn(*SHAPE),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(
            torch.export.export(model.eval(), example).module(), XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        )
        for _ in range(16):
            prepared(torch.randn(*SHAPE))
        return convert_pt2e(prepared)


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_pytorch_per_layer(case: str) -> None:
    torch.manual_seed(0)
    module = _pt2e(CASES[case]())
    result = qonvert.convert(module)
    assert check_canonical(result.model) == []
    report = qonvert.verify(module, result.model, samples=20, per_layer=True, fusion=False)
    assert report.layers and max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers]
    out = report.outputs[0]
    assert out.levels >= 8, out
    assert out.max_diff_lsb <= 2.0 + 1e-3, out  # two convs and the op: at most one flip carried on


@pytest.mark.parametrize("case", sorted(LONG_TAIL))
def test_long_tail_goes_through_torchlib(case: str) -> None:
    """The cases above that no mapper of ours owns: the torchlib fallback translated them."""
    from qonvert.converters import load_source
    from qonvert.converters.registry import is_fallback

    module = _pt2e(CASES[case]())
    ops = {op.type for op in load_source(module).ops}
    assert any(is_fallback("torch", op) for op in ops), ops


def test_float_lstm_between_quantized_layers() -> None:
    """A float aten.lstm (XNNPACK leaves it float) between quantized linears: torchlib's LSTM."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    from .torch_nets import LinearLSTMLinear as Recurrent

    torch.manual_seed(0)
    example = (torch.randn(1, 7, 6),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        prepared = prepare_pt2e(torch.export.export(Recurrent().eval(), example).module(), quantizer)
        for _ in range(16):
            prepared(torch.randn(1, 7, 6) * 3)
        module = convert_pt2e(prepared)
    result = qonvert.convert(module)
    assert check_canonical(result.model) == []
    assert any(node.op_type == "LSTM" for node in result.model.graph.node)
    report = qonvert.verify(module, result.model, samples=20, per_layer=True, fusion=False)
    assert max(layer.max_steps for layer in report.layers) <= 1, [layer.as_dict() for layer in report.layers]
    out = report.outputs[0]
    assert out.levels >= 8, out
    assert out.max_diff_lsb <= 1.0 + 1e-3, out


def test_only_untranslated_ops_are_decomposed() -> None:
    """torch.onnx decomposes what torchlib lacks before dispatching; qonvert decomposes only the ops
    no mapper takes (diff, __and__ here), and returns a program with none of those as it is."""
    from qonvert.converters.torch.export import decompose_untranslated
    from qonvert.converters.torch.frontend import _translated

    def targets(program: torch.export.ExportedProgram) -> list[str]:
        return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]

    class Masked(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.diff(x, dim=-1) * ((x > 0) & (x < 1)).float()[..., 1:]

    program = torch.export.export(Masked().eval(), (torch.randn(2, 8),))
    assert sorted(t for t in targets(program) if not _translated(t)) == ["aten.__and__.Tensor", "aten.diff.default"]
    decomposed = decompose_untranslated(program, _translated)
    assert [t for t in targets(decomposed) if not _translated(t)] == []
    assert "aten.mul.Tensor" in targets(decomposed)  # the translated ops stay as they were
    plain = torch.export.export(nn.Conv2d(3, 4, 1).eval(), (torch.randn(1, 3, 4, 4),))
    assert decompose_untranslated(plain, _translated) is plain
