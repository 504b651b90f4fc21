"""Each canonical rewrite (docs/design.md, "Exact rewrites") on a small graph: run alone, it fires
and keeps its promises, and on random data the rewritten graph computes what the original
computes (ORT with its own optimisations off, so only our rewrite is under test); run as the whole
canonicalisation, it leaves the intended structure and the contract holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

import qonvert
from qonvert.opsets.canonical import check_canonical
from qonvert.opsets.passes import RewritePass, canonical_passes, canonicalize, run_passes
from qonvert.opsets.passes.qdq import SplitSharedDQ
from qonvert.opsets.passes.shapes import Cleanup
from qonvert.runtime.ort import fusion_report, run, session

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Each test draws its weights and inputs from the same seed, whatever ran before it."""
    global RNG
    RNG = np.random.default_rng(0)


S_X, S_Y = np.float32(0.05), np.float32(0.08)  # input / output activation steps


def qdq(name: str, x: str, scale: float | np.ndarray, axis: int | None = None, dtype: type = np.int8, zero: int = 0) -> tuple[list, list]:
    """Q + DQ nodes (and their initializers) on tensor x; the dequantized tensor is `name`."""
    s = np.asarray(scale, np.float32)
    init = [numpy_helper.from_array(s, f"{name}_s"), numpy_helper.from_array(np.full(s.shape, zero, dtype), f"{name}_z")]
    kw = {"axis": axis} if axis is not None else {}
    nodes = [
        helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"], **kw),
        helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], **kw),
    ]
    return nodes, init


def weight(name: str, shape: tuple[int, ...], axis: int = 0) -> tuple[list, list]:
    """An int8 initializer + per-channel DQ; the dequantized weight is `name`."""
    q = RNG.integers(-127, 128, shape).astype(np.int8)
    s = RNG.uniform(0.005, 0.02, shape[axis]).astype(np.float32)
    init = [
        numpy_helper.from_array(q, f"{name}_q"),
        numpy_helper.from_array(s, f"{name}_s"),
        numpy_helper.from_array(np.zeros(shape[axis], np.int8), f"{name}_z"),
    ]
    return [helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], axis=axis)], init


def const(name: str, value: np.ndarray) -> list:
    return [numpy_helper.from_array(np.asarray(value, np.float32), name)]


