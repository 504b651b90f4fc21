"""TFLite control flow (fixtures/tflite/patterns, made by make_single_ops.py with TFLiteConverter):
WHILE becomes an ONNX Loop, IF an ONNX If, their subgraphs mapped like the main graph and holding
the quantized ops TFLiteConverter put there. Checked against LiteRT run live: on verify's inputs,
on inputs chosen to take each branch and each trip count, and on many inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import qonvert
from qonvert.converters import build, load_source
from qonvert.converters.source import SourceGraph, SourceOp, TensorInfo
from qonvert.converters.tflite.quant import multiply_by_quantized_multiplier, quantize_multiplier
from qonvert.errors import UnsupportedOpsError
from qonvert.opsets.canonical import check_canonical
from qonvert.opsets.qparams import QuantParams
from qonvert.runtime.ort import run, session
from qonvert.runtime.reference.litert import run_reference

PATTERNS = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "patterns"
CONTROL_FLOW = [f"{name}_{kind}" for name in ("while_loop", "branch", "loop_with_branch") for kind in ("int8", "int8io")]


def _ops(graph: onnx.GraphProto) -> list[str]:
    """Op types of the graph and, nested, of its subgraphs."""
    types = []
    for node in graph.node:
        types.append(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                types += _ops(attr.g)
    return types


@pytest.mark.parametrize("stem", CONTROL_FLOW)
def test_control_flow_converts_to_onnx_control_flow(stem: str) -> None:
    model = qonvert.convert(PATTERNS / f"{stem}.tflite").model
    onnx.checker.check_model(model, full_check=True)
    assert check_canonical(model) == []
    top = [n.op_type for n in model.graph.node]
    nested = _ops(model.graph)[len(top) :]
    expected = {"while_loop": ["Loop"], "branch": ["If"], "loop_with_branch": ["Loop"]}[stem.rsplit("_", 1)[0]]
    assert [t for t in top if t in ("Loop", "If")] == expected
    assert ("If" in nested) == stem.startswith("loop_with_branch")  # the IF inside the WHILE body
    assert "QuantizeLinear" in nested and "DequantizeLinear" in nested, nested  # quantized ops inside


def _differences(path: Path, rows: np.ndarray) -> np.ndarray:
    """Per sample (one per row, broadcast over the input), the largest |LiteRT - ORT| in the
    output's steps (its quantization; int8 outputs are compared as codes)."""
    source = load_source(path)
    (info,) = source.inputs
    out = source.outputs[0]
    feeds = [{info.name: np.full(info.shape, row, dtype=info.dtype)} for row in rows]
    sess = session(qonvert.convert(path).model)
    reference = [r[0] for r in run_reference(path, feeds)]
    ours = [run(sess, feed)[0] for feed in feeds]
    qp = source.quant.get(out)
    step = 1.0 if qp is not None else _output_step(source)
    return np.array([np.abs(r.astype(np.float64) - o.astype(np.float64)).max() / step for r, o in zip(reference, ours, strict=True)])


def _output_step(source: SourceGraph) -> float:
    """A float output's step: the scale of the QUANTIZE its DEQUANTIZE reads."""
    (dequantize,) = [op for op in source.ops if op.type == "DEQUANTIZE" and op.outputs["out"] == [source.outputs[0]]]
    return float(source.quant[dequantize.inputs["in"][0]].scale)


SWEEP = np.arange(-128, 128)  # every input code, the same on each element
# Measured figures of a sweep that misses the 1-step bar (strict: a change that meets it must say so)
SWEEP_BELOW_BAR = {
    "loop_with_branch_int8io": "measured 2 steps on 5 of 256 inputs (2026-12-07): the 1-step BATCH_MATMUL "
    "requantization differences of branch_int8io (below), fed back through up to 5 iterations",
}


@pytest.mark.parametrize("stem", [s for s in CONTROL_FLOW if s.endswith("int8io")])
def test_every_branch_and_trip_count_matches_litert(stem: str, request: pytest.FixtureRequest) -> None:
    """Each input code on every element: both IF branches (the sign of the sum picks one) and every
    trip count of loop_with_branch (1 to 5, set by the sum of |x|) are taken; each output is within
    1 step of LiteRT's, and nearly all exact."""
    if stem in SWEEP_BELOW_BAR:
        request.applymarker(pytest.mark.xfail(strict=True, reason=SWEEP_BELOW_BAR[stem]))
    differences = _differences(PATTERNS / f"{stem}.tflite", SWEEP)
    assert (differences == 0).mean() >= 0.97, np.nonzero(differences)[0] - 128
    assert differences.max() <= 1, {int(c): float(d) for c, d in zip(SWEEP, differences, strict=True) if d > 1}


