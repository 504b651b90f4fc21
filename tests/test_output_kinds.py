"""Agreement in the terms the application reads (issue 23, section 2): a classifier's top-1, a
sequence's per-position argmax (the CTC path a recogniser decodes), a probability map's
threshold, and none for a regression; inferred from the shape where that is safe, named by
--output-kind (or a zoo entry's output_kinds) where not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import InputError
from qonvert.runtime.compare import compare, output_kind
from qonvert.verify.html import render_html

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("shape", "values", "kind"),
    [
        ((1, 10), (-3, 3), "classifier"),
        ((1, 25, 97), (0, 1), "sequence"),
        ((1, 1, 16, 16), (0, 1), "map"),
        ((1, 16, 16, 1), (0, 1), "map"),
        ((1, 1, 16, 16), (-2, 2), "other"),  # one channel, but not probabilities: no safe reading
        ((1, 4, 8, 8), (0, 1), "other"),
        ((1,), (0, 1), "other"),
    ],
)
def test_kind_from_the_shape(shape: tuple[int, ...], values: tuple[float, float], kind: str) -> None:
    ref = [RNG.uniform(*values, shape).astype(np.float32)]
    assert output_kind(shape, ref)[0] == kind


def test_each_kind_counts_what_its_application_reads() -> None:
    ref = RNG.uniform(0, 1, (2, 6, 5)).astype(np.float32)
    ours = ref.copy()
    ours[0, 2, (np.argmax(ref[0, 2]) + 1) % 5] = 2.0  # one position of 12 reads another class
    stats = compare("ctc", [ours], [ref], 0.01)
    assert stats.kind == "sequence" and stats.agreement == pytest.approx(11 / 12) and stats.top1_agreement is None
    prob = RNG.uniform(0, 1, (1, 1, 10, 10)).astype(np.float32)
    near = prob.copy()
    near[0, 0, 0, :4] = [0.29, 0.31, 0.5, 0.1]
    prob[0, 0, 0, :4] = [0.31, 0.29, 0.5, 0.1]  # two pixels cross the 0.3 threshold
    assert compare("det", [near], [prob], 0.01).agreement == pytest.approx(0.98)
    assert compare("det", [near], [prob], 0.01, kind="map@0.5").agreement == 1.0  # none cross 0.5
    logits = RNG.normal(size=(3, 10)).astype(np.float32)
    assert compare("cls", [logits], [logits], 0.01).top1_agreement == 1.0
    landmarks = compare("pts", [logits + 0.5], [logits], 0.01, kind="regression")
    assert landmarks.agreement is None and landmarks.top1_agreement is None and landmarks.kind == "regression"
    with pytest.raises(InputError, match="expected one of classifier, sequence, map, regression"):
        compare("x", [logits], [logits], 0.01, kind="boxes")


def test_a_regression_named_on_the_command_line_has_no_top1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ONet (MTCNN, trained weights, PT2E): its box and landmark outputs are regressions."""
    model = FIXTURES / "torch" / "real" / "onet_pt2e_xnnpack.pt2"
    out = tmp_path / "onet.onnx"
    qonvert.convert(model, out)
    inputs = FIXTURES / "torch" / "real" / "faces.npz"
    plain = qonvert.verify(model, out, inputs=inputs)
    assert [o.kind for o in plain.outputs] == ["classifier", "classifier", "classifier"]  # [N, C] each, by shape
    kinds = {"dequantize_per_tensor_13": "regression", "dequantize_per_tensor_14": "regression"}
    named = qonvert.verify(model, out, inputs=inputs, output_kinds=kinds)
    assert [(o.kind, o.top1_agreement is None) for o in named.outputs] == [("regression", True), ("regression", True), ("classifier", False)]
    page = render_html(named)
    assert "<b>agreement</b><br>softmax: " in page and "(top-1)</div>" in page  # the regressions have none
    argv = ["verify", str(model), str(out), "--inputs", str(inputs), "--json"]
    main([*argv, *(f"--output-kind={k}={v}" for k, v in kinds.items())])
    assert '"kind": "regression"' in capsys.readouterr().out
    with pytest.raises(InputError, match="the model's outputs are dequantize_per_tensor_13"):
        qonvert.verify(model, out, inputs=inputs, output_kinds={"boxes": "regression"})
