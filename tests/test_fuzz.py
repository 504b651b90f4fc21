"""Hostile input: mutated Paddle ProgramDesc, PIR, .pdiparams, .tflite and .pt2 files (tests/fuzzing.py,
and the coverage-guided targets of tests/coverage_fuzz.py)
must convert or fail with one short QonvertError line; never another exception, an "internal
error", a hang, a signal or runaway memory (each case runs in a capped worker process). A fast
slice runs in the normal suite (hypothesis draws the mutations); `pytest -m fuzz` runs 10,000
cases per format. Files that once broke the promise stay as regression cases (tests/fuzz_corpus/),
and each class found has a direct test below."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qonvert
from qonvert.converters.paddle.params import _read_tensor
from qonvert.converters.paddle.protobuf import Message
from qonvert.converters.source import SourceOp
from qonvert.errors import QonvertError
from qonvert.opsets.builder import GraphBuilder
from qonvert.opsets.qparams import QuantParams

from .coverage_fuzz import TARGETS, Cases
from .fuzzing import SEEDS, Harness, campaign, mutator_for, seed_bytes

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
FORMATS = sorted(SEEDS)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_fast_slice(fmt: str, harness: Harness) -> None:
    mutator = mutator_for(fmt, seed_bytes(fmt))

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.randoms(use_true_random=False))
    def case(rng):  # type: ignore[no-untyped-def]
        outcome = harness.run(fmt, mutator(rng))
        assert outcome.kind in ("ok", "error"), outcome

    case()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*/*.bin")), ids=lambda p: p.name)
def test_regression_corpus(path: Path, harness: Harness) -> None:
    outcome = harness.run(path.parent.name, path.read_bytes())
    assert outcome.kind in ("ok", "error"), outcome


@pytest.mark.parametrize("path", sorted(CORPUS.glob("coverage-*/*")), ids=lambda p: f"{p.parent.name}/{p.name[:16]}")
def test_coverage_findings(path: Path, harness: Harness, tmp_path: Path) -> None:
    """What the coverage-guided targets (coverage_fuzz.py) found, in their input encoding."""
    cases = Cases(path.parent.name.removeprefix("coverage-"), tmp_path)
    outcome = harness.run_path(cases.write(path.read_bytes()))
    assert outcome.kind in ("ok", "error"), outcome


@pytest.mark.parametrize("fmt", sorted(TARGETS))
def test_coverage_guided_slice(fmt: str, tmp_path: Path) -> None:
    """A few hundred executions of each coverage-guided target (the campaigns run for millions:
    python -m tests.coverage_fuzz FORMAT --runs N), from the fixture seeds and the findings kept."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.coverage_fuzz", fmt, "--runs", "300", "--work", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = "\n".join(line for line in run.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))[-3000:]
    assert run.returncode == 0, tail
    done = re.search(r"Done (\d+) runs", run.stderr)  # libFuzzer may pass the count by a few (303)
    assert done is not None and int(done.group(1)) >= 300, tail
    assert not list(tmp_path.glob("finding-*")), tail


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", FORMATS)
def test_ten_thousand_cases(fmt: str, tmp_path: Path) -> None:
    found = campaign(fmt, 10_000, seed=1, keep=tmp_path / "findings")
    assert not found, {kind: details[:10] for kind, details in found.items()}


# -- each class found, directly ------------------------------------------------------------


def test_wire_type_confusion_allocates_nothing() -> None:
    """A string field written as a varint of 2^62: bytes(n) would allocate n bytes."""
    huge_varint = b"\x08" + b"\xff" * 8 + b"\x3f"  # field 1, wire type 0
    with pytest.raises(QonvertError, match="field 1 is not a string"):
        Message(huge_varint, "ProgramDesc").string(1)
    with pytest.raises(QonvertError, match="not a message"):
        Message(huge_varint, "ProgramDesc").messages(1, "x")


def test_a_zero_activation_scale_is_refused_without_numpy_warnings(tmp_path: Path) -> None:
    """A frozen quantized conv whose input's scale is 0 (PIR coverage campaign): the weight's factor
    divides by it. It was refused later, after numpy's divide-by-zero warnings on stderr."""
    import warnings

    found = CORPUS / "coverage-pir" / "zero-activation-scale-19a606459eda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(QonvertError, match=r"the scale of its input 'v10' is 0.0, not positive and finite"):
            qonvert.convert(Cases("pir", tmp_path).write(found.read_bytes()))


def test_huge_lod_size_is_refused() -> None:
    buf = struct.pack("<IQQ", 0, 1, 1 << 63) + bytes(16)
    with pytest.raises(ValueError, match="past the end"):
        _read_tensor(memoryview(buf), 0)


