"""Errors say whose fault they are: an InputError (a bad or unsupported file, a wrong option) exits
2, an InternalError or any exception qonvert did not expect (its own bug) exits 3, each as one line
naming the op or pass and what to do with it; --debug shows the traceback instead. The zoo records
the same kinds."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

import qonvert
from qonvert.cli import main
from qonvert.converters import registry
from qonvert.errors import REPORT
from qonvert.zoo.manifest import ZooEntry
from qonvert.zoo.run import run_all

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TFLITE = FIXTURES / "tflite" / "small_cnn_int8.tflite"


def _broken_mapper(monkeypatch: pytest.MonkeyPatch, op_type: str = "CONV_2D") -> None:
    """A mapper with a bug: an exception no file should cause."""

    def broken(ctx: object, op: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(registry._REGISTRY, ("tflite", op_type), broken)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines), lines
    return lines[-1]


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)
    assert main(["convert", str(bad), "-o", str(tmp_path / "m.onnx")]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"qonvert: error: {bad}") and "internal error" not in line and REPORT not in line, line


def _convert_or_verify(tmp_path: Path, convert: bool, convert_options: list[str], verify_options: list[str]) -> list[str]:
    """The CLI's arguments for converting the small .tflite with these options, or for verifying
    its conversion (made here) with those."""
    out = tmp_path / "m.onnx"
    if convert:
        return ["convert", str(TFLITE), "-o", str(out), *convert_options]
    qonvert.convert(TFLITE, out)
    return ["verify", str(TFLITE), str(out), *verify_options]


@pytest.mark.parametrize("command", ["convert", "verify"])
@pytest.mark.parametrize("samples", [0, -3])
def test_no_samples_to_verify_on_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, samples: int) -> None:
    args = _convert_or_verify(tmp_path, command == "convert", ["--verify", "--samples", str(samples)], ["--samples", str(samples)])
    assert main(args) == 2
    assert _error_line(capsys) == f"qonvert: error: samples: at least 1 random input to verify on, not {samples}"


def test_an_input_shape_without_verify_says_it_is_not_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A .tflite or Paddle model reads its shapes from the file: --input-shape shapes verify's samples
    only (and verify checks the name)."""
    assert main(["convert", str(TFLITE), "-o", str(tmp_path / "m.onnx"), "--input-shape", "x=1,2"]) == 0
    assert "note: --input-shape sets the shapes verify samples: without --verify it is not used" in capsys.readouterr().err
    assert main(["convert", str(TFLITE), "-o", str(tmp_path / "m.onnx"), "--input-shape", "x=1,2", "--verify", "--samples", "1"]) == 2
    assert "'x', not an input of the model" in _error_line(capsys)


def _npy(shape: str, data: bytes, descr: str = "<f4") -> bytes:
    """A .npy member whose header says what it is told (its data need not agree)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + data


def _zip(path: Path, member: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", member)


def _object_array() -> bytes:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return out.getvalue()


def _crc_broken(path: Path) -> None:
    np.savez(path, x=np.zeros((1, 28, 28, 1), np.float32))
    data = bytearray(path.read_bytes())
    data[data.find(b"\x93NUMPY") + 200] ^= 0xFF  # a data byte: the member's CRC no longer matches
    path.write_bytes(bytes(data))


CORRUPT_NPZ = {
    "not a zip": (lambda p: p.write_bytes(b"hello"), "not a .npz file (not a zip archive)"),
    "cut short": (lambda p: (np.savez(p, x=np.zeros(64, np.float32)), p.write_bytes(p.read_bytes()[:200])), "not a .npz file"),
    "bad CRC": (_crc_broken, "member 'x' is not a readable array (Bad CRC-32"),
    "short data": (lambda p: _zip(p, _npy("(16, 3, 16, 16)", bytes(64))), "member 'x' is not a readable array"),
    "negative dim": (lambda p: _zip(p, _npy("(-1, 3)", bytes(64))), "negative dimensions"),
    "2^96 elements": (lambda p: _zip(p, _npy("(4294967296, 4294967296, 4294967296)", bytes(64))), "cannot reshape"),
    "broken header": (lambda p: _zip(p, _npy("(1, 3, 16", bytes(64))), "member 'x' is not a readable array"),
    "object array": (lambda p: _zip(p, _object_array()), "Object arrays cannot be loaded"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_NPZ))
@pytest.mark.parametrize("command", ["calibration", "verify"])
def test_a_corrupt_npz_is_the_file_s_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: str) -> None:
    """A samples file that numpy cannot read, as --calibration (read mapped) or verify --inputs:
    one line naming it, exit 2 (these were internal errors: numpy's member reader raised outside
    the file check)."""
    make, needle = CORRUPT_NPZ[kind]
    bad = tmp_path / "bad.npz"
    make(bad)
    args = _convert_or_verify(tmp_path, command == "calibration", ["--speed", "--calibration", str(bad)], ["--inputs", str(bad)])
    assert main(args) == 2
    line = _error_line(capsys)
    assert line.startswith(f"qonvert: error: {bad}") and needle in line and REPORT not in line, line


def test_a_mapper_s_bug_exits_3_naming_the_op(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _broken_mapper(monkeypatch)
    out = tmp_path / "m.onnx"
    assert main(["convert", str(TFLITE), "-o", str(out)]) == 3
    line = _error_line(capsys)
    assert ": op CONV_2D -> " in line and ": internal error, ZeroDivisionError: division by zero" in line and line.endswith(f"({REPORT})"), line
    assert not out.exists()
    with pytest.raises(qonvert.InternalError):  # the API raises it as such
        qonvert.convert(TFLITE)


def test_an_unexpected_exception_outside_the_mappers_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(qonvert.api, "check_canonical", crash)
    assert main(["convert", str(TFLITE), "-o", str(tmp_path / "m.onnx")]) == 3
    line = _error_line(capsys)
    assert "internal error, KeyError: 'oops' at test_exit_codes.py:" in line and REPORT in line, line


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _broken_mapper(monkeypatch)
    with pytest.raises(qonvert.InternalError) as caught:
        main(["--debug", "convert", str(TFLITE), "-o", str(tmp_path / "m.onnx")])
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_a_broken_contract_is_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qonvert.api, "check_canonical", lambda model: ["Conv 'c': activation does not come through a DequantizeLinear"])
    with pytest.raises(qonvert.InternalError, match="internal error, output breaks the QDQ contract"):
        qonvert.convert(TFLITE)


def _runner_with_faults(entry: ZooEntry) -> dict[str, object]:
    """A zoo runner (module level: the zoo spawns its workers) meeting one fault of each kind."""
    if entry.name == "bad":
        raise qonvert.InputError(f"{entry.source}: not a model")
    if entry.name == "bug":
        raise qonvert.InternalError("op X: internal error, ValueError: oops")
    raise ZeroDivisionError("division by zero")  # unexpected: a bug too


def test_the_zoo_records_whose_fault() -> None:
    entries = [ZooEntry(name, TFLITE, memory_mb=4096) for name in ("bad", "bug", "crash")]
    results = {r["name"]: r for r in run_all(entries, runner=_runner_with_faults)}
    assert {name: r["error_kind"] for name, r in results.items()} == {"bad": "input", "bug": "internal", "crash": "internal"}
    assert results["crash"]["error"].startswith("internal error, ZeroDivisionError: division by zero at test_exit_codes.py:"), results["crash"]
    assert all(r["status"] == "error" and REPORT in r["error"] for name, r in results.items() if name != "bad")
