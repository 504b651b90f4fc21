"""The small source graph every reader produces: ops, tensors and constants, nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metadata import StateVariable
from ..opsets.qparams import QuantParams


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    dtype: str  # numpy dtype name


@dataclass
class SourceOp:
    """One source op. Inputs/outputs are keyed by slot name (Paddle: X, Filter, ...)."""

    type: str
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    attrs: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # where the source defines it, if it says (PyTorch: the module path)

    def input(self, slot: str, index: int = 0) -> str | None:
        names = self.inputs.get(slot) or []
        return names[index] if index < len(names) else None

    def output(self, slot: str, index: int = 0) -> str | None:
        names = self.outputs.get(slot) or []
        return names[index] if index < len(names) else None

    def attr(self, *names: str, default: Any = None) -> Any:
        for n in names:
            if n in self.attrs:
                return self.attrs[n]
        return default

    @property
    def label(self) -> str:
        """How errors name this op: its type and first output."""
        first = next((v[0] for v in self.outputs.values() if v), "?")
        return f"{self.type} -> {first}" + (f" in {self.where}" if self.where else "")


@dataclass
class SourceGraph:
    framework: str
    path: str
    ops: list[SourceOp]
    inputs: list[TensorInfo]
    outputs: list[str]
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # conversion remarks shown to the user
    # Quantization that lives on tensors (TFLite): a computed tensor named here is an integer
    # tensor in the source, so its ONNX value goes through Q -> DQ; a constant named here holds
    # the integer data and is read through a DQ.
    quant: dict[str, QuantParams] = field(default_factory=dict)
    # Graph inputs/outputs the ONNX model holds transposed by a permutation (TFLite --nchw-io).
    io_perms: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # numpy dtype names, where the reader knows them
    # Variables carried between runs (streaming models): each one's input is in `inputs` and its
    # output in `outputs`.
    states: list[StateVariable] = field(default_factory=list)

    def rename(self, old: str, new: str) -> None:
        """Give a tensor a new name everywhere the graph mentions it."""
        for op in self.ops:
            for names in (*op.inputs.values(), *op.outputs.values()):
                names[:] = [new if n == old else n for n in names]
        self.outputs = [new if n == old else n for n in self.outputs]
        tables: list[dict[str, Any]] = [self.constants, self.shapes, self.quant, self.io_perms, self.dtypes]
        for table in tables:
            if old in table:
                table[new] = table.pop(old)

    def consumers(self) -> dict[str, list[SourceOp]]:
        users: dict[str, list[SourceOp]] = {}
        for op in self.ops:
            for names in op.inputs.values():
                for n in names:
                    users.setdefault(n, []).append(op)
        return users

    def producers(self) -> dict[str, SourceOp]:
        return {n: op for op in self.ops for names in op.outputs.values() for n in names}

    def make_ssa(self) -> None:
        """Rename tensors written more than once, so each name has one producer.

        Paddle programs reuse names: PTQ writes `t.quantized` twice for one tensor (a real
        quantize feeding a conv, then an observer-only one feeding an add), and the executor
        simply overwrites. Readers after the second write see the new version. Writes to
        constants are left alone: they are state outputs (BN MeanOut, fake-quant OutScale)
        that inference ops write back unchanged.
        """
        current: dict[str, str] = {}
        defined = {t.name for t in self.inputs}
        for op in self.ops:
            for slot, names in op.inputs.items():
                op.inputs[slot] = [current.get(n, n) for n in names]
            for slot, names in op.outputs.items():
                renamed = []
                for n in names:
                    if n in self.constants:
                        renamed.append(n)
                        continue
                    new = n
                    k = 1
                    while new in defined:
                        new, k = f"{n}#{k}", k + 1
                    defined.add(new)
                    current[n] = new
                    if new != n and n in self.shapes:
                        self.shapes[new] = self.shapes[n]
                    renamed.append(new)
                op.outputs[slot] = renamed
        self.outputs = [current.get(n, n) for n in self.outputs]
