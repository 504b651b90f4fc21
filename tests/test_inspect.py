"""inspect shows the QuantParams the reader parsed, in ONNX terms, for every framework, and names
the ops of models it cannot convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.cli import main
from qonvert.opsets.graph_edit import qparams_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _onnx_scales(model) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import onnx_ir as ir

    scales = {}
    for node in ir.from_proto(model).graph:
        if node.op_type == "QuantizeLinear" and (qp := qparams_of(node)) is not None and not qp.per_axis:
            scales[float(qp.scale)] = float(qp.scale)
    return scales


@pytest.mark.parametrize("source", ["tflite/small_cnn_int8.tflite", "paddle/ptq_cnn_legacy", "paddle/qat_cnn_perchannel_pir"])
def test_source_shows_onnx_scales(source: str) -> None:
    info = qonvert.inspect(FIXTURES / source)
    assert info.quantized, "the quantized-tensor table is empty"
    assert any(t.axis == 0 and t.scale.startswith("[") for t in info.quantized), "per-channel weights listed"
    onnx_scales = _onnx_scales(qonvert.convert(FIXTURES / source).model)
    per_tensor = [float(t.scale) for t in info.quantized if not t.scale.startswith("[") and t.dtype != "int32"]
    assert per_tensor and all(any(np.isclose(s, o, rtol=1e-5) for o in onnx_scales) for s in per_tensor), (per_tensor, onnx_scales)


def test_onnx_file_shows_its_qdq(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    qonvert.convert(FIXTURES / "tflite/small_cnn_int8.tflite", out)
    info = qonvert.inspect(out)
    assert info.kind == "onnx" and info.quantized and info.fusion is not None


def test_inputs_file_of_the_wrong_shape_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qonvert.runtime import refio

    src = FIXTURES / "tflite/small_cnn_int8io.tflite"
    out = tmp_path / "m.onnx"
    qonvert.convert(src, out)
    bad = tmp_path / "bad.npz"
    refio.save(bad, [{"serving_default_image:0": np.zeros((1, 16, 16, 3), np.int8)}], None, [])
    assert main(["verify", str(src), str(out), "--inputs", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has shape [1, 16, 16, 3], the model takes [1, 32, 32, 3]" in err and len(err.splitlines()) == 1, err


def test_one_step_is_one_lsb() -> None:
    """A quantized output one step off is 1 LSB exactly, whatever float32 does to x * scale."""
    from qonvert.runtime.compare import compare

    scale = np.float32(0.0637)
    ref = np.arange(-50, 50, dtype=np.float32) * scale
    ours = ref.copy()
    ours[7] = np.float32(-42) * scale  # -43 -> -42: one step
    stats = compare("y", [ours], [ref], float(scale))
    assert stats.max_diff_lsb == 1.0 and stats.levels == 100
