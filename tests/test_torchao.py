"""torchao's quantize_ (the PyTorch quantization API users are pointed to): each of the four configs
on an MLP over token sequences, from the module in memory and from its torch.export .pt2, converts
to the canonical form (int8 / INT4 initializers behind DQs, torchao's per-token parameters
computed in the graph), and ORT computes what torchao's own exported program computes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical

torch = pytest.importorskip("torch")
torchao = pytest.importorskip("torchao")
ort = pytest.importorskip("onnxruntime")

TOKENS = (2, 6, 64)  # batch, tokens, features


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = torch.nn.Linear(64, 128), torch.nn.Linear(128, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


def _config(name: str) -> Any:
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8DynamicActivationIntxWeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerGroup

    return {
        "int8_dynamic": lambda: Int8DynamicActivationInt8WeightConfig(),
        "int8_weight_only": lambda: Int8WeightOnlyConfig(),
        "int4_weight_only_g32": lambda: IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)),
        "int8_dynamic_int4_g32": lambda: Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32)),
    }[name]()


CONFIGS = ("int8_dynamic", "int8_weight_only", "int4_weight_only_g32", "int8_dynamic_int4_g32")
DYNAMIC = {"int8_dynamic", "int8_dynamic_int4_g32"}
INT4 = {"int4_weight_only_g32", "int8_dynamic_int4_g32"}


def quantized_mlp(config: str) -> torch.nn.Module:
    from torchao.quantization import quantize_

    torch.manual_seed(0)
    module = MLP().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(module, _config(config))
    return module


def _inputs(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [(rng.standard_normal(TOKENS) * 3).astype(np.float32) for _ in range(count)]  # far from [-1, 1]


def _ort_outputs(model: onnx.ModelProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from qonvert.runtime.ort import session

    sess = session(model)
    return [sess.run(None, {sess.get_inputs()[0].name: x})[0] for x in inputs]


@pytest.mark.parametrize("config", CONFIGS)
def test_quantize_config_converts_and_matches_torchao(config: str, tmp_path: Path) -> None:
    module = quantized_mlp(config)
    example = (torch.from_numpy(_inputs(1)[0]),)
    program = torch.export.export(module, example)
    path = tmp_path / f"{config}.pt2"
    torch.export.save(program, str(path))
    for source in (module, path):
        result = qonvert.convert(source, example_inputs=example if source is module else None)
        model = result.model
        assert check_canonical(model) == []
        weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in {i.name for i in model.graph.initializer}]
        stored = {i.name: i.data_type for i in model.graph.initializer}
        kinds = {stored[n.input[0]] for n in weights}
        expected = onnx.TensorProto.INT4 if config in INT4 else onnx.TensorProto.INT8
        assert expected in kinds, kinds
        if config in INT4:
            blocks = [a.i for n in weights for a in n.attribute if a.name == "block_size"]
            assert blocks.count(32) == 2, blocks  # both Linears, group-wise (ONNX 21's blocked DQ)
        inputs = _inputs(8)
        with torch.no_grad():
            reference = [module(torch.from_numpy(x)).numpy() for x in inputs]
        ours = _ort_outputs(model, inputs)
        spread = float(np.std(np.concatenate([r.ravel() for r in reference])))
        assert spread > 0.3, spread  # the outputs span a real range, not a handful of values
        worst = max(float(np.abs(a - b).max()) for a, b in zip(reference, ours, strict=True))
        assert worst <= 1e-5 * spread, (config, worst)  # float rounding only: the same computation


@pytest.mark.parametrize("config", sorted(DYNAMIC))
def test_dynamic_activation_codes_match_per_layer(config: str) -> None:
    """The per-token codes the graph computes are torchao's own, every one (x * 1/scale)."""
    module = quantized_mlp(config)
    example = (torch.from_numpy(_inputs(1)[0]),)
    program = torch.export.export(module, example)
    result = qonvert.convert(program)
    report = qonvert.verify(program, result.model, samples=10, per_layer=True, fusion=False)
    assert len(report.layers) == 2, report.layers  # the two quantize_affine
    assert all(layer.max_steps == 0 for layer in report.layers), [layer.as_dict() for layer in report.layers]


def test_ort_default_matmulnbits_is_another_computation() -> None:
    """Why verify's sessions set accuracy level 1: ORT's default fuses a blocked int4 DQ + MatMul
    into MatMulNBits with int8 activations, which neither torchao nor the graph computes."""
    module = quantized_mlp("int4_weight_only_g32")
    result = qonvert.convert(module, example_inputs=(torch.from_numpy(_inputs(1)[0]),))
    x = _inputs(1)[0]
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    default = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = default.run(None, {default.get_inputs()[0].name: x})[0]
    ours = _ort_outputs(result.model, [x])[0]
    assert np.abs(reference - ours).max() <= 1e-5 * reference.std()
    assert np.abs(reference - theirs).max() > 100 * np.abs(reference - ours).max()


# Measured max |speed form - torchao| / std(torchao outputs) on the 8 inputs: MatMulNBits quantizes
# the activations to int8 per block of 32 (accuracy level 4), which torchao keeps float.
SPEED_COST = {"int8_dynamic": 0.0, "int8_weight_only": 0.034, "int4_weight_only_g32": 0.038, "int8_dynamic_int4_g32": 0.051}


def _kernels(model: onnx.ModelProto, tmp_path: Path) -> list[str]:
    """The ops ORT runs, at its default optimisation level (a user's session)."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]


@pytest.mark.parametrize("config", CONFIGS)
def test_speed_form_runs_integer_kernels(config: str, tmp_path: Path) -> None:
    """int8 dynamic: ORT fuses the canonical form's unit-scale products into MatMulIntegerToFloat
    itself; weight-only and int4: the speed form's MatMulNBits at accuracy level 4."""
    module = quantized_mlp(config)
    result = qonvert.convert(module, example_inputs=(torch.from_numpy(_inputs(1)[0]),), speed=True)
    expected = "MatMulIntegerToFloat" if config == "int8_dynamic" else "MatMulNBits"
    kernels = _kernels(result.model, tmp_path)
    assert kernels.count(expected) == 2 and "MatMul" not in kernels, kernels
    inputs = _inputs(8)
    with torch.no_grad():
        reference = [module(torch.from_numpy(x)).numpy() for x in inputs]
    ours = _ort_outputs(result.model, inputs)
    spread = float(np.std(np.concatenate([r.ravel() for r in reference])))
    cost = max(float(np.abs(a - b).max()) for a, b in zip(reference, ours, strict=True)) / spread
    assert cost <= SPEED_COST[config] + 1e-5, (config, cost)


def test_tensor_subclass_read_whole_is_one_line() -> None:
    """A tensor subclass an op takes whole (one export did not flatten) is named, not a traceback."""
    from qonvert.converters.torch.export import _subclass_used_as_is
    from qonvert.errors import QonvertError

    weight = quantized_mlp("int8_weight_only").up.weight
    graph = torch.fx.Graph()
    placeholder = graph.placeholder("p_up_weight")
    graph.call_function(torch.ops.aten.t.default, (placeholder,))
    with pytest.raises(QonvertError, match=r"'p_up_weight' is a Int8Tensor \(a tensor subclass\) that op aten.t.default reads whole"):
        _subclass_used_as_is(placeholder, weight, "m.pt2")


def test_not_a_model_is_one_line() -> None:
    from qonvert.errors import QonvertError

    with pytest.raises(QonvertError, match="not a model qonvert can read"):
        qonvert.convert({"weights": 1})
