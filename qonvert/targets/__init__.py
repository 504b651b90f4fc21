"""Deployment targets: forms derived from the canonical model, one table as the frontends are.

A target derives its form from the canonical model (every change named in the remarks, the
canonical model kept beside it), says what it would change or reject in a converted model
(`inspect --target`), names the stages whose cost verify measures against the source, and may
add a remark to a verification of its form.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import InputError


class Target(ABC):
    name: ClassVar[str]
    form: ClassVar[str]  # how messages name the derived model ("the TensorRT form")
    options: ClassVar[tuple[str, ...]] = ()  # the convert options it takes

    @abstractmethod
    def derive(self, model: ir.Model, where: str, **options: Any) -> list[str]:
        """The target's form of a canonical model, made in place by its passes (an onnx_ir
        PassManager); its changes as remarks. InputError for a model the target cannot take
        without changes the options do not allow."""

    @abstractmethod
    def findings(self, model: onnx.ModelProto) -> list[str]:
        """What the target would change, reject or run outside int8 in a converted model."""

    def stages(self, canonical: onnx.ModelProto, derived: onnx.ModelProto, **options: Any) -> list[tuple[str, onnx.ModelProto]]:
        """The models from the canonical one to the derived one, each named by what it adds: verify
        measures each against the source. None where the derivation is exact."""
        return [(self.form, derived)]

    def verify_remark(self, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> str:
        """A remark on a verification of a model in this target's form ("" for any other model)."""
        return ""


@functools.cache
def _table() -> dict[str, Target]:
    from .litert_exact import LiteRtExact
    from .ort_speed import OrtSpeed
    from .tensorrt import TensorRT

    return {t.name: t for t in (TensorRT(), OrtSpeed(), LiteRtExact())}


TARGET_NAMES = ("tensorrt", "ort-speed", "litert-exact")  # the table's names, known without importing the targets (CLI choices)


def target(name: str) -> Target:
    table = _table()
    if name not in table:
        raise InputError(f"target {name!r}: expected one of {', '.join(table)}")
    return table[name]


def all_targets() -> list[Target]:
    return list(_table().values())
