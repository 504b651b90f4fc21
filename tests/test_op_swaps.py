"""Every op of the fixture models given every op type qonvert maps: each mapper meets another op's
inputs, attributes and options (a file written by a newer quantizer, a hand-edited or corrupt
one). Every such model converts or fails with one short QonvertError line, never an internal
error (tests/fuzzing.py's promise, each case in its capped worker). Found by this sweep: a scale
count that differs from its tensor's channels, squeeze and split axes past the rank, a list as a
fill value, assign_value's value count, a quantized IF condition.

The Paddle sweeps take every fixture program under 256 KB; the .tflite one takes every fifth seed
of the coverage target in the normal suite and all of them under `pytest -m fuzz`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .coverage_fuzz import PIR, TARGETS
from .fuzzing import FIXTURES, Harness, Outcome
from .mutators import operator_code_slots, paddle_op_types, parse_protobuf, tflite_op_codes, write_operator_code, write_protobuf

LEGACY = sorted(p for p in (FIXTURES / "paddle").glob("*_legacy") if (p / "model.pdmodel").is_file())
TFLITE = TARGETS["tflite"].files
EVERY = 5  # the normal suite's stride through the .tflite seeds


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def _sweep(harness: Harness, target: Path, write: Iterator[str]) -> list[str]:
    """Converts the model at `target` after each rewrite `write` makes (it yields a label)."""
    bad: list[str] = []
    for label in write:
        outcome: Outcome = harness.run_path(target)
        if outcome.kind not in ("ok", "error"):
            bad.append(f"{label}: {outcome.kind}: {outcome.detail[:200]}")
    return bad


def _copy(folder: Path, tmp_path: Path) -> Path:
    work = tmp_path / folder.name
    shutil.copytree(folder, work, ignore=shutil.ignore_patterns("reference.npz"))
    return work


@pytest.mark.parametrize("folder", PIR, ids=lambda p: p.name)
def test_pir_op_types_swapped(folder: Path, harness: Harness, tmp_path: Path) -> None:
    work = _copy(folder, tmp_path)
    text = (folder / "model.json").read_text()
    ops = json.loads(text)["program"]["regions"][0]["blocks"][0]["ops"]
    names = sorted({op["#"] for op in ops if op["#"].startswith("1.")} - {"1.data", "1.feed", "1.fetch"})
    assert len(names) >= 4, names  # a sweep over a program of a few ops proves little

    def rewrites() -> Iterator[str]:
        for name in names:
            for op_type in paddle_op_types():
                (work / "model.json").write_text(text.replace(f'"{name}"', f'"1.{op_type}"'))
                yield f"{name} -> {op_type}"

    assert _sweep(harness, work, rewrites()) == []


@pytest.mark.parametrize("folder", LEGACY, ids=lambda p: p.name)
def test_programdesc_op_types_swapped(folder: Path, harness: Harness, tmp_path: Path) -> None:
    """One op of each type in block 0 (OpDesc.type, field 3) given every type."""
    work = _copy(folder, tmp_path)
    tree = parse_protobuf((folder / "model.pdmodel").read_bytes())
    block = next(value for number, _, value in tree if number == 1)
    type_fields: dict[bytes, list[object]] = {}
    for number, _, op in block:
        if number == 4:
            field = next(f for f in op if f[0] == 3)
            type_fields.setdefault(field[2], field)
    assert len(set(type_fields) - {b"feed", b"fetch"}) >= 4, sorted(type_fields)

    def rewrites() -> Iterator[str]:
        for original, field in type_fields.items():
            if original in (b"feed", b"fetch"):
                continue
            for op_type in paddle_op_types():
                field[2] = op_type.encode()
                (work / "model.pdmodel").write_bytes(write_protobuf(tree))
                yield f"{original.decode()} -> {op_type}"
            field[2] = original

    assert _sweep(harness, work, rewrites()) == []


def _tflite_case(path: Path, tmp_path: Path, harness: Harness) -> None:
    import tflite

    data = path.read_bytes()
    model = tflite.Model.GetRootAs(data, 0)
    work = tmp_path / path.name

    def rewrites() -> Iterator[str]:
        for c in range(model.OperatorCodesLength()):
            slots = operator_code_slots(model.OperatorCodes(c))
            for value in tflite_op_codes():
                out = bytearray(data)
                write_operator_code(out, slots, value)
                work.write_bytes(out)
                yield f"operator code {c} -> {value}"

    assert _sweep(harness, work, rewrites()) == []


@pytest.mark.parametrize("path", TFLITE[::EVERY], ids=lambda p: p.stem)
def test_tflite_op_codes_swapped(path: Path, harness: Harness, tmp_path: Path) -> None:
    _tflite_case(path, tmp_path, harness)


@pytest.mark.fuzz
@pytest.mark.parametrize("path", [p for k, p in enumerate(TFLITE) if k % EVERY], ids=lambda p: p.stem)
def test_tflite_op_codes_swapped_rest(path: Path, harness: Harness, tmp_path: Path) -> None:
    _tflite_case(path, tmp_path, harness)