def model(nodes: list, inits: list, in_shape: tuple[int, ...], out: str) -> onnx.ModelProto:
    """A one-input graph; the output's shape comes from ONNX shape inference."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    graph = helper.make_graph(nodes, "t", [x], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m.graph.output[0].CopyFrom(inferred.graph.output[0])
    return m


def conv_block(after: Callable[[str], tuple[list, list, str]], bias: bool = False) -> tuple[list, list, str]:
    """x -> Q/DQ -> Conv(int8 per-channel weight) -> `after`."""
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w", (8, 4, 3, 3))
    ins = ["xq", "w"] + (["b"] if bias else [])
    i3 = const("b", RNG.normal(size=8)) if bias else []
    conv = helper.make_node("Conv", ins, ["c"], pads=[1, 1, 1, 1], name="conv")
    n4, i4, out = after("c")
    return [*n1, *n2, conv, *n4], [*i1, *i2, *i3, *i4], out


def then_q(x: str) -> tuple[list, list, str]:
    nodes, init = qdq("y", x, S_Y)
    return nodes, init, "y"


@dataclass
class Case:
    name: str
    build: Callable[[], onnx.ModelProto]
    fired: str  # pass counter that must be > 0
    check: Callable[[onnx.ModelProto], bool]  # structure after the rewrite
    max_lsb: float = 0.0  # allowed |diff| in output steps (bias rounding to int32 only)


def _bn_then_relu_q() -> onnx.ModelProto:
    def after(c: str) -> tuple[list, list, str]:
        gamma = RNG.uniform(0.5, 1.5, 8)
        gamma[[1, 5]] *= -1  # negative gamma: the sign goes into the int8 weights
        init = [
            *const("g", gamma),
            *const("beta", RNG.normal(size=8)),
            *const("mu", RNG.normal(size=8) * 0.1),
            *const("var", RNG.uniform(0.5, 2.0, 8)),
        ]
        bn = helper.make_node("BatchNormalization", [c, "g", "beta", "mu", "var"], ["bn"], epsilon=1e-5)
        relu = helper.make_node("Relu", ["bn"], ["r"])
        n, i, out = then_q("r")
        return [bn, relu, *n], init + i, out

    return model(*conv_block(after, bias=True)[:2], (1, 4, 6, 6), "y")


def _bias_add_then_q() -> onnx.ModelProto:
    def after(c: str) -> tuple[list, list, str]:
        add = helper.make_node("Add", [c, "bias"], ["a"])
        n, i, out = then_q("a")
        return [add, *n], const("bias", RNG.normal(size=(1, 8, 1, 1))) + i, out

    return model(*conv_block(after)[:2], (1, 4, 6, 6), "y")


def _relu_pool_then_q() -> onnx.ModelProto:
    def after(c: str) -> tuple[list, list, str]:
        relu = helper.make_node("Relu", [c], ["r"])
        pool = helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2])
        flat = helper.make_node("Flatten", ["p"], ["f"])
        n, i, out = then_q("f")
        return [relu, pool, flat, *n], i, out

    return model(*conv_block(after)[:2], (1, 4, 6, 6), "y")


def _transposed_weight() -> onnx.ModelProto:
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w", (6, 5), axis=0)  # stored [out, in] with per-out-channel scales
    tr = helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0])
    mm = helper.make_node("MatMul", ["xq", "wt"], ["m"])
    return model([*n1, *n2, tr, mm], i1 + i2, (2, 5), "m")


def _layout_between_q_and_dq() -> onnx.ModelProto:
    s, z = const("s", S_X), [numpy_helper.from_array(np.int8(0), "z")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("Reshape", ["q", "shape"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"]),
    ]
    return model(nodes, s + z + [numpy_helper.from_array(np.array([2, -1], np.int64), "shape")], (2, 3, 4), "y")


def _shared_dq() -> onnx.ModelProto:
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w1", (5, 3), axis=1)
    n3, i3 = weight("w2", (5, 3), axis=1)
    nodes = [
        *n1,
        *n2,
        *n3,
        helper.make_node("MatMul", ["xq", "w1"], ["a"]),
        helper.make_node("MatMul", ["xq", "w2"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    return model(nodes, i1 + i2 + i3, (2, 5), "y")


def _two_convs_share_q() -> onnx.ModelProto:
    """Two quantized convs read one int8 activation (ResNet's first block and its downsample)."""
    n1, i1 = qdq("xq", "x", S_X)
    nodes, inits = [*n1], [*i1]
    for k in ("a", "b"):
        nw, iw = weight(f"w{k}", (8, 4, 1, 1))
        nq, iq = qdq(f"{k}q", f"{k}", S_Y)
        nodes += [*nw, helper.make_node("Conv", ["xq", f"w{k}"], [k], name=f"conv_{k}"), *nq]
        inits += [*iw, *iq]
    nodes.append(helper.make_node("Add", ["aq", "bq"], ["y"]))
    return model(nodes, inits, (1, 4, 6, 6), "y")


def _pad_then_maxpool(zero: int, dtype: type) -> onnx.ModelProto:
    """ResNet's pool after conv1 + ReLU as TFLite writes it: a zero PAD, then a VALID MaxPool, on a
    tensor quantized with its zero point at `zero`."""
    n1, i1 = qdq("xq", "x", S_X, dtype=dtype, zero=zero)
    pads = [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    n2, i2 = qdq("pq", "p", S_X, dtype=dtype, zero=zero)
    pool = helper.make_node("MaxPool", ["pq"], ["m"], kernel_shape=[3, 3], strides=[2, 2])
    n3, i3 = qdq("y", "m", S_X, dtype=dtype, zero=zero)
    return model([*n1, helper.make_node("Pad", ["xq", "pads"], ["p"]), *n2, pool, *n3], i1 + pads + i2 + i3, (1, 4, 8, 8), "y")


def _double_quantization() -> onnx.ModelProto:
    n1, i1 = qdq("a", "x", S_X)
    n2, i2 = qdq("y", "a", S_X * np.float32(1.37))  # re-quantized at a coarser step
    return model(n1 + n2, i1 + i2, (4, 64), "y")


def _same_double_quantization() -> onnx.ModelProto:
    n1, i1 = qdq("a", "x", S_X)
    n2, i2 = qdq("y", "a", S_X)
    return model(n1 + n2, i1 + i2, (4, 64), "y")


def _mixed_zero_points() -> onnx.ModelProto:
    """An asymmetric int8 tensor added to one whose zero point happens to be 0 (TFLite residuals)."""
    n1, i1 = qdq("a", "x", S_X, zero=-20)
    n2, i2 = qdq("b", "x", S_X * np.float32(0.7))
    n3, i3 = qdq("y", "s", S_Y, zero=5)
    return model([*n1, *n2, helper.make_node("Add", ["a", "b"], ["s"]), *n3], i1 + i2 + i3, (4, 64), "y")


def _matmul_in_noop_reshapes() -> onnx.ModelProto:
    """PIR's translation of a legacy `mul`: reshape -> MatMul -> reshape, each to the shape it has."""
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w", (5, 3), axis=1)
    shapes = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in (("s_in", [-1, 5]), ("s_w", [5, 3]), ("s_out", [0, -1]))]
    nodes = [
        *n1,
        *n2,
        helper.make_node("Reshape", ["xq", "s_in"], ["xr"]),
        helper.make_node("Reshape", ["w", "s_w"], ["wr"]),
        helper.make_node("MatMul", ["xr", "wr"], ["m"]),
        helper.make_node("Reshape", ["m", "s_out"], ["mr"]),
        helper.make_node("Add", ["mr", "bias"], ["a"]),
    ]
    n3, i3, out = then_q("a")
    return model(nodes + n3, i1 + i2 + shapes + const("bias", RNG.normal(size=3)) + i3, (2, 5), out)


def _flatten_into_matmul() -> onnx.ModelProto:
    """DQ -> Flatten -> MatMul: the MatMul must read a DQ of its own."""
    n1, i1 = qdq("xq", "x", S_X)
    n2, i2 = weight("w", (12, 3), axis=1)
    nodes = [*n1, *n2, helper.make_node("Flatten", ["xq"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])]
    return model(nodes, i1 + i2, (2, 3, 4), "y")


def _all_uint8(m: onnx.ModelProto) -> bool:
    zero_points = {i.name: i.data_type for i in m.graph.initializer}
    return all(zero_points[n.input[2]] == TensorProto.UINT8 for n in m.graph.node if n.op_type == "QuantizeLinear")


def _ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def _starved_channel() -> onnx.ModelProto:
    """Weight channel 2 at scale 1e-20 (PTQ of a nearly dead channel): its bias of about 1 is
    4e21 steps at s_x * s_w, past int32."""
    m = model(*conv_block(then_q, bias=True)[:2], (1, 4, 6, 6), "y")
    w_scale = next(i for i in m.graph.initializer if i.name == "w_s")
    values = numpy_helper.to_array(w_scale).copy()
    values[2] = 1e-20
    w_scale.CopyFrom(numpy_helper.from_array(values, "w_s"))
    return m


def _conv_weight_scale(m: onnx.ModelProto) -> np.ndarray:
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    dq = next(n for n in m.graph.node if n.output[0] == conv.input[1])
    return numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == dq.input[1]))


