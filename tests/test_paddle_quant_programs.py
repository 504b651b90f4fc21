"""Paddle programs converters have refused (tests/paddle_quant_programs.py), in both program
formats: a quantize_linear whose integer codes are the program's result (cast and returned, no
dequantize_linear): Paddle gives the codes as floats, and so does the converted model (a DQ of
scale 1 after the Q), exactly; and a conv reading a quantized input with a float weight, which
Paddle runs in float (an internal error before)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.opsets.canonical import check_canonical
from qonvert.runtime import refio
from qonvert.runtime.ort import run, session

from .conftest import ROOT

pytestmark = [pytest.mark.paddle, pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")]
NAMES = ["quantize_cast_2d_axis0", "quantize_cast_3d_axis1", "quantize_cast_4d_axis1", "quantize_cast_4d_axis0"]


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("quant_programs")
    env = dict(os.environ, FLAGS_enable_pir_api="1", GLOG_minloglevel="3")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "paddle_quant_programs.py"), str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("form", ["legacy", "pir"])
@pytest.mark.parametrize("name", NAMES)
def test_quantize_linear_codes_returned(programs: Path, name: str, form: str) -> None:
    folder = programs / f"{name}_{form}"
    result = qonvert.convert(folder)
    assert check_canonical(result.model) == []
    inputs, references, _ = refio.load(folder / "reference.npz")
    codes = np.concatenate([ref[0].ravel() for ref in references])
    assert len(np.unique(codes)) > 20 and np.ptp(codes) >= 200  # codes over the int8 range
    sess = session(result.model, "cpu")
    for feed, ref in zip(inputs, references, strict=True):
        np.testing.assert_array_equal(run(sess, feed)[0], ref[0])


@pytest.mark.parametrize("form", ["legacy", "pir"])
def test_conv_with_quantized_input_and_float_weight(programs: Path, form: str) -> None:
    folder = programs / f"quantized_input_float_weight_conv_{form}"
    result = qonvert.convert(folder)
    assert check_canonical(result.model) == []
    inputs, references, _ = refio.load(folder / "reference.npz")
    sess = session(result.model, "cpu")
    for feed, ref in zip(inputs, references, strict=True):
        assert np.ptp(ref[0]) > 1
        np.testing.assert_allclose(run(sess, feed)[0], ref[0], rtol=1e-5, atol=1e-5)
