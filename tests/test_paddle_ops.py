"""Table-driven per-op tests: one small program per Paddle op (tests/paddle_op_programs.py), built
and run by the real paddlepaddle in both program formats, converted by qonvert and run on ORT."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.runtime import refio
from qonvert.runtime.ort import run, session

from .conftest import ROOT

pytestmark = [
    pytest.mark.paddle,
    pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed"),
]
FORMATS = {"legacy": "0", "pir": "1"}


def _op_names() -> list[str]:
    """The table's keys, read without importing paddle (collection must not need it)."""
    text = (ROOT / "tests" / "paddle_op_programs.py").read_text()
    body = text[text.index("    return {") : text.index("\n    }\n")]
    return [line.split('"')[1] for line in body.splitlines() if line.startswith('        "')]


@pytest.fixture(scope="session", params=list(FORMATS))
def programs(request, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp(f"ops_{request.param}")
    env = dict(os.environ, FLAGS_enable_pir_api=FORMATS[request.param], GLOG_minloglevel="3")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "paddle_op_programs.py"), str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("name", _op_names())
def test_op_matches_paddle(programs: Path, name: str) -> None:
    result = qonvert.convert(programs / name)
    inputs, references, _ = refio.load(programs / name / "reference.npz")
    sess = session(result.model, "cpu")
    for feed, ref in zip(inputs, references, strict=True):
        out = run(sess, feed)[0]
        assert out.shape == ref[0].shape, (out.shape, ref[0].shape)
        np.testing.assert_allclose(out, ref[0], rtol=1e-5, atol=1e-5)


def test_table_covers_registry_aliases() -> None:
    """Every op family of the issue has at least one program in the table."""
    names = set(_op_names())
    for family in ("conv2d", "conv2d_transpose", "batch_norm", "layer_norm", "softmax", "bilinear_interp", "nearest_interp", "slice", "split"):
        assert family in names