CASES = [
    Case(
        "batchnorm folded into weight scales, sign into int8",
        _bn_then_relu_q,
        "batchnorm_folded",
        lambda m: "BatchNormalization" not in _ops(m) and bool(np.all(_conv_weight_scale(m) > 0)),
        max_lsb=1.0,  # the folded bias is rounded to int32 at s_x*s_w
    ),
    Case(
        "a starved weight channel widens until its bias fits int32",
        _starved_channel,
        "bias_quantized",
        lambda m: 1e-12 < _conv_weight_scale(m)[2] < 1e-6,
        max_lsb=1.0,  # the bias is rounded to int32 at s_x*s_w
    ),
    Case("constant bias Add folded into the Conv", _bias_add_then_q, "bias_add_folded", lambda m: "Add" not in _ops(m), max_lsb=1.0),
    Case(
        "conv output quantized through Relu/MaxPool/Flatten",
        _relu_pool_then_q,
        "output_q_added",
        lambda m: _ops(m)[_ops(m).index("Conv") + 1] == "QuantizeLinear",
    ),
    Case("Transpose of an int8 weight folded, axis remapped", _transposed_weight, "constant_layout_folded", lambda m: "Transpose" not in _ops(m)),
    Case(
        "Q -> Reshape -> DQ becomes Q -> DQ -> Reshape",
        _layout_between_q_and_dq,
        "dq_pushed_through_layout",
        lambda m: _ops(m) == ["QuantizeLinear", "DequantizeLinear", "Reshape"],
    ),
    Case("a shared activation DQ is split per consumer", _shared_dq, "dq_split", lambda m: _ops(m).count("DequantizeLinear") == 4),
    Case(
        "an int8 Q read by two DQs gets a twin with its own scale and zero point",
        _two_convs_share_q,
        "q_twinned",
        lambda m: _ops(m).count("QuantizeLinear") == 4 and len({n.input[2] for n in m.graph.node if n.op_type == "QuantizeLinear"}) == 4,
    ),
    Case(
        "a zero Pad before a MaxPool of a non-negative tensor becomes the pool's pads",
        lambda: _pad_then_maxpool(0, np.uint8),
        "pad_folded",
        lambda m: "Pad" not in _ops(m),
    ),
    Case("double quantization kept exact", _double_quantization, "requantize_kept", lambda m: _ops(m).count("QuantizeLinear") == 2),
    Case("same-scale double quantization removed", _same_double_quantization, "requantize_removed", lambda m: _ops(m).count("QuantizeLinear") == 1),
    Case("asymmetric graph: every int8 activation becomes uint8, zero point 0 too", _mixed_zero_points, "activations_to_uint8", _all_uint8),
    Case(
        "reshapes to the shape a tensor has are dropped (the bias Add then folds)",
        _matmul_in_noop_reshapes,
        "noop_reshape_dropped",
        lambda m: "Reshape" not in _ops(m) and "Add" not in _ops(m),
        max_lsb=1.0,  # the folded bias is rounded to int32 at s_x*s_w
    ),
    Case(
        "DQ -> Flatten -> MatMul: the Flatten's output quantized with the DQ's parameters",
        _flatten_into_matmul,
        "layout_output_quantized",
        lambda m: _ops(m)[_ops(m).index("MatMul") - 1] == "DequantizeLinear",
    ),
]


