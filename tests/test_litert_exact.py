"""The litert-exact target (issue 23, section 3): a TFLite int8 model as integer ONNX arithmetic
that reproduces LiteRT's reference kernels (BUILTIN_REF) bit for bit. verify runs the reference
kernels on the same inputs and compares every output and every tensor per layer: the bar is
0 LSB everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

import qonvert
from qonvert.converters.tflite.quant import multiply_by_quantized_multiplier, quantize_multiplier
from qonvert.errors import InputError
from qonvert.targets.litert_exact.emit import Emitter
from qonvert.targets.litert_exact.softmax import exp_on_negative_values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TFLITE = FIXTURES / "tflite"
# Every kernel the form reproduces, each on its own (TFLiteConverter, int8 and int8-io forms) ...
KERNEL_OPS = (
    *("logistic", "tanh", "hard_swish", "leaky_relu", "add", "add_relu", "sub", "mul", "mul_relu6", "mul_relu_n1_to_1"),
    *("average_pool_2d", "mean", "softmax", "arg_max", "space_to_depth", "mirror_pad_reflect", "gather_nd"),
)
# (REDUCE_MAX on float inputs in [-1, 1]: its maximum of 64 saturates, one level)
KERNELS = [*(f"ops/{op}_{io}.tflite" for op in KERNEL_OPS for io in ("int8", "int8io")), "ops/reduce_max_int8io.tflite"]
# ... and whole networks: ours (float, int8 and uint8 inputs) and MediaPipe's real-weight models
NETWORKS = [
    *(f"{net}_{io}.tflite" for net in ("small_cnn", "resnet_blocks") for io in ("int8", "int8io", "uint8io")),
    "mobilenet_v2_softmax_int8.tflite",
    "mobilenet_v3_int8io.tflite",
]
# MediaPipe's real-weight models, on the committed face images of their input size
REAL = {"face_detection_short_range_static_wi8_ai8": 128, "face_landmark_static_wi8_ai8": 192, "iris_landmark_static_wi8_ai8": 64}
SINGLE_LEVEL = {"conv2d_31"}  # the face mesh's face score: every image is a face, so it spans 1-5 levels


def _exact(relative: str, tmp_path: Path, samples: int, inputs: Path | None = None) -> qonvert.api.VerifyReport:
    path = TFLITE / relative
    out = tmp_path / "exact.onnx"
    result = qonvert.convert(path, out, target="litert-exact")
    assert any("litert-exact:" in r and "ORT ops used" in r for r in result.remarks)
    model = onnx.load(str(out))
    # integer arithmetic (a float Conv is left only where it sums whole codes: the average pool)
    assert not {n.op_type for n in model.graph.node} & {"QuantizeLinear", "MatMul", "Gemm", "QLinearConv"}
    report = qonvert.verify(path, out, samples=samples, inputs=inputs)
    assert report.bar == "exact" and report.kernels == "reference"  # the defaults for this form
    # a reference of one or two levels would prove nothing: every output spans many (the per-layer
    # comparison covers a single-level output's tensor too, from the reference's own inputs)
    assert all(o.levels >= 8 for o in report.outputs if o.name not in SINGLE_LEVEL), [(o.name, o.levels) for o in report.outputs]
    assert all(o.max_diff_lsb == 0 and o.pct_exact == 100.0 for o in report.outputs), [o.as_dict() for o in report.outputs]
    assert report.layers is not None and all(layer.max_steps == 0 and layer.pct_exact == 100.0 for layer in report.layers)
    assert report.bit_exact and report.equivalent
    return report


@pytest.mark.parametrize("relative", KERNELS)
def test_each_int8_kernel_is_litert_reference_bit_for_bit(relative: str, tmp_path: Path) -> None:
    _exact(relative, tmp_path, samples=20)


@pytest.mark.parametrize("relative", NETWORKS)
def test_networks_are_litert_reference_bit_for_bit_on_every_tensor(relative: str, tmp_path: Path) -> None:
    report = _exact(relative, tmp_path, samples=8)
    assert len(report.layers or []) >= 8


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_real_weight_models_are_litert_reference_bit_for_bit(name: str, tmp_path: Path) -> None:
    """MediaPipe's face detector, face mesh and iris models, int8 by ai-edge-quantizer: their
    PRELUs run in float between the model's own DEQUANTIZE and QUANTIZE, the rest in int8."""
    report = _exact(f"real/{name}.tflite", tmp_path, samples=16, inputs=TFLITE / "real" / f"faces_{REAL[name]}.npz")
    assert len(report.layers or []) >= 90


