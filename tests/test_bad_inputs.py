"""Bad input: one-line QonvertError naming the file/op/tensor, CLI exit 2, no output file left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qonvert
from qonvert.cli import main
from qonvert.errors import QonvertError

PIR = "qat_cnn_perchannel_pir"
LEGACY = "qat_cnn_perchannel_legacy"


def _expect_error(model: Path, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "out.onnx"
    with pytest.raises(QonvertError) as info:
        qonvert.convert(model, out)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert main(["convert", str(model), "-o", str(out)]) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.onnx")], "temporary file left behind"


def _edit_pir(model_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = model_dir / "model.json"
    doc = json.loads(path.read_text())
    edit(doc["program"]["regions"][0]["blocks"][0]["ops"])
    path.write_text(json.dumps(doc))


def test_missing_params(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(LEGACY)
    (d / "model.pdiparams").unlink()
    _expect_error(d, tmp_path, "no .pdiparams")


@pytest.mark.parametrize("name", [PIR, LEGACY])
def test_truncated_params(fixture_copy, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(name)
    data = (d / "model.pdiparams").read_bytes()
    (d / "model.pdiparams").write_bytes(data[: len(data) // 2])
    _expect_error(d, tmp_path, "model.pdiparams", "truncated")


def test_corrupt_json(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)
    (d / "model.json").write_text('{"program": {"regions": [')
    _expect_error(d, tmp_path, "model.json")


def test_corrupt_pdmodel(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(LEGACY)
    (d / "model.pdmodel").write_bytes(b"\xff\xff\xff\xff garbage")
    _expect_error(d, tmp_path, "model.pdmodel")


def test_unknown_ops_listed_at_once(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)

    def rename(ops):  # type: ignore[no-untyped-def]
        kinds = [o for o in ops if o["#"] in ("1.relu", "1.conv2d")]
        kinds[0]["#"], kinds[-1]["#"] = "1.frobnicate", "1.wibble"

    _edit_pir(d, rename)
    _expect_error(d, tmp_path, "frobnicate", "wibble", "2 unsupported")


def test_quant_axis_out_of_range(fixture_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = fixture_copy(PIR)

    def bad_axis(ops):  # type: ignore[no-untyped-def]
        for o in ops:
            if o["#"] == "1.dequantize_linear":
                for a in o["A"]:
                    if a["N"] == "quant_axis" and a["AT"]["D"] == 0:
                        a["AT"]["D"] = 7
                        return

    _edit_pir(d, bad_axis)
    _expect_error(d, tmp_path, "quant_axis 7")


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_bad_scale(fixture_copy, tmp_path: Path, value: float) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from qonvert.converters.paddle.params import read_params
    from tests.pdparams import write_params

    d = fixture_copy(LEGACY)
    from qonvert.converters.paddle import load

    names = sorted(load(d).constants)  # all parameters (no fake ops to add computed scales)
    params = read_params(d / "model.pdiparams", names)
    victim = next(n for n in names if "scale" in n and params[n].size > 1)
    params[victim] = np.full_like(params[victim], value)
    write_params(d / "model.pdiparams", params)
    _expect_error(d, tmp_path, "scale")


def test_nonexistent_path(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nothing", tmp_path, "no such file")
