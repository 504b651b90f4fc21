"""The small source graph every reader produces: ops, tensors and constants, nothing more."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..metadata import StateVariable
from ..naming import unique_name
from ..opsets.qparams import QuantParams

MAX_RANK = 8  # dims of any tensor a quantized model uses; longer attribute lists are corrupt
MAX_CONST_INTS = 64  # entries of a shape, axes or kernel-size tensor; more is a corrupt file
MAX_BUILT_ELEMENTS = 1 << 24  # elements of a constant qonvert makes from a declared shape (a fill, an eye, an index list): 128 MB as int64


def check_built(shape: tuple[int, ...] | list[int], what: str) -> None:
    """A constant qonvert is about to make from a shape the file declares: bounded, so that a
    corrupt shape is one error line and not an allocation of exabytes."""
    count = 1
    for d in shape:
        count *= max(int(d), 0)
    if len(shape) > MAX_RANK or count > MAX_BUILT_ELEMENTS:
        raise InputError(f"{what}: a constant of shape {list(shape)[:MAX_RANK]} ({count} elements) is past the {MAX_BUILT_ELEMENTS} qonvert makes")


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _bounds(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    return f" >= {low}" if low is not None else (f" <= {high}" if high is not None else "")


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and bool(np.isfinite(float(v)))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:28] + "…" + text[-28:]


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

    def variadic(self, slot: str) -> list[str]:
        """A variadic op's inputs in the slot (concat, add_n, pack): at least one, or the file is bad."""
        names = [n for n in self.inputs.get(slot) or [] if n]
        if not names:
            raise InputError(f"op {self.label}: has no {slot} inputs" if slot != "in" else f"op {self.label}: has no inputs")
        return names

    def output(self, slot: str, index: int = 0) -> str | None:
        names = self.outputs.get(slot) or []
        return names[index] if index < len(names) else None

    def attr(self, *names: str, default: Any = None) -> Any:
        for n in names:
            if n in self.attrs:
                return self.attrs[n]
        return default

    # Typed accessors: an attribute of the wrong type or out of bounds (a hand-edited or corrupt
    # file) is a QonvertError naming the op and the attribute, before any arithmetic on it.
    def int_attr(self, *names: str, default: int, low: int | None = None, high: int | None = None) -> int:
        value = self.attr(*names, default=default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not _within(int(value), low, high):
            raise InputError(f"op {self.label}: attribute {names[0]}={_short(value)} is not an integer{_bounds(low, high)}")
        return int(value)

    def float_attr(self, *names: str, default: float) -> float:
        value = self.attr(*names, default=default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or np.isnan(float(value)):
            raise InputError(f"op {self.label}: attribute {names[0]}={_short(value)} is not a number")
        return float(value)

    def ints_attr(self, *names: str, default: list[int] | None, low: int | None = None, high: int | None = None, scalar: bool = False) -> list[int]:
        """An int list (scalar=True: one int is taken as a list of one); default None: required."""
        value = self.attr(*names, default=default)
        if scalar and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = [value]
        items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
        if (
            items is None
            or len(items) > MAX_RANK
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and _within(int(v), low, high) for v in items)
        ):
            raise InputError(f"op {self.label}: attribute {names[0]}={_short(value)} is not a list of integers{_bounds(low, high)}")
        return [int(v) for v in items]

    def floats_attr(self, *names: str, default: list[float], scalar: bool = False) -> list[float]:
        """A list of finite numbers (scalar=True: one number is taken as a list of one)."""
        value = self.attr(*names, default=default)
        if scalar and isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            value = [value]
        items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
        if items is None or len(items) > MAX_RANK or not all(_finite_number(v) for v in items):
            raise InputError(f"op {self.label}: attribute {names[0]}={_short(value)} is not a list of numbers")
        return [float(v) for v in items]

    def optional_int_attr(self, name: str, low: int | None = None, high: int | None = None) -> int | None:
        return None if self.attr(name) is None else self.int_attr(name, default=0, low=low, high=high)

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
    # Graphs that control-flow ops run (TFLite WHILE / IF name them by subgraph index), shared by
    # the main graph and every one of them (a loop body may hold another loop).
    subgraphs: dict[int, SourceGraph] = field(default_factory=dict)

    def all_ops(self) -> list[SourceOp]:
        """This graph's ops and those of the subgraphs its control flow runs."""
        return self.ops + [op for sub in self.subgraphs.values() for op in sub.ops]

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
        """The op that writes each value (an unset output slot, '', names none)."""
        return {n: op for op in self.ops for names in op.outputs.values() for n in names if n}

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
                    new = unique_name(n, defined, sep="#")
                    defined.add(new)
                    current[n] = new
                    if new != n and n in self.shapes:
                        self.shapes[new] = self.shapes[n]
                    renamed.append(new)
                op.outputs[slot] = renamed
        self.outputs = [current.get(n, n) for n in self.outputs]


def map_file(path: Path, what: str) -> memoryview:
    """The file's bytes, memory-mapped read-only: weights read from it are views, not copies, and the
    kernel pages them in (and out) as the conversion touches them. An empty file maps to b""."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def mapped_files(arrays: Iterable[np.ndarray]) -> list[mmap.mmap]:
    """The mapped source files (map_file) that these arrays are views of, each once."""
    found: dict[int, mmap.mmap] = {}
    for arr in arrays:
        base: Any = arr
        while isinstance(base, np.ndarray):
            base = base.base
        mapped = base.obj if isinstance(base, memoryview) else None
        if isinstance(mapped, mmap.mmap):
            found.setdefault(id(mapped), mapped)
    return list(found.values())


def drop_pages(files: Iterable[mmap.mmap]) -> None:
    """Let the kernel take the mapped files' pages out of this process's memory: views stay valid,
    a page touched again is read again from the file."""
    for mapped in files:
        if not mapped.closed:
            mapped.madvise(mmap.MADV_DONTNEED)


RELEASE_EVERY = 1 << 20  # weight bytes read between two drop_pages (about 0.1 ms for a MB of pages)


def page_releaser(files: list[mmap.mmap]) -> Callable[[int], None]:
    """A callback for whatever reads the source's weights (the op mappers, the writer), told how many
    bytes each step read: it drops the mapped files' pages every RELEASE_EVERY bytes, so that a
    model's file pages and the copies made from them (transposed filters, the serialised output)
    are not all resident at once."""
    read = 0

    def release(nbytes: int) -> None:
        nonlocal read
        read += nbytes
        if files and read >= RELEASE_EVERY:
            drop_pages(files)
            read = 0

    return release