@pytest.mark.parametrize("value", [[1, 2], None, "", float("nan"), 1 << 70, True])
def test_typed_attribute_accessors(value: object) -> None:
    op = SourceOp("conv2d", {}, {"Output": ["y"]}, {"groups": value, "strides": value, "alpha": value})
    with pytest.raises(QonvertError, match=r"op conv2d -> y: attribute groups="):
        op.int_attr("groups", default=1, low=1, high=1 << 31)
    if value == [1, 2]:
        assert op.ints_attr("strides", default=[1, 1], low=1) == [1, 2]
    else:
        with pytest.raises(QonvertError, match="attribute strides="):
            op.ints_attr("strides", default=[1, 1], low=1)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        with pytest.raises(QonvertError, match="attribute alpha="):
            op.float_attr("alpha", default=1.0)


def test_zero_stride_is_refused_before_arithmetic() -> None:
    op = SourceOp("conv2d", {}, {"Output": ["y"]}, {"strides": [0, 1]})
    with pytest.raises(QonvertError, match=r"is not a list of integers >= 1"):
        op.ints_attr("strides", default=[1, 1], low=1)


@pytest.mark.parametrize(("qmin", "qmax"), [(float("inf"), 127), (-128, 1 << 80), (5, 2), (-1000, 127)])
def test_quantization_range_checked(qmin: object, qmax: object) -> None:
    with pytest.raises(QonvertError, match="quantization range"):
        QuantParams(np.float32(0.1), np.int64(0), "int8", None, qmin, qmax)  # type: ignore[arg-type]


def test_non_attribute_values_are_one_error() -> None:
    builder = GraphBuilder()
    with pytest.raises(QonvertError, match="not valid ONNX attribute values"):
        builder.op("Conv", [], {"pads": [[1, 2], [3]]})


def test_error_text_is_bounded() -> None:
    """Names come from the file: a megabyte name is shortened in the middle, the line capped."""
    name = "a" * 10_000 + "_end"
    message = str(QonvertError(f"model.tflite: tensor {name}: shape [-5] is not a tensor shape " + "x " * 2000))
    assert len(message) <= 1000 and "_end" in message and "…" in message and message.startswith("model.tflite: tensor")


def test_values_that_explode_are_bounded_before_arithmetic() -> None:
    from qonvert.converters.paddle.pir import _fold_constant
    from qonvert.converters.paddle.quant import bin_count

    with pytest.raises(QonvertError, match="bit_length"):
        bin_count(2**63 - 1)  # 2 ** (2**63 - 2) would never finish
    with pytest.raises(ValueError, match="elements to materialise"):
        _fold_constant("full", {"shape": [100_000, 100_000], "value": 1.0})  # 37 GiB asked by a small file
    op = SourceOp("elementwise_add", {}, {"Out": ["y"]}, {"axis": -(29 * 10**16)})
    with pytest.raises(QonvertError, match="attribute axis="):
        op.int_attr("axis", default=-1, low=-1, high=4)


def test_negative_tflite_padding_never_reaches_native_shape_inference() -> None:
    """ONNX's C++ shape inference aborts the process on some negative pads: checked first."""
    from qonvert.converters import build
    from qonvert.converters.source import SourceGraph, TensorInfo

    graph = SourceGraph(
        "tflite",
        "pad.tflite",
        [SourceOp("PAD", {"in": ["x", "pads"]}, {"out": ["y"]})],
        [TensorInfo("x", (1, 4, 4, 3), "float32")],
        ["y"],
        {"pads": np.array([[0, 0], [-5, 1], [1, 1], [0, 0]], np.int32)},
        shapes={"x": (1, 4, 4, 3), "y": (1, 0, 6, 3)},
        dtypes={"x": "float32", "y": "float32"},
    )
    with pytest.raises(QonvertError, match="are not \\[4, 2\\] non-negative sizes"):
        build(graph)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if any((CORPUS / f).glob("*.bin"))])  # each format with a finding