def _outputs(m: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], level: str = "disabled") -> np.ndarray:
    sess = session(m, "cpu", level=level)
    return np.stack([run(sess, f)[0] for f in feeds])


def _assert_exact(before: onnx.ModelProto, after: onnx.ModelProto, max_lsb: float) -> None:
    shape = [d.dim_value for d in before.graph.input[0].type.tensor_type.shape.dim]
    feeds = [{"x": (RNG.standard_normal(shape) * 2).astype(np.float32)} for _ in range(20)]
    want, got = _outputs(before, feeds), _outputs(after, feeds)
    diff = np.abs(want - got) / S_Y
    assert diff.max() <= max_lsb + 1e-4, f"max {diff.max():.3f} output steps"
    if max_lsb:
        assert (diff < 1e-3).mean() >= 0.99, f"only {(diff < 1e-3).mean():.2%} exact"


def _pass_counting(name: str) -> type[RewritePass]:
    return next(type(p) for p in canonical_passes() if isinstance(p, RewritePass) and name in p.counts_as)


def _with_prerequisites(chosen: type[RewritePass]) -> list[RewritePass]:
    """The pass, after those it builds on (its `after`, and theirs), in the pipeline's order."""
    pipeline = [p for p in canonical_passes() if isinstance(p, RewritePass)]
    needed, pending = {chosen.__name__}, list(chosen.after)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += next(p for p in pipeline if type(p).__name__ == name).after
    kept: list[RewritePass] = []
    for p in pipeline:  # each once (the pipeline's closing Cleanup follows)
        if type(p).__name__ in needed and type(p) not in {type(k) for k in kept}:
            kept.append(p)
    return kept


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pass_alone_is_exact(case: Case) -> None:
    """The pass that counts `case.fired`, run under a PassManager with only the passes it builds
    on before it: it fires, its promises hold (checked by its `ensures`), and the graph computes
    what it did."""
    before = case.build()
    ir_model = ir.from_proto(before)
    chosen = _with_prerequisites(_pass_counting(case.fired))
    assert len(chosen) <= 4, [type(p).__name__ for p in chosen]  # alone, or nearly
    counts = run_passes(ir_model, [*chosen, Cleanup(shapes=None)])  # the last: the pipeline's own close
    after = ir.to_proto(ir_model)
    onnx.checker.check_model(after, full_check=True)
    assert counts[case.fired] > 0, counts
    _assert_exact(before, after, case.max_lsb)