def test_branch_differences_are_litert_s_matmul_rounding() -> None:
    """Where branch_int8io's output departs from LiteRT's, and only there, LiteRT's fixed-point
    BATCH_MATMUL (MultiplyByQuantizedMultiplier) and the QDQ graph's float rescaling give codes one
    step apart: the IF itself is exact."""
    path = PATTERNS / "branch_int8io.tflite"
    source = load_source(path)
    then_branch = next(sub for sub in source.subgraphs.values() if any(op.type == "BATCH_MATMUL" for op in sub.ops))
    (matmul,) = [op for op in then_branch.ops if op.type == "BATCH_MATMUL"]
    x, w = (then_branch.quant[n] for n in matmul.inputs["in"])
    y = then_branch.quant[matmul.outputs["out"][0]]
    (info,) = source.inputs
    given = source.quant[info.name]
    (if_op,) = [op for op in source.ops if op.type == "IF"]
    weights = source.constants[next(n for n in if_op.inputs["in"][1:] if n in source.constants)]
    multiplier, shift = quantize_multiplier(float(np.float64(x.scale) * np.float64(w.scale) / np.float64(y.scale)))

    def codes(real: np.ndarray, qp: QuantParams) -> np.ndarray:  # LiteRT's QUANTIZE: halves away from zero
        scaled = real / np.float32(qp.scale)
        return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + int(qp.zero_point), -128, 127).astype(np.int64)

    fixed_point_apart = []
    for code in SWEEP:
        real = np.full(16, (code - int(given.zero_point)) * np.float32(given.scale), np.float32)
        if real.sum() <= 0:
            fixed_point_apart.append(False)  # the else branch: no matmul
            continue
        acc = (codes(real, x) - int(x.zero_point)) @ (codes(weights, w) - int(w.zero_point))
        litert = np.array([multiply_by_quantized_multiplier(int(a), multiplier, shift) for a in acc])
        qdq = np.round(acc.astype(np.float32) * (np.float32(x.scale) * np.float32(w.scale)) / np.float32(y.scale))
        # steps above the zero point, the fused ReLU clamping at 0
        fixed_point_apart.append(bool(np.any(np.maximum(litert, 0) != np.maximum(qdq, 0))))
    differences = _differences(path, SWEEP)
    assert sum(fixed_point_apart) >= 3  # the comparison below compares something
    assert list(differences > 0) == fixed_point_apart


def test_unsupported_ops_inside_subgraphs_are_listed_with_the_rest() -> None:
    """The pre-flight lists every unsupported op at once, those in a loop body included."""
    body = SourceGraph(
        "tflite", "m.tflite", [SourceOp("FANCY_BODY_OP", {"in": ["v"]}, {"out": ["w"]})], [TensorInfo("v", (1,), "float32")], ["w"], {}
    )
    cond = SourceGraph(
        "tflite",
        "m.tflite",
        [SourceOp("LESS", {"in": ["c", "k"]}, {"out": ["b"]})],
        [TensorInfo("c", (1,), "float32")],
        ["b"],
        {"k": np.ones(1, np.float32)},
    )
    main = SourceGraph(
        "tflite",
        "m.tflite",
        [
            SourceOp("FANCY_MAIN_OP", {"in": ["x"]}, {"out": ["y"]}),
            SourceOp("WHILE", {"in": ["y"]}, {"out": ["z"]}, {"CondSubgraphIndex": 1, "BodySubgraphIndex": 2}),
        ],
        [TensorInfo("x", (1,), "float32")],
        ["z"],
        {},
        subgraphs={1: cond, 2: body},
    )
    with pytest.raises(UnsupportedOpsError) as caught:
        build(main)
    assert "FANCY_BODY_OP" in str(caught.value) and "FANCY_MAIN_OP" in str(caught.value)


