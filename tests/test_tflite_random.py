"""TFLite's random ops (fixtures/tflite/random, made by make_random_ops.py with TFLiteConverter):
ONNX Runtime's draws cannot equal LiteRT's (other generators), so each converted model is run
many times on both sides and the distributions compared: a two-sample Kolmogorov-Smirnov distance,
and the moments the op promises. The conversion says that its outputs match in distribution only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime.ort import run, session
from qonvert.runtime.reference.litert import run_reference

RANDOM = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "random"
RUNS = 40


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    return float(np.abs(np.searchsorted(np.sort(a), grid, "right") / a.size - np.searchsorted(np.sort(b), grid, "right") / b.size).max())


def _draws(stem: str, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """RUNS runs of the converted model on ORT (one session) and of the source on LiteRT (one
    interpreter), each run drawing anew; and the conversion's remarks."""
    path = RANDOM / f"{stem}.tflite"
    result = qonvert.convert(path)
    onnx.checker.check_model(result.model, full_check=True)
    assert check_canonical(result.model) == []
    sess = session(result.model)
    ours = np.stack([run(sess, feed)[0] for _ in range(RUNS)])
    theirs = np.stack([r[0] for r in run_reference(path, [feed] * RUNS)])
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    return ours, theirs, result.remarks


@pytest.mark.parametrize(("stem", "mean", "std"), [("random_uniform", 0.5, 12**-0.5), ("random_standard_normal", 0.0, 1.0)])
def test_draws_match_litert_in_distribution(stem: str, mean: float, std: float) -> None:
    ours, theirs, remarks = _draws(stem, {"x": np.zeros((1, 256), np.float32)})
    assert any("matches in distribution only" in r for r in remarks), remarks
    assert not np.array_equal(ours[0], ours[1])  # each run draws anew, as LiteRT's
    for values in (ours.ravel(), theirs.ravel()):  # 10,240 draws: the moments within 4 standard errors
        assert abs(values.mean() - mean) < 4 * std / values.size**0.5, values.mean()
        assert abs(values.std() - std) < 0.05 * std, values.std()
    assert _ks(ours.ravel(), theirs.ravel()) < 0.04  # 5% critical value for 10,240 + 10,240: 0.019


def test_multinomial_draws_each_class_as_often_as_litert() -> None:
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.25, 0.15]] * 4, np.float32))
    ours, theirs, _ = _draws("multinomial", {"logits": logits})
    assert ours.min() >= 0 and ours.max() <= 4
    share = [np.bincount(v.ravel(), minlength=5) / v.size for v in (ours, theirs)]
    np.testing.assert_allclose(share[0], np.exp(logits[0]), atol=0.02)  # 10,240 draws: a few standard errors
    np.testing.assert_allclose(share[0], share[1], atol=0.03)


def test_noise_in_a_full_integer_model() -> None:
    """RANDOM_UNIFORM stays float between a quantized input and a quantized sum: the output codes
    spread as LiteRT's do."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    ours, theirs, _ = _draws("noisy_int8", {"x": x})
    levels = [np.unique(v).size for v in (ours, theirs)]
    assert min(levels) >= 40, levels  # the noise moves each code over several levels
    assert _ks(ours.ravel().astype(np.float64), theirs.ravel().astype(np.float64)) < 0.04