def test_pass_order_is_required() -> None:
    """A pass run before one it builds on is an internal error naming both."""
    ir_model = ir.from_proto(_bn_then_relu_q())
    with pytest.raises(qonvert.QonvertError, match="internal error, FoldBatchnorm runs after FoldBiasAdd"):
        run_passes(ir_model, [_pass_counting("batchnorm_folded")()])


def test_pass_promise_is_checked() -> None:
    """A pass that leaves what it promises (here: a shared activation DQ) is an internal error."""

    class Idle(SplitSharedDQ):
        def rewrite(self, graph: ir.Graph) -> int:
            return 0

    with pytest.raises(qonvert.QonvertError, match=r"internal error, Idle left DequantizeLinear .* shared by 2 consumers"):
        run_passes(ir.from_proto(_shared_dq()), [Idle()])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rewrite_is_exact(case: Case) -> None:
    before = case.build()
    onnx.checker.check_model(before, full_check=True)
    ir_model = ir.from_proto(before)
    counts = canonicalize(ir_model)
    after = ir.to_proto(ir_model)
    onnx.checker.check_model(after, full_check=True)
    assert counts[case.fired] > 0, counts
    assert case.check(after), _ops(after)
    assert check_canonical(after) == []
    _assert_exact(before, after, case.max_lsb)


def test_twinned_q_lets_ort_fuse_both_convs() -> None:
    """ORT re-stores an int8 Q/DQ pair as uint8 only where the Q has one DQ; a Q shared by two
    convs left both in float (the first conv and the downsample of each ResNet stage)."""
    before = _two_convs_share_q()
    assert fusion_report(before).fused == 0
    m = ir.from_proto(before)
    canonicalize(m)
    assert fusion_report(ir.to_proto(m)).fused == 2


def test_double_quantization_survives_ort_optimisations() -> None:
    """ORT's DoubleQDQPairsRemover would merge the two roundings at a new scale; after our pass
    ORT at full optimisation computes round(round(x/a)*a/b)*b like the source."""
    m = ir.from_proto(_double_quantization())
    canonicalize(m)
    feeds = [{"x": (RNG.standard_normal((4, 64)) * 3).astype(np.float32)} for _ in range(5)]
    got = _outputs(ir.to_proto(m), feeds, level="all")
    a, b = S_X, S_X * np.float32(1.37)
    x = np.stack([f["x"] for f in feeds])
    first = np.clip(np.round(x / a), -128, 127).astype(np.float32) * a
    want = np.clip(np.round(first / b), -128, 127).astype(np.float32) * b
    np.testing.assert_array_equal(got, want)


