"""paddle.vision ResNet-18 (QAT, per-channel), made by paddlepaddle at test time (45 MB of float
weights: too big to commit), converted, checked and compared with Paddle's own outputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import onnx
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime.ort import fusion_report

from .conftest import PADDLE_FIXTURES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.paddle,
    pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed"),
]


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(PADDLE_FIXTURES))
    import make_fixtures  # type: ignore[import-not-found]

    out = tmp_path_factory.mktemp("resnet") / "qat_resnet18_legacy"
    make_fixtures.make("qat_resnet18_legacy", out)
    return out


@pytest.fixture(scope="module")
def converted(resnet18: Path) -> tuple[qonvert.ConvertResult, qonvert.VerifyReport]:
    result = qonvert.convert(resnet18)
    return result, qonvert.verify(resnet18, result.model, reference=resnet18 / "reference.npz", fusion=False)


def test_resnet18_converts_fuses_and_agrees(converted: tuple[qonvert.ConvertResult, qonvert.VerifyReport]) -> None:
    result, report = converted
    onnx.checker.check_model(result.model, full_check=True)
    assert check_canonical(result.model) == []
    out = report.outputs[0]
    assert report.samples >= 20 and out.levels >= 20, out
    # top-1 1.0 at stop 17; 0.95 (one input of 20, a near tie) on the AVX512 machine of stop 18, same code
    assert out.top1_agreement >= 0.95 and out.cosine > 0.9995, out
    fusion = fusion_report(result.model)
    # every conv/fc output is observed by the QAT config (ObserveWrapper on BN/ReLU/add): all fuse
    assert fusion.fused == fusion.quantized_in_source, fusion.float_ops


@pytest.mark.xfail(
    strict=True,
    reason="measured max 5.7 LSB, 70% exact: Paddle runs the quantized convs in float, ORT in integers; "
    "the first conv already differs by 4e-5 of a step, which flips 1 of 65536 roundings, and flips "
    "multiply layer by layer (1 -> 17 -> 200 -> 505 by the third conv)",
)
def test_resnet18_within_one_lsb(converted: tuple[qonvert.ConvertResult, qonvert.VerifyReport]) -> None:
    out = converted[1].outputs[0]
    assert out.max_diff_lsb <= 1.0 + 1e-3, out
