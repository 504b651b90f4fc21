"""Streaming TFLite models (resource variables, microWakeWord's pattern): each variable becomes a state
input and output, its initial value comes from the CALL_ONCE init subgraph, and verify runs a
stream of steps through one LiteRT interpreter and through ORT, each side carrying its own state.

Fixtures: fixtures/tflite/make_single_ops.py (StreamingConv, StreamingAccumulator), with float
variables (int8, int8io) and int8 variables, int8 input and uint8 output (int8state: microWakeWord's
converter settings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.cli import main
from qonvert.metadata import read_states
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime.ort import run_steps, session
from qonvert.runtime.reference.litert import run_reference

PATTERNS = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "patterns"
KINDS = ("int8", "int8io", "int8state")
STEPS = 24
# variable -> (shape, dtype per kind)
VARIABLES = {
    "streaming_conv": {"ring_buffer": (1, 2, 8)},
    "streaming_accumulator": {"total": (1, 5), "frames": (1, 2, 4)},
}


def _convert(stem: str) -> onnx.ModelProto:
    model = qonvert.convert(PATTERNS / f"{stem}.tflite").model
    onnx.checker.check_model(model, full_check=True)
    assert check_canonical(model) == []
    return model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pattern", sorted(VARIABLES))
def test_variables_become_state_inputs_and_outputs(pattern: str, kind: str) -> None:
    model = _convert(f"{pattern}_{kind}")
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    initial = qonvert.initial_state(model)
    assert set(initial) == set(VARIABLES[pattern])
    for var, shape in VARIABLES[pattern].items():
        assert var in inputs and f"{var}_out" in outputs
        want = np.int8 if kind == "int8state" else np.float32
        assert initial[var].shape == shape and initial[var].dtype == want
        assert not _dequantized(model, var, initial[var]).any()  # tf.zeros in the Keras model
        assert onnx.helper.tensor_dtype_to_np_dtype(inputs[var].type.tensor_type.elem_type) == want


def _dequantized(model: onnx.ModelProto, name: str, value: np.ndarray) -> np.ndarray:
    """An int8 state's codes as reals, through the DequantizeLinear that reads the input."""
    if value.dtype.kind == "f":
        return value
    (dq,) = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == name]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return (value.astype(np.float32) - inits[dq.input[2]]) * inits[dq.input[1]]


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_conv_matches_litert_step_by_step(kind: str) -> None:
    path = PATTERNS / f"streaming_conv_{kind}.tflite"
    model = _convert(path.stem)
    report = qonvert.verify(path, model, samples=STEPS, per_layer=True)
    assert report.samples == STEPS and report.equivalent
    assert any("streaming steps" in r for r in report.remarks)
    for o in report.outputs:  # the output and the ring buffer, every step
        assert o.max_diff_lsb == 0 and o.pct_exact == 100.0, o.as_dict()
        assert o.levels >= 8, o.as_dict()
    assert report.layers is not None and all(layer.max_steps == 0 for layer in report.layers)


@pytest.mark.parametrize("kind", KINDS)
def test_the_state_is_what_makes_the_stream_match(kind: str) -> None:
    """Without carrying the state (every step from the initial value) ORT leaves LiteRT's stream:
    the comparison above really depends on the state going round."""
    path = PATTERNS / f"streaming_conv_{kind}.tflite"
    model = _convert(path.stem)
    feeds = qonvert.api.random_inputs(model, STEPS)
    ref = run_reference(path, feeds, [s.source_output for s in read_states(model)])
    sess = session(model, "cpu")
    carried = run_steps(sess, feeds, read_states(model))
    fresh = [run_steps(sess, [feed], read_states(model))[0] for feed in feeds]
    assert all(np.array_equal(c[0], r[0]) for c, r in zip(carried, ref, strict=True))
    assert not all(np.array_equal(f[0], r[0]) for f, r in zip(fresh, ref, strict=True))


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_accumulator_per_layer_within_one_step(kind: str) -> None:
    """Two variables, one a decayed sum (MUL by 0.5, ADD) fed back every step."""
    path = PATTERNS / f"streaming_accumulator_{kind}.tflite"
    report = qonvert.verify(path, _convert(path.stem), samples=STEPS, per_layer=True)
    assert report.layers is not None and max(layer.max_steps for layer in report.layers) <= 1
    states = {o.name: o for o in report.outputs if o.name.endswith("_out")}
    assert set(states) == {"total_out", "frames_out"}
    assert all(o.max_diff_lsb <= 1 and o.levels >= 8 for o in states.values()), [o.as_dict() for o in states.values()]


@pytest.mark.xfail(
    strict=True,
    reason="measured 3.0 LSB on the output: LiteRT's MUL rounds the x*0.5 ties away from zero, "
    "QuantizeLinear to even, so `total` is 1 step (of 0.0176) off on 16-29% of steps, which the "
    "output's finer step (0.0061) sees as 3",
)
@pytest.mark.parametrize("kind", KINDS)
def test_streaming_accumulator_end_to_end(kind: str) -> None:
    path = PATTERNS / f"streaming_accumulator_{kind}.tflite"
    report = qonvert.verify(path, _convert(path.stem), samples=STEPS)
    assert report.equivalent, [o.as_dict() for o in report.outputs]


def test_verify_cli_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = PATTERNS / "streaming_conv_int8state.tflite"
    out = tmp_path / "m.onnx"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert main(["verify", str(src), str(out), "--samples", "20"]) == 0
    printed = capsys.readouterr().out
    assert "ring_buffer_out" in printed and "EQUIVALENT" in printed
