"""The ORT-CPU speed form (convert --speed): which of its changes are exact, that verify counts the
elements where it differs from the source, that ORT then fuses every quantized op, and that the
default (canonical) conversion does not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

import qonvert
from qonvert.cli import main
from qonvert.opsets.passes import run_passes
from qonvert.runtime import refio
from qonvert.runtime.ort import fusion_report, run, session
from qonvert.targets.ort_speed import MergeRequantizationBeforeRelu, NonNegativeToUint8, saturated, speed_form
from qonvert.verify.sampling import input_specs, quantize_float_feeds

from .test_passes import S_X, S_Y, model, qdq, weight

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "paddle"
PADDLE_RESIDUAL = FIXTURES / "ptq_cnn_legacy"  # a conv before a float residual Add, symmetric int8 activations


def _conv_relu_conv() -> onnx.ModelProto:
    """Paddle's pattern after canonicalisation: Conv -> Q -> DQ -> Relu -> Q (one scale, int8, zero
    point 0) -> DQ -> Conv -> Q."""
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w1", (8, 4, 3, 3))
    n3, i3 = qdq("c1q", "c1", S_Y)
    n4, i4 = qdq("r1q", "r1", S_Y)
    n5, i5 = weight("w2", (8, 8, 1, 1))
    n6, i6 = qdq("y", "c2", S_Y)
    nodes = [
        *n1,
        *n2,
        helper.make_node("Conv", ["xq", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        *n3,
        helper.make_node("Relu", ["c1q"], ["r1"]),
        *n4,
        *n5,
        helper.make_node("Conv", ["r1q", "w2"], ["c2"]),
        *n6,
    ]
    return model(nodes, i1 + i2 + i3 + i4 + i5 + i6, (1, 4, 6, 6), "y")


def _feeds(spread: float, n: int = 8) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{"x": (rng.standard_normal((1, 4, 6, 6)) * spread).astype(np.float32)} for _ in range(n)]


def test_uint8_restoring_is_exact_below_127_steps_and_counted_above() -> None:
    canonical = _conv_relu_conv()
    fast, changes = speed_form(canonical)
    assert (changes.merged, changes.uint8) == (1, 1)
    kinds = {n.output[0]: n.op_type for n in fast.graph.node}
    assert "Relu" in kinds.values() and sum(t == "QuantizeLinear" for t in kinds.values()) == 3  # x, relu, y
    both = [session(canonical, "cpu", level="disabled"), session(fast, "cpu", level="disabled")]
    small, large = _feeds(0.1), _feeds(40.0)
    over, total, tensors = saturated(fast, small)
    assert tensors == 1 and total > 0 and over == 0
    for feed in small:
        want, got = (run(s, feed)[0] for s in both)
        np.testing.assert_array_equal(got, want)
    over, total, _ = saturated(fast, large)
    assert over > 0  # the source saturates at 127 steps there, uint8 does not
    assert any(not np.array_equal(*(run(s, feed)[0] for s in both)) for feed in large)


def test_relu_drops_into_integer_kernels() -> None:
    """After the speed form ORT fuses Relu into the uint8 Q: no float Relu stays between the convs."""
    fast, _ = speed_form(_conv_relu_conv())
    report = fusion_report(fast)
    assert report.fused == 2, report.float_ops


def _calibration(tmp_path: Path, source: Path) -> Path:
    feeds, _, _ = refio.load(source / "reference.npz")
    path = tmp_path / "calib.npz"
    np.savez(path, **{name: np.concatenate([f[name] for f in feeds[:8]]) for name in feeds[0]})
    return path


def test_paddle_residual_model_fuses_every_quantized_op(tmp_path: Path) -> None:
    default = qonvert.convert(PADDLE_RESIDUAL)
    before = fusion_report(default.model)
    assert before.fused < before.quantized_in_source  # the convs before the residual Add stay float
    fast = qonvert.convert(PADDLE_RESIDUAL, speed=True, calibration=_calibration(tmp_path, PADDLE_RESIDUAL))
    after = fusion_report(fast.model)
    assert after.fused == after.quantized_in_source == before.quantized_in_source, after.float_ops
    assert fast.canonical is not None
    assert fast.canonical.SerializeToString() == default.model.SerializeToString()  # the default mode is untouched
    assert any("calibrated uint8 Q/DQ" in r for r in fast.remarks)
    report = qonvert.verify(PADDLE_RESIDUAL, fast.model, reference=PADDLE_RESIDUAL / "reference.npz", fusion=False)
    assert any(r.startswith("speed form: ") and "pass 127 steps" in r for r in report.remarks)


def test_without_calibration_says_what_stays_float() -> None:
    fast = qonvert.convert(PADDLE_RESIDUAL, speed=True)
    assert any("still write float" in r and "--calibration" in r for r in fast.remarks)


def test_cli_prints_the_cost_against_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fast.onnx"
    calib = _calibration(tmp_path, PADDLE_RESIDUAL)
    code = main(["convert", str(PADDLE_RESIDUAL), "-o", str(out), "--speed", "--calibration", str(calib), "--verify", "--samples", "4"])
    text = capsys.readouterr().out
    assert code in (0, 1) and out.is_file()
    assert "cost of the uint8 storage (against the source, canonical LSB):" in text
    assert "cost of the calibrated quantization on top (against the source, canonical LSB):" in text
    assert "speed form: " in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--calibration", "c.npz"], "calibration is an option of target 'ort-speed' (--target ort-speed)"),
        (["--speed", "--target", "tensorrt"], "choose one"),
        (["--speed", "--calibration", "bad.npz"], "bad.npz"),
    ],
)
def test_cli_refuses_bad_speed_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str) -> None:
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 3, 5, 5), np.float32))  # the wrong shape
    out = tmp_path / "o.onnx"
    args = [a if not a.endswith(".npz") else str(tmp_path / a) for a in extra]
    assert main(["convert", str(PADDLE_RESIDUAL), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith("qonvert: error:") and len(err) <= 2
    assert not out.exists()


def test_inspect_lists_what_the_speed_form_would_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["convert", str(PADDLE_RESIDUAL), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--target", "ort-speed"]) == 0
    printed = capsys.readouterr().out
    assert "ort-speed: " in printed and "non-negative int8 activations stored as uint8" in printed, printed


def test_requantization_merge_alone_is_exact() -> None:
    """The speed form's first pass, run alone under a PassManager: the Q before the Relu goes, and
    the graph computes what it did (the relu and the clip commute)."""
    canonical = _conv_relu_conv()
    changed = ir.from_proto(canonical)
    assert run_passes(changed, [MergeRequantizationBeforeRelu()])["merged"] == 1
    merged = ir.to_proto(changed)
    assert [n.op_type for n in merged.graph.node].count("QuantizeLinear") == 3
    for feed in _feeds(5.0):
        want, got = (run(session(m, "cpu", level="disabled"), feed)[0] for m in (canonical, merged))
        np.testing.assert_array_equal(got, want)


def test_uint8_restoring_alone_is_exact_below_127_steps() -> None:
    """NonNegativeToUint8 after the merge it builds on (its `after`), nothing else: the Relu's
    int8 Q becomes uint8 of the same scale, and on inputs below 127 steps nothing changes."""
    canonical = _conv_relu_conv()
    changed = ir.from_proto(canonical)
    counts = run_passes(changed, [MergeRequantizationBeforeRelu(), NonNegativeToUint8()])
    assert counts["uint8"] == 1, counts
    restored = ir.to_proto(changed)
    assert any(i.data_type == onnx.TensorProto.UINT8 for i in restored.graph.initializer)
    for feed in _feeds(0.1):
        want, got = (run(session(m, "cpu", level="disabled"), feed)[0] for m in (canonical, restored))
        np.testing.assert_array_equal(got, want)
    with pytest.raises(qonvert.InternalError, match="NonNegativeToUint8 runs after MergeRequantizationBeforeRelu"):
        run_passes(ir.from_proto(canonical), [NonNegativeToUint8()])


def _conv_then_affine(scale: np.ndarray, shift: np.ndarray) -> onnx.ModelProto:
    """PP-LCNet's pattern: a quantized conv whose output stays float, then a constant Mul and Add
    (its learnable affine block), then a HardSwish."""
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w", (8, 4, 3, 3))
    nodes = [
        *n1,
        *n2,
        helper.make_node("Conv", ["xq", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["scale", "c"], ["m"]),
        helper.make_node("Add", ["m", "shift"], ["a"]),
        helper.make_node("HardSwish", ["a"], ["y"]),
    ]
    constants = [onnx.numpy_helper.from_array(v.astype(np.float32), name) for v, name in ((scale, "scale"), (shift, "shift"))]
    inits = [*i1, *i2, *constants]
    m = model(nodes, inits, (1, 4, 6, 6), "y")
    m.opset_import[0].version = 14  # HardSwish
    return m


@pytest.mark.parametrize(
    ("scale", "shift", "folds"),
    [
        (np.array([0.7]), np.array([-0.2]), True),  # one value each (PP-LCNet)
        (np.linspace(-1.5, 1.5, 8).reshape(8, 1, 1) + 0.01, np.linspace(0, 1, 8).reshape(1, 8, 1, 1), True),  # per channel, some negative
        (np.linspace(0.5, 1.5, 6), np.array([0.1]), False),  # [W]: broadcast along the width, not the channels
    ],
    ids=["scalar", "per-channel", "along-width"],
)
def test_scale_and_shift_after_a_float_conv_fold_into_it(scale: np.ndarray, shift: np.ndarray, folds: bool) -> None:
    from qonvert.opsets.passes.batchnorm import fold_scale_shift

    source = _conv_then_affine(scale, shift)
    ir_model = ir.from_proto(source)
    assert fold_scale_shift(ir_model.graph) == int(folds)
    folded = ir.to_proto(ir_model)
    assert ("Mul" in {n.op_type for n in folded.graph.node}) != folds
    for feed in _feeds(2.0):
        want, got = (run(session(m, "cpu", level="disabled"), feed)[0] for m in (source, folded))
        assert np.ptp(want) > 1.0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # float rounding only


def test_calibration_takes_float_images_for_an_integer_input(tmp_path: Path) -> None:
    """The images verify takes for an int8-input model are quantized by the input's own parameters
    for calibration too: the same file as calibrating with their codes."""
    source = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "small_cnn_int8io.tflite"
    canonical = qonvert.convert(source).model
    spec = input_specs(canonical, None)[0]
    images = np.random.default_rng(0).uniform(-1, 1, (4, *spec.declared[1:])).astype(np.float32)
    codes, notes = quantize_float_feeds([spec], [{spec.name: images}])
    assert notes and codes[0][spec.name].dtype == np.int8
    np.savez(tmp_path / "floats.npz", **{spec.name: images})
    np.savez(tmp_path / "codes.npz", **{spec.name: codes[0][spec.name]})
    got = [
        qonvert.convert(source, tmp_path / f"{k}.onnx", speed=True, calibration=tmp_path / f"{k}.npz").output.read_bytes()
        for k in ("floats", "codes")
    ]
    assert got[0] == got[1]


@pytest.mark.parametrize("high", [1.0, 1.25], ids=["slopes-up-to-1", "a-slope-above-1"])
def test_prelu_as_elementwise_ops_is_bit_exact(high: float) -> None:
    from qonvert.opsets.passes.prelu import prelu_as_elementwise

    slope = np.linspace(-0.8, high, 8, dtype=np.float32).reshape(8, 1, 1)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 6, 6])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 6, 6])
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], "t", [x], [y], [onnx.numpy_helper.from_array(slope, "slope")])
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    ir_model = ir.from_proto(source)
    assert prelu_as_elementwise(ir_model.graph) == 1
    rewritten = ir.to_proto(ir_model)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "PRelu" not in ops and ("Max" in ops) == (high <= 1)
    feed = {
        "x": np.concatenate([np.random.default_rng(5).standard_normal(8 * 36 - 4), [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32).reshape(1, 8, 6, 6)
    }
    want, got = (run(session(m, "cpu"), feed)[0] for m in (source, rewritten))
    np.testing.assert_array_equal(got, want)


def test_ort_integer_kernels_against_the_qdq_graph_they_fuse() -> None:
    """What ORT's fused integer kernels (QLinearConv, QLinearAdd, ...) cost against the same file's
    QDQ graph run as written, on MediaPipe's face landmark model (ai-edge-quantizer's static int8),
    in the speed form with its PRelus rewritten: at most 2 steps on the 1404 landmark values of 16
    faces, measured (benchmarks/mobile_speed.py shows the same column for every model it times).
    (The one-value face score moved 22 steps on one face: a 3-level output, not asserted here.)"""
    from qonvert.runtime.compare import compare, output_lsb

    source = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "real" / "face_landmark_static_wi8_ai8.tflite"
    fast = qonvert.convert(source, speed=True)
    assert any("PRelus as plain elementwise ops" in r for r in fast.remarks)
    faces = np.load(source.parent / "faces_192.npz")
    spec = input_specs(fast.model, None)[0]
    feeds, _ = quantize_float_feeds([spec], [{spec.name: x[None]} for x in faces[faces.files[0]]])
    fused, literal = (session(fast.model, "cpu", level=level) for level in ("all", "basic"))
    name = fast.model.graph.output[0].name
    ours, ref = ([run(s, feed)[0] for feed in feeds] for s in (fused, literal))
    stats = compare(name, ours, ref, output_lsb(fast.model)[name] or 1.0)
    assert stats.levels > 100, stats.levels
    assert stats.max_diff_lsb <= 2.0 + 1e-6, stats.max_diff_lsb


@pytest.mark.parametrize("source", [PADDLE_RESIDUAL, FIXTURES / "real" / "ppocrv4_det_qdq"], ids=lambda p: p.name)
def test_calibration_ranges_do_not_depend_on_the_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    """The calibration run goes a segment of the model at a time (ort_segments.py): cut after every
    node it can, it writes the same file as in one piece."""
    from qonvert.targets import ort_segments

    if (source / "reference.npz").is_file():
        calibration = _calibration(tmp_path, source)
    else:  # PP-OCRv4 det (real weights): text-like images over the model's input range
        calibration = tmp_path / "calib.npz"
        np.savez(calibration, x=np.random.default_rng(5).uniform(-2.2, 2.6, (4, 3, 64, 64)).astype(np.float32))
    cut: list[int] = []
    segments = ort_segments._segments

    def counted(graph: onnx.GraphProto) -> list[ort_segments._Segment]:
        found = segments(graph)
        cut.append(len(found))
        return found

    monkeypatch.setattr(ort_segments, "_segments", counted)
    files = []
    for limit in (1 << 40, 0):
        monkeypatch.setattr(ort_segments, "SEGMENT_BYTES", limit)
        monkeypatch.setattr(ort_segments, "MAX_SEGMENTS", 1 << 20)
        out = tmp_path / f"{limit}.onnx"
        result = qonvert.convert(source, out, speed=True, calibration=calibration)
        assert any("calibrated uint8 Q/DQ" in r for r in result.remarks), result.remarks
        files.append(out.read_bytes())
    nodes = len(onnx.load(tmp_path / "0.onnx").graph.node)
    assert cut[0] == 1 and cut[1] >= 4, (cut, nodes)  # one piece, then at every boundary the cuts may take
    assert files[0] == files[1]


def test_calibration_samples_are_read_from_the_mapped_file(tmp_path: Path) -> None:
    """refio.load(mapped=True), as calibration loads its samples: what np.savez stores (uncompressed)
    comes as read-only views of the mapped file, either layout; a compressed file is read as before."""
    from qonvert.converters.source import mapped_files

    rng = np.random.default_rng(2)
    batch = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    ids = rng.integers(0, 9, (5, 7)).astype(np.int64)
    layouts = {
        "batch.npz": ({"x": batch, "ids": ids}, np.savez, 1),
        "per_sample.npz": ({f"input/x/{i}": batch[i : i + 1] for i in range(5)}, np.savez, 1),
        "compressed.npz": ({"x": batch, "ids": ids}, np.savez_compressed, 0),
    }
    for name, (arrays, save, files) in layouts.items():
        save(tmp_path / name, **arrays)
        plain, _, _ = refio.load(tmp_path / name)
        mapped, _, _ = refio.load(tmp_path / name, mapped=True)
        assert len(mapped) == len(plain) == 5
        assert all(np.array_equal(m[k], p[k]) and m[k].dtype == p[k].dtype for m, p in zip(mapped, plain, strict=True) for k in p)
        assert all(sorted(m) == sorted(p) for m, p in zip(mapped, plain, strict=True))
        arrays_read = [a for sample in mapped for a in sample.values()]
        assert len(mapped_files(arrays_read)) == files, name
        assert all(not a.flags.writeable for a in arrays_read) == bool(files), name
