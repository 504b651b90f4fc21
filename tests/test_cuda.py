"""--device cuda: an ORT CUDA EP session, verified from a recorded reference (no source framework
needed). Where the CUDA EP is missing (onnxruntime, not onnxruntime-gpu) it is one error line and
exit 2, never CPU figures reported as CUDA ones; the gpu-marked test runs for real where it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

import qonvert
from qonvert.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "paddle" / "qat_cnn_perchannel_legacy"


def _cuda_ep() -> bool:
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:
            return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def test_missing_cuda_ep_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if _cuda_ep():
        pytest.skip("this machine has the CUDA EP: the failure path cannot be shown here")
    out = tmp_path / "m.onnx"
    qonvert.convert(FIXTURE, out)
    assert main(["verify", str(FIXTURE), str(out), "--device", "cuda", "--reference", str(FIXTURE / "reference.npz")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("qonvert: error")]
    assert len(lines) == 1 and "CUDAExecutionProvider is not available" in lines[0] and "Traceback" not in err, err


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_ep(), reason="no ORT CUDA execution provider here (install onnxruntime-gpu on a CUDA machine)")
def test_cuda_matches_recorded_reference(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    qonvert.convert(FIXTURE, out)
    report = qonvert.verify(FIXTURE, out, device="cuda", reference=FIXTURE / "reference.npz", fusion=False)
    assert report.device == "cuda" and report.samples >= 20
    assert report.outputs[0].levels >= 8
    assert report.outputs[0].max_diff_lsb <= 1.0 + 1e-3, report.outputs[0]