def test_cli_stderr_is_one_line_on_a_bad_file(fmt: str, tmp_path: Path) -> None:
    """The whole process, as users run it: exit 2, one `qonvert: error` line and nothing else on
    stderr (no onnx_ir traceback, no numpy warning, no framework log), no output file; or, for a
    finding that now converts (a weight on another axis, of a conv ORT runs in float, is written
    float), exit 0 and nothing on stderr but the progress line."""
    import shutil
    import subprocess
    import sys

    found = sorted((CORPUS / fmt).glob("*.bin"))
    seed, member = SEEDS[fmt]
    target = tmp_path / (seed.name if not member else "model")
    if member:
        shutil.copytree(seed, target, ignore=shutil.ignore_patterns("reference.npz"))
        (target / member).write_bytes(found[0].read_bytes())
    else:
        target.write_bytes(found[0].read_bytes())
    try:
        qonvert.convert(target)
        refused = False
    except QonvertError:
        refused = True
    out = tmp_path / "out.onnx"
    done = subprocess.run([sys.executable, "-m", "qonvert", "convert", str(target), "-o", str(out)], capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("converting ")]
    if refused:
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("qonvert: error: "), done.stderr
        assert not out.exists()
    else:
        assert done.returncode == 0 and not lines and out.exists(), done.stderr


def test_a_broken_constant_fold_is_the_files_error() -> None:
    """A Reshape whose shape does not fit its constant (236 fuzz cases, every format, once)."""
    graph = ir.Graph(inputs=[], outputs=[], nodes=[], opset_imports={"": 13})
    data = ir.Value(name="c", const_value=ir.tensor(np.zeros((2, 3), np.float32)))
    shape = ir.Value(name="s", const_value=ir.tensor(np.array([4, -1, -1], np.int64)))
    graph.register_initializer(data)
    graph.register_initializer(shape)
    node = ir.Node("", "Reshape", [data, shape], name="bad_reshape")
    graph.append(node)
    graph.outputs.append(node.outputs[0])
    node.outputs[0].name = "y"
    from qonvert.opsets.passes.constants import fold_constant_layout

    with pytest.raises(QonvertError, match="Reshape bad_reshape: does not fit its constant input of shape \\[2, 3\\]"):
        fold_constant_layout(graph)


def test_a_tflite_name_of_megabytes_is_refused() -> None:
    """A corrupt string offset made every node carry a 244 MB name (from a 1.4 MB file)."""
    from types import SimpleNamespace

    from qonvert.converters.tflite.model import _Reader

    tensor = SimpleNamespace(Name=lambda: b"x" * 1_000_000)
    sub = SimpleNamespace(TensorsLength=lambda: 1, Tensors=lambda i: tensor)
    reader = _Reader.__new__(_Reader)
    reader.path = Path("model.tflite")
    with pytest.raises(QonvertError, match="tensor 0: a name of 1000000 bytes"):
        reader._tensor_names(sub)


def test_tflite_mutator_reaches_quantization_parameters() -> None:
    """The structure-aware .tflite mutator edits each tensor's scales: a NaN written through its
    field lands in that tensor's scale vector as the file reads it."""
    import tflite

    from .mutators import FLOAT_BITS, tflite_fields

    data = seed_bytes("tflite-fields")
    scales = [at for at, size, pool in tflite_fields(data) if pool is FLOAT_BITS]
    sub = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    quantized = [t for t in (sub.Tensors(k) for k in range(sub.TensorsLength())) if t.Quantization() is not None and t.Quantization().ScaleLength()]
    assert len(scales) >= sum(t.Quantization().ScaleLength() for t in quantized) > 10
    mutant = bytearray(data)
    mutant[scales[-1] : scales[-1] + 4] = struct.pack("<f", float("nan"))
    sub = tflite.Model.GetRootAs(bytes(mutant), 0).Subgraphs(0)
    read = [sub.Tensors(k).Quantization() for k in range(sub.TensorsLength())]
    assert sum(int(np.isnan(q.ScaleAsNumpy()).sum()) for q in read if q is not None and q.ScaleLength()) == 1


def test_pdiparams_mutator_reaches_tensor_data() -> None:
    """The structure-aware .pdiparams mutator also writes special floats into a record's data
    (where a scale of zero, NaN or inf reaches the quantization checks), keeping the layout."""
    import random

    from .mutators import FLOAT_BITS, mutate_pdiparams, pdiparams_records, record_body

    data = seed_bytes("pdiparams-fields")
    records = pdiparams_records(data)
    bodies = [record_body(data, records, k) for k in range(len(records))]
    written = set()
    for seed in range(400):
        mutant = mutate_pdiparams(data, random.Random(seed), records)
        diff = [k for k in range(min(len(data), len(mutant))) if data[k] != mutant[k]]
        if len(mutant) == len(data) and diff and any(lo <= diff[0] and diff[-1] < hi for lo, hi in bodies):
            at = diff[0] - (diff[0] - next(lo for lo, hi in bodies if lo <= diff[0] < hi)) % 4
            written.add(struct.unpack_from("<i", mutant, at)[0])
    assert len(written) > 2 and written <= set(FLOAT_BITS), written