def _integer_output(m: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph ending in its last Q: an int8-I/O model whose output is the quantized tensor."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    last = next(n for n in m.graph.node if m.graph.output[0].name in n.output)
    assert last.op_type == "DequantizeLinear"
    m.graph.node.remove(last)
    inferred = onnx.shape_inference.infer_shapes(m)
    value = next(v for v in [*inferred.graph.value_info] if v.name == last.input[0])
    m.graph.output[0].CopyFrom(value)
    return m


def _every_tensor_an_output(m: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every computed tensor also a graph output (a pass may not assume a
    tensor it rewrites has only node consumers)."""
    m = onnx.shape_inference.infer_shapes(onnx.ModelProto.FromString(m.SerializeToString()))
    outputs = {o.name for o in m.graph.output}
    m.graph.output.extend(v for v in m.graph.value_info if v.name not in outputs)
    return m


ENDS_IN_DQ = [c for c in CASES if c.build().graph.node[-1].op_type == "DequantizeLinear"]
GRAPH_OUTPUT_CASES = [(c, _integer_output) for c in ENDS_IN_DQ] + [(c, _every_tensor_an_output) for c in CASES]


@pytest.mark.parametrize(
    ("case", "variant"), GRAPH_OUTPUT_CASES, ids=[f"{c.name}-{v.__name__.strip('_').replace('_', ' ')}" for c, v in GRAPH_OUTPUT_CASES]
)
def test_rewrite_with_graph_outputs(case: Case, variant: Callable[[onnx.ModelProto], onnx.ModelProto]) -> None:
    """Every pass on the tensors it rewrites as graph outputs: no crash, outputs keep their names,
    the contract holds and every output computes what it did."""
    before = variant(case.build())
    onnx.checker.check_model(before, full_check=True)
    ir_model = ir.from_proto(before)
    canonicalize(ir_model)
    after = ir.to_proto(ir_model)
    onnx.checker.check_model(after, full_check=True)
    assert check_canonical(after) == []
    assert [o.name for o in after.graph.output][:1] == [before.graph.output[0].name]
    shape = [d.dim_value for d in before.graph.input[0].type.tensor_type.shape.dim]
    feeds = [{"x": (RNG.standard_normal(shape) * 2).astype(np.float32)} for _ in range(10)]
    want = [run(session(before, "cpu", level="disabled"), f) for f in feeds]
    got = [run(session(after, "cpu", level="disabled"), f) for f in feeds]
    integer = before.graph.output[0].type.tensor_type.elem_type != TensorProto.FLOAT
    for w, g in zip(want, got, strict=True):
        assert len(w) == len(g)
        a, b = np.asarray(w[0], np.float64), np.asarray(g[0], np.float64)
        if integer:  # uint8 storage moves an int8 output by 128 only inside: the output stays int8
            assert g[0].dtype == w[0].dtype
        diff = np.abs(a - b) / (1.0 if integer else S_Y)
        assert diff.max() <= case.max_lsb + 1e-4


def test_zero_pad_stays_before_a_maxpool_of_signed_values() -> None:
    """A window of negative values would take the padded 0 as its max: not folded."""
    m = ir.from_proto(_pad_then_maxpool(0, np.int8))
    assert canonicalize(m)["pad_folded"] == 0
    assert "Pad" in _ops(ir.to_proto(m))


def test_zero_pad_folds_into_the_conv_it_feeds() -> None:
    """TFLite's ZeroPadding2D before a strided VALID conv (resnet_blocks): the PAD reaches the conv
    through Q/DQ and the edge Transpose; it becomes the conv's pads, exact against LiteRT."""
    from pathlib import Path

    import qonvert

    path = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "resnet_blocks_int8.tflite"
    result = qonvert.convert(path)
    assert result.pass_counts["pad_folded"] == 1
    nodes = result.model.graph.node
    assert not any(n.op_type == "Pad" for n in nodes)
    first_conv = next(n for n in nodes if n.op_type == "Conv")
    assert next(list(a.ints) for a in first_conv.attribute if a.name == "pads") == [1, 1, 1, 1]
    report = qonvert.verify(path, result.model, samples=20, fusion=False)
    assert report.outputs[0].max_diff_lsb == 0.0 and report.outputs[0].levels >= 8, report.outputs[0]


def test_a_batchnorm_with_a_negative_variance_stays_unfolded() -> None:
    """A variance below -epsilon (a corrupt file; the coverage campaign's inputs) has no folding
    factor: numpy warned 'invalid value in sqrt' through the API and folded NaNs into the weights.
    The BN stays, computing what the source computes, and nothing warns."""
    import warnings

    bad = _bn_then_relu_q()
    var = next(i for i in bad.graph.initializer if i.name == "var")
    values = numpy_helper.to_array(var).copy()
    values[3] = -1.0
    var.CopyFrom(numpy_helper.from_array(values, "var"))
    m = ir.from_proto(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = canonicalize(m)
    assert counts.get("batchnorm_folded", 0) == 0 and "BatchNormalization" in _ops(ir.to_proto(m))
    m = ir.from_proto(_bn_then_relu_q())  # the same model with every variance positive folds
    assert canonicalize(m)["batchnorm_folded"] == 1


@pytest.mark.parametrize(("s_x", "s_w"), [(1e-36, None), (1e-44, None), (1e10, 1e30)])
def test_a_bias_scale_outside_float32s_normal_range_is_the_files_error(s_x: float, s_w: float | None) -> None:
    """s_x * s_w under float32's smallest normal (a denormal keeps fewer digits than the contract's
    1e-6; under 1e-45 it is 0, and the bias divides by it) or past its largest (inf): no int32 bias
    at s_x * s_w exists in float32. Found by the pdiparams coverage campaign, as an internal error
    out of the contract."""
    import warnings

    bad = model(*conv_block(then_q, bias=True)[:2], (1, 4, 6, 6), "y")
    scale = next(i for i in bad.graph.initializer if i.name == "xq_s")
    scale.CopyFrom(numpy_helper.from_array(np.float32(s_x), "xq_s"))
    if s_w is not None:
        w_scale = next(i for i in bad.graph.initializer if i.name == "w_s")
        w_scale.CopyFrom(numpy_helper.from_array(np.full(8, s_w, np.float32), "w_s"))
    with warnings.catch_warnings(), pytest.raises(qonvert.InputError, match=r"op Conv conv: its bias scale s_x \* s_w .* outside float32's normal"):
        warnings.simplefilter("error")
        canonicalize(ir.from_proto(bad))
    ok = model(*conv_block(then_q, bias=True)[:2], (1, 4, 6, 6), "y")  # the same conv at a usual s_x converts
    assert canonicalize(ir.from_proto(ok))["bias_quantized"] == 1


@pytest.mark.parametrize("shape", [(5,), (8, 1)])
def test_batchnorm_parameters_of_another_channel_count_are_the_files_error(shape: tuple[int, ...]) -> None:
    """A BN whose scale is not one value per output channel of the conv before it (a ProgramDesc
    coverage finding: 10 values after a conv of 16 channels) reached numpy's broadcast while
    folding, an internal error; it is the file's error, naming the op. A [C, 1] vector too: folded,
    it would have broadcast into a [C, C] weight scale."""
    bad = _bn_then_relu_q()
    bad.graph.node[next(k for k, n in enumerate(bad.graph.node) if n.op_type == "BatchNormalization")].name = "bn"
    gamma = next(i for i in bad.graph.initializer if i.name == "g")
    gamma.CopyFrom(numpy_helper.from_array(RNG.uniform(0.5, 1.5, shape).astype(np.float32), "g"))
    with pytest.raises(qonvert.InputError, match=r"op BatchNormalization bn: its parameter 'g' has shape \[.*\] after a conv of 8 output channels"):
        canonicalize(ir.from_proto(bad))


def test_a_bias_no_float32_weight_scale_can_widen_to_is_the_files_error() -> None:
    """A bias too large for int32 at s_x * s_w widens its channel's weight scale; where even the
    largest float32 scale is too small (a bias of 1e38 at s_x 1e-30), the cast overflowed (an
    internal error under warnings as errors): it is the file's 'does not fit int32'."""
    import warnings

    bad = model(*conv_block(then_q, bias=True)[:2], (1, 4, 6, 6), "y")
    for name, value in (("xq_s", np.float32(1e-30)), ("b", np.full(8, 1e38, np.float32))):
        init = next(i for i in bad.graph.initializer if i.name == name)
        init.CopyFrom(numpy_helper.from_array(value, name))
    with warnings.catch_warnings(), pytest.raises(qonvert.InputError, match=r"op Conv conv: a bias of 1e\+38 does not fit int32"):
        warnings.simplefilter("error")
        canonicalize(ir.from_proto(bad))