def test_the_canonical_form_is_not_exact_where_the_kernels_round_apart(tmp_path: Path) -> None:
    """The bar can fail: the canonical QDQ model of the same file, on ORT's kernels, misses it."""
    path = TFLITE / "resnet_blocks_int8io.tflite"
    qonvert.convert(path, tmp_path / "canonical.onnx")
    report = qonvert.verify(path, tmp_path / "canonical.onnx", samples=8, bar="exact", reference_kernels="reference")
    assert not report.bit_exact and not report.equivalent
    assert max(o.max_diff_lsb for o in report.outputs) >= 1


def test_ops_it_cannot_reproduce_are_all_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "refused.onnx"
    with pytest.raises(InputError) as caught:
        qonvert.convert(TFLITE / "op_zoo_int8.tflite", out, target="litert-exact")
    message = str(caught.value)
    assert "\n" not in message and "litert-exact cannot reproduce 5 ops of 5 kinds exactly" in message
    for op in ("TRANSPOSE_CONV", "RESIZE_BILINEAR", "SQUARED_DIFFERENCE", "SUM", "RSQRT"):
        assert op in message
    assert not out.exists()
    with pytest.raises(InputError, match=r"cannot reproduce 6 ops of 3 kinds exactly: BATCH_MATMUL x2 .*SQUARED_DIFFERENCE x2 .*RSQRT x2"):
        qonvert.convert(TFLITE / "transformer_int8io.tflite", target="litert-exact")


def test_it_takes_tflite_models_only() -> None:
    with pytest.raises(InputError, match="takes TFLite models, not paddle"):
        qonvert.convert(FIXTURES / "paddle" / "qat_cnn_pertensor_legacy", target="litert-exact")


def test_inspect_lists_what_the_form_would_refuse(tmp_path: Path) -> None:
    qonvert.convert(TFLITE / "transformer_int8io.tflite", tmp_path / "t.onnx")
    findings = qonvert.inspect(tmp_path / "t.onnx", target="litert-exact").target_findings
    assert findings is not None and any(f.startswith("BATCH_MATMUL x2") for f in findings)
    qonvert.convert(TFLITE / "small_cnn_int8io.tflite", tmp_path / "s.onnx")
    assert qonvert.inspect(tmp_path / "s.onnx", target="litert-exact").target_findings == []


def _run_emitted(build, inputs: dict[str, np.ndarray]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """An Emitter's nodes for `build(emit, *values)` run on ORT."""
    values = [ir.Value(name=k, type=ir.TensorType(ir.DataType.from_numpy(v.dtype)), shape=ir.Shape(v.shape)) for k, v in inputs.items()]
    graph = ir.Graph(values, [], nodes=[], opset_imports={"": 17}, name="g")
    emit = Emitter(graph, "t", "test")
    result = build(emit, *values)
    graph.extend(emit.nodes)
    graph.outputs.append(result)
    proto = ir.to_proto(ir.Model(graph, ir_version=9))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def test_fixed_point_rescale_matches_litert_arithmetic() -> None:
    """MultiplyByQuantizedMultiplier in int64 ONNX ops against LiteRT's integer definition, on
    accumulators over the int32 range, for multipliers below and above 1 and the ties."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-(1 << 31) + 1, 1 << 31, 4000), rng.integers(-5000, 5000, 4000), [0, 1, -1, 2**30, -(2**30)]])
    x = x.astype(np.int64)
    for real in (0.0003, 0.0123456, 0.5, 0.75, 0.999999, 1.0, 1.7, 3.9):
        multiplier, shift = quantize_multiplier(real)
        small = x if shift <= 0 else np.clip(x, -(1 << (31 - shift)), (1 << (31 - shift)) - 1)
        pair = (np.asarray(multiplier), np.asarray(shift))
        ours = _run_emitted(lambda e, v, pair=pair: e.multiply_by_quantized_multiplier(v, *pair), {"x": small})
        theirs = np.asarray([multiply_by_quantized_multiplier(int(v), multiplier, shift) for v in small])
        assert np.array_equal(ours, theirs), real


def test_rounding_halves_away_from_zero_in_float_and_double() -> None:
    """C's round(): the ties ORT's Round would send to even go away from zero."""
    for dtype in (np.float32, np.float64):
        values = np.asarray([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997, 1e6 + 0.5, -3.2, 3.7], dtype)
        ours = _run_emitted(lambda e, v: e.round_half_away(v), {"x": values})
        assert ours.tolist() == [int(np.copysign(np.floor(abs(float(v)) + 0.5), v)) if abs(float(v) % 1) == 0.5 else int(np.round(v)) for v in values]


def test_gemmlowp_exp_is_the_exponential_it_approximates() -> None:
    for real in (0.0, -0.1, -1.0, -2.75, -7.5, -15.9):
        raw = exp_on_negative_values(int(real * (1 << 26)))
        assert raw / 2**31 == pytest.approx(np.exp(real), abs=5e-7)  # Q0.31, 3 Newton/Taylor terms
