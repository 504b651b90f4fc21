"""The source's own kernel spread (issue 23, section 1): verify runs LiteRT on each of its kernel
sets (XNNPACK's delegate, the builtin kernels, the reference kernels) on the same inputs, reports
each pair's disagreement beside qonvert's, and the "spread" bar accepts a conversion that stays
inside that disagreement with every op within 1 step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.errors import InputError
from qonvert.runtime.compare import OutputStats
from qonvert.runtime.reference.litert import run_reference
from qonvert.verify.html import render_html
from qonvert.verify.render import verdict_line, verdict_word
from qonvert.verify.report import KernelSpread, VerifyReport

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A model whose kernel sets round apart (XNNPACK against the builtin kernels: about 1 in 5 values).
RESNET_BLOCKS = FIXTURES / "tflite" / "resnet_blocks_int8.tflite"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spread") / "resnet_blocks.onnx"
    qonvert.convert(RESNET_BLOCKS, out)
    return out


def test_each_pair_of_litert_kernel_sets_is_measured_against_litert_itself(converted: Path) -> None:
    report = qonvert.verify(RESNET_BLOCKS, converted, samples=12)
    assert report.runtime == "LiteRT" and report.kernels == "xnnpack"
    assert [(p.first, p.second) for p in report.source_spread] == [("xnnpack", "builtin"), ("xnnpack", "reference"), ("builtin", "reference")]
    # the pairs, recomputed here from LiteRT's own runs on verify's inputs (the same seeded samples)
    feeds = qonvert.api.random_inputs(onnx.load(str(converted)), 12)
    runs = {k: [r[0].astype(np.float64) for r in run_reference(RESNET_BLOCKS, feeds, kernels=k)] for k in ("xnnpack", "builtin", "reference")}
    lsb = report.outputs[0].lsb
    reference_levels = len(np.unique(np.round(np.concatenate([r.ravel() for r in runs["xnnpack"]]) / lsb)))
    assert reference_levels >= 8  # a reference of one or two levels would prove nothing
    for pair in report.source_spread:
        diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(runs[pair.first], runs[pair.second], strict=True)]) / lsb
        assert pair.max_diff_lsb == pytest.approx(diff.max(), abs=1e-3)
        assert pair.pct_exact == pytest.approx(100.0 * np.mean(diff < 0.01), abs=1e-6)
    assert report.largest_spread_lsb == max(p.max_diff_lsb for p in report.source_spread) > 0  # they do differ here


def test_reference_kernels_choose_what_both_checks_compare_against(converted: Path) -> None:
    report = qonvert.verify(RESNET_BLOCKS, converted, samples=8, reference_kernels="reference", per_layer=True)
    assert report.kernels == "reference"
    assert [(p.first, p.second) for p in report.source_spread][:2] == [("reference", "xnnpack"), ("reference", "builtin")]
    data = report.as_dict()
    assert data["kernels"] == "reference" and len(data["source_spread"]) == 3 and data["within_source_spread"] is not None
    json.dumps(data)
    with pytest.raises(InputError, match="LiteRT has these kernel sets for this model: xnnpack, builtin, reference"):
        qonvert.verify(RESNET_BLOCKS, converted, samples=2, reference_kernels="gpu")


def test_a_runtime_of_one_kernel_set_refuses_the_option(tmp_path: Path) -> None:
    model = FIXTURES / "torch" / "pt2" / "decoder_x86.pt2"  # PT2E: quantize/dequantize in float, any engine
    out = tmp_path / "m.onnx"
    qonvert.convert(model, out)
    with pytest.raises(InputError, match="has these kernel sets for this model: only its one"):
        qonvert.verify(model, out, samples=2, reference_kernels="x86")
    assert qonvert.verify(model, out, samples=2).source_spread == []


def _report(max_lsb: float, per_layer_ok: bool, spread: float | None, bar: str) -> VerifyReport:
    output = OutputStats("y", 0.1, max_lsb * 0.1, max_lsb, 90.0, 99.0, 0.999, 1.0, 200)
    pairs = [] if spread is None else [KernelSpread("xnnpack", "builtin", spread, 80.0, 1.0)]
    report = VerifyReport([output], 20, "cpu", 1.0, bar=bar, source_spread=pairs, kernels="xnnpack", runtime="LiteRT")
    report.layers = []  # per layer run: every op within 1 step
    if not per_layer_ok:
        from qonvert.runtime.layers import LayerStats

        report.layers = [LayerStats("t", "Conv", 2, 90.0, 4, "CONV_2D", (1, 4))]
    return report


@pytest.mark.parametrize(
    ("max_lsb", "per_layer_ok", "spread", "within", "word"),
    [
        (3.0, True, 5.0, True, "WITHIN THE SOURCE'S KERNEL SPREAD"),
        (3.0, True, 2.0, False, "NOT EQUIVALENT"),  # past the source's own spread
        (3.0, False, 5.0, False, "NOT EQUIVALENT"),  # an op past 1 step: not rounding alone
        (3.0, True, None, None, "NOT EQUIVALENT"),  # no spread measured (a recorded reference)
        (1.0, True, 5.0, True, "EQUIVALENT"),  # within 1 LSB stays EQUIVALENT
    ],
)
def test_the_spread_tier(max_lsb: float, per_layer_ok: bool, spread: float | None, within: bool | None, word: str) -> None:
    report = _report(max_lsb, per_layer_ok, spread, "spread")
    assert report.within_source_spread is within
    assert verdict_word(report.as_dict()) == word
    assert report.equivalent == (word != "NOT EQUIVALENT")
    assert not _report(max_lsb, per_layer_ok, spread, "end-to-end").equivalent or max_lsb <= 1.0  # the default bar is unchanged
    line = verdict_line(report.as_dict())
    assert (spread is None) or f"differ by up to {spread:g} LSB" in line
    assert word.replace("'", "&#x27;") in render_html(report)


def test_torchscript_runs_on_each_quantized_engine(tmp_path: Path) -> None:
    """A TorchScript archive of quantized ops: its engines (the one it was converted with first)
    are its kernel sets; a pair's figures are those of the engines' own runs."""
    from qonvert.converters import frontend

    model = FIXTURES / "torch" / "ts" / "eager_x86.pt"
    options = {"engine": "x86", "input_shapes": {"x": [1, 3, 32, 32]}}
    out = tmp_path / "ts.onnx"
    qonvert.convert(model, out, **options)
    report = qonvert.verify(model, out, samples=6, **options)
    torch_frontend = frontend(model)
    sets = torch_frontend.kernel_sets(model, torch_frontend.options(**options))
    assert report.runtime == "PyTorch" and report.kernels == sets[0] == "x86" and {"qnnpack", "fbgemm"} <= set(sets)
    assert len(report.source_spread) == len(sets) * (len(sets) - 1) // 2
    feeds = qonvert.api.random_inputs(onnx.load(str(out)), 6)
    opts = torch_frontend.options(**options)
    x86, qnnpack = (torch_frontend.run_reference(model, feeds, [], opts, k) for k in ("x86", "qnnpack"))
    lsb = report.outputs[0].lsb
    diff = max(float(np.abs(a[0].astype(np.float64) - b[0]).max()) for a, b in zip(x86, qnnpack, strict=True)) / lsb
    pair = next(p for p in report.source_spread if (p.first, p.second) == ("x86", "qnnpack"))
    assert pair.max_diff_lsb == pytest.approx(diff, abs=1e-3) and diff >= 1  # the engines round apart here


def test_paddle_runs_on_its_executor_and_its_predictor(tmp_path: Path) -> None:
    """PP-OCR cls (real weights, Paddle's PTQ): the executor, and the inference predictor with
    oneDNN on and off; the predictor's departure is Paddle's own."""
    from qonvert.runtime.reference.paddle import run_reference as paddle_run

    model = FIXTURES / "paddle" / "real" / "ppocr_cls_qdq"
    out = tmp_path / "cls.onnx"
    qonvert.convert(model, out)
    report = qonvert.verify(model, out, samples=4)
    assert report.kernels == "executor"
    assert [(p.first, p.second) for p in report.source_spread] == [
        ("executor", "predictor-onednn"),
        ("executor", "predictor"),
        ("predictor-onednn", "predictor"),
    ]
    feeds = qonvert.api.random_inputs(onnx.load(str(out)), 4)
    program = model / "model.pdmodel"
    executor, onednn = paddle_run(program, feeds, "executor"), paddle_run(program, feeds, "predictor-onednn")
    lsb = report.outputs[0].lsb
    diff = max(float(np.abs(a[0].astype(np.float64) - b[0]).max()) for a, b in zip(executor, onednn, strict=True)) / lsb
    assert report.source_spread[0].max_diff_lsb == pytest.approx(diff, abs=1e-3) and diff > 0