@pytest.mark.parametrize("stem", ["branch_int8io", "loop_with_branch_int8io"])
def test_per_layer_takes_control_flow_as_one_layer(stem: str) -> None:
    """verify --per-layer cuts the main graph's quantized tensors: an IF whose output is quantized is
    one layer (its branches inside), within 1 step; the scalar quantized sum both models test is
    fed as a 0-d tensor."""
    path = PATTERNS / f"{stem}.tflite"
    report = qonvert.verify(path, qonvert.convert(path).model, bar="per-layer", samples=10)
    assert report.layers, report
    assert all(layer.max_steps <= 1 for layer in report.layers), [(layer.name, layer.max_steps) for layer in report.layers]
    assert any("If" in layer.op for layer in report.layers) == stem.startswith("branch"), [layer.op for layer in report.layers]
    assert any(layer.shape == () for layer in report.layers), [layer.shape for layer in report.layers]


def test_recursive_control_flow_is_one_error(tmp_path: Path) -> None:
    """A corrupt file whose loop body's IF runs the body again: one line naming the recursion, not a
    conversion that never ends."""
    import tflite

    data = bytearray((PATTERNS / "loop_with_branch_int8.tflite").read_bytes())
    model = tflite.Model.GetRootAs(data, 0)
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for k in range(sub.OperatorsLength()):
            op = sub.Operators(k)
            if op.BuiltinOptionsType() == tflite.BuiltinOptions.IfOptions:
                table = op.BuiltinOptions()
                options = tflite.IfOptions()
                options.Init(table.Bytes, table.Pos)
                field = table.Pos + options._tab.Offset(4)  # ThenSubgraphIndex, an int32
                data[field : field + 4] = s.to_bytes(4, "little")  # the IF's then-branch: its own subgraph
    broken = tmp_path / "recursive.tflite"
    broken.write_bytes(bytes(data))
    with pytest.raises(qonvert.QonvertError, match=r"runs itself through WHILE / IF \(recursion\)"):
        qonvert.convert(broken)


def test_loop_values_cross_as_codes() -> None:
    """A loop value that is an int8 tensor crosses into the body and out as its codes, read with the
    receiving tensor's own quantization (LiteRT passes the bytes): here the body passes it through
    untouched while counting to 3, and the WHILE's output has twice the input's scale."""
    scale = QuantParams(np.float32(0.05), np.int64(3), "int8")
    body = SourceGraph(
        "tflite",
        "m.tflite",
        [SourceOp("ADD", {"in": ["i", "one"]}, {"out": ["i_next"]})],
        [TensorInfo("i", (), "int32"), TensorInfo("v", (1, 4), "int8")],
        ["i_next", "v"],
        {"one": np.int32(1)},
        quant={"v": scale},
        dtypes={"i": "int32", "v": "int8", "i_next": "int32"},
        shapes={"i": (), "v": (1, 4), "i_next": ()},
    )
    cond = SourceGraph(
        "tflite",
        "m.tflite",
        [SourceOp("LESS", {"in": ["c", "three"]}, {"out": ["more"]})],
        [TensorInfo("c", (), "int32"), TensorInfo("w", (1, 4), "int8")],
        ["more"],
        {"three": np.int32(3)},
        quant={"w": scale},
        dtypes={"c": "int32", "w": "int8", "more": "bool"},
        shapes={"c": (), "w": (1, 4), "more": ()},
    )
    main = SourceGraph(
        "tflite",
        "m.tflite",
        [SourceOp("WHILE", {"in": ["zero", "x"]}, {"out": ["count", "y"]}, {"CondSubgraphIndex": 1, "BodySubgraphIndex": 2})],
        [TensorInfo("x", (1, 4), "int8")],
        ["count", "y"],
        {"zero": np.int32(0)},
        quant={"x": scale, "y": QuantParams(np.float32(0.1), np.int64(3), "int8")},
        dtypes={"x": "int8", "y": "int8", "count": "int32", "zero": "int32"},
        shapes={"x": (1, 4), "y": (1, 4), "count": ()},
        subgraphs={1: cond, 2: body},
    )
    model = ir.serde.serialize_model(build(main).model)
    onnx.checker.check_model(model, full_check=True)
    assert check_canonical(model) == []
    codes = np.array([[-128, -1, 3, 127]], np.int8)
    count, y = run(session(model), {"x": codes})
    assert int(count) == 3 and np.array_equal(y, codes), (count, y)  # the same codes, now read at 0.1
