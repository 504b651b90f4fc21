"""The opset table (qonvert/opsets/versions.py): what ops need is read from onnx.defs, the builder
refuses what the model's opset cannot express, and no other module writes an opset number."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import qonvert
from qonvert.converters import registry
from qonvert.opsets import versions
from qonvert.opsets.builder import GraphBuilder

PACKAGE = Path(__file__).resolve().parents[1] / "qonvert"


def test_since_versions_come_from_onnx_defs() -> None:
    assert versions.first_opset("HardSwish") == 14
    assert versions.first_opset("LayerNormalization") == 17
    assert versions.first_opset("Shape", "start") == 15
    assert versions.first_opset("ScatterND", "reduction") == 16
    assert versions.first_opset("ReduceMax", inputs=2) == 18 and versions.first_opset("ReduceSum", inputs=2) == 13
    assert versions.first_opset("DFT", inputs=3) == 20
    assert versions.quantized_type_opset("int8") == 13 and versions.quantized_type_opset("int4") == 21
    assert versions.blocked_qdq_opset() == 21
    with pytest.raises(versions.OpsetError):
        versions.first_opset("NoSuchOp")


def test_ir_version_is_the_first_release_s() -> None:
    assert [versions.ir_version(o) for o in (13, 15, 19, 21, 23)] == [7, 8, 9, 10, 11]
    for opset in range(versions.MIN_OPSET, versions.MAX_OPSET + 1):
        release = next(row for row in onnx.helper.VERSION_TABLE if row[2] == opset)
        assert versions.ir_version(opset) == release[1]


@pytest.mark.parametrize(
    ("op_type", "attrs", "inputs", "opset", "message"),
    [
        ("HardSwish", {}, 1, 13, "HardSwish is not in opset 13"),
        ("Shape", {"start": 0}, 1, 14, "Shape has no attribute 'start' in opset 14"),
        ("ReduceMax", {"keepdims": 1}, 2, 17, "ReduceMax takes at most 1 inputs in opset 17"),
    ],
)
def test_builder_refuses_an_op_newer_than_the_model(op_type: str, attrs: dict[str, int], inputs: int, opset: int, message: str) -> None:
    b = GraphBuilder(opset=opset)
    x = b.const(np.ones((2, 3), np.float32))
    with pytest.raises(qonvert.QonvertError, match=f"internal error, {re.escape(message)}"):
        b.op(op_type, [x] * inputs, attrs)
    newer = GraphBuilder(opset=versions.MAX_OPSET)
    newer.op(op_type, [newer.const(np.ones((2, 3), np.float32))] * inputs, attrs)  # the same op, at an opset that has it


def test_registered_opsets_are_in_the_table_s_range() -> None:
    for framework in ("paddle", "tflite", "torch"):
        for name in registry.mappers(framework):
            assert versions.MIN_OPSET <= registry.required_opset(framework, {name}) <= versions.MAX_OPSET, (framework, name)


def test_no_module_but_the_table_writes_an_opset_number() -> None:
    pattern = re.compile(r"opset\w*\s*(=|==|>=|<=|<|>)\s*\d{2}\b|\b\d{2}\s*(<=|>=|<|>)\s*\w*opset")
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "versions.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
