"""Reads a .tflite flatbuffer (through the `tflite` schema package, no TensorFlow) into a SourceGraph.

Ops keep TFLite's builtin names (CONV_2D, ...); their inputs are one positional slot "in"
("" where an optional input is absent), outputs one slot "out"; builtin options become attrs
under their schema names (FusedActivationFunction, StrideH, ...).
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np

from ...errors import InputError, QonvertError
from ..source import MAX_RANK, SourceGraph, SourceOp, TensorInfo, map_file
from .quant import tensor_qparams
from .schema import schema_package
from .state import RESOURCE, STATE_OPS, lift_variables

FILE_IDENTIFIER = b"TFL3"
tflite = schema_package()

_OPCODE_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
_OPTION_CLASSES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}
COMPLEX_OPS = ("RFFT2D", "RESHAPE", "COMPLEX_ABS")  # the mappers that hold a complex64 tensor (real, imaginary)
_TENSOR_TYPES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_") and isinstance(v, int)}
_NUMPY_TYPES = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "INT32": "int32",
    "INT64": "int64",
    "INT16": "int16",
    "INT8": "int8",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "BOOL": "bool",
    "COMPLEX64": "complex64",  # held as floats with a trailing axis of 2 (ops/spectral.py)
}
_SKIP_GETTERS = ("GetRootAs",)  # and Init itself (InitSubgraphIndex is an option)
# Ops that only appear with more than one subgraph (state and control flow), named in the error.
_MULTI_SUBGRAPH_OPS = STATE_OPS | {"WHILE", "IF", "CALL", "STABLEHLO_COMPOSITE"}
# The control-flow ops converted (ops/control.py), and the options naming the subgraphs each runs.
CONTROL_FLOW = {"WHILE": ("CondSubgraphIndex", "BodySubgraphIndex"), "IF": ("ThenSubgraphIndex", "ElseSubgraphIndex")}


def _raw_builtin_code(code: Any) -> int:
    """OperatorCode.builtin_code (vtable slot 3, an int32) as stored, 0 when absent."""
    offset = code._tab.Offset(10)
    return int(code._tab.Get(flatbuffers.number_types.Int32Flags, offset + code._tab.Pos)) if offset else 0


def is_tflite(path: Path) -> bool:
    """A file with TFLite's flatbuffer identifier, whatever its name."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(8)[4:8] == FILE_IDENTIFIER


def read_tflite(path: Path) -> SourceGraph:
    data = map_file(path, "model")
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = data[4:8] if len(data) >= 8 else b""
        raise InputError(f"{path}: not a TFLite flatbuffer (file identifier {found!r}, expected {FILE_IDENTIFIER!r})")
    try:
        return _Reader(path, data).graph()
    except QonvertError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise InputError(f"{path}: truncated or corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


MAX_NAME_BYTES = 4096  # TF's longest joined names are a few hundred bytes


class _Reader:
    def __init__(self, path: Path, data: memoryview) -> None:
        self.path = path
        self.data = data
        self.model = tflite.Model.GetRootAs(data, 0)

    def graph(self) -> SourceGraph:
        model = self.model
        opcodes = [self._opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
        if model.SubgraphsLength() < 1:
            raise InputError(f"{self.path}: the model has no subgraph")
        init_indexes, called = self._check_subgraphs(opcodes)
        main = self._read_subgraph(model.Subgraphs(0), opcodes)
        main.subgraphs = {i: self._read_subgraph(model.Subgraphs(i), opcodes) for i in called}
        for sub in main.subgraphs.values():
            sub.subgraphs = main.subgraphs
            if any(op.type in STATE_OPS for op in sub.ops):
                raise InputError(f"{self.path}: a variable is read or written inside a WHILE or IF subgraph; not supported")
        for graph in (main, *main.subgraphs.values()):
            self._check_complex(graph)
        if not any(op.type in STATE_OPS for op in main.ops):
            return main
        inits = [self._read_subgraph(model.Subgraphs(i), opcodes) for i in init_indexes]
        return lift_variables(main, inits)

    def _check_complex(self, graph: SourceGraph) -> None:
        """Complex tensors live only from RFFT2D to COMPLEX_ABS, through RESHAPEs (ops/spectral.py,
        ops/shape.py): one anywhere else (a graph's edge, a constant, another op's operand or
        result) is refused by name."""
        outside = [t.name for t in graph.inputs] + graph.outputs + list(graph.constants)
        edge = [n for n in outside if graph.dtypes.get(n) == "complex64"]
        if edge:
            raise InputError(f"{self.path}: tensor {edge[0]!r} is complex64 as a graph input, output or constant; not supported")
        for op in graph.ops:
            touched = [n for slot in ("in", "out") for n in (op.inputs if slot == "in" else op.outputs).get(slot) or [] if n]
            name = next((n for n in touched if graph.dtypes.get(n) == "complex64"), None)
            if name is not None and op.type not in COMPLEX_OPS:
                raise InputError(f"{self.path}: op {op.label}: tensor {name!r} is complex64, which only {', '.join(COMPLEX_OPS)} take")

    def _check_subgraphs(self, opcodes: list[str]) -> tuple[list[int], list[int]]:
        """The init subgraphs that main's CALL_ONCE ops run, and those that WHILE / IF run (from
        main, or from one another); any other use of more than one subgraph is refused, naming
        every op that needs it."""
        subgraphs = self._subgraphs()
        ops = [[self._op_type(s.Operators(k), opcodes, k) for k in range(s.OperatorsLength())] for s in subgraphs]
        control = sorted({t for sub in ops for t in sub} & (_MULTI_SUBGRAPH_OPS - STATE_OPS - set(CONTROL_FLOW)))
        if control:
            raise InputError(f"{self.path}: {len(ops)} subgraphs: control flow ({', '.join(control)}) is not supported")
        inits = [self._subgraph_index(subgraphs[0], k, "InitSubgraphIndex", len(ops)) for k, t in enumerate(ops[0]) if t == "CALL_ONCE"]
        runs = {
            s: {self._subgraph_index(subgraphs[s], k, option, len(ops)) for k, t in enumerate(ops[s]) for option in CONTROL_FLOW.get(t, ())}
            for s in range(len(ops))
        }
        called = _reachable(runs, 0)  # the subgraphs main runs through WHILE / IF, directly or not
        recursive = [s for s in called if s in _reachable(runs, s)]
        if recursive:  # LiteRT refuses it too; mapping it would never end
            raise InputError(f"{self.path}: subgraph {recursive[0]} runs itself through WHILE / IF (recursion); not supported")
        stray = [i for i in range(1, len(ops)) if i not in inits and i not in called]
        if stray:
            raise InputError(f"{self.path}: subgraph {stray[0]} of {len(ops)} is run by no CALL_ONCE, WHILE or IF; not supported")
        if set(inits) & set(called):
            raise InputError(f"{self.path}: subgraph {sorted(set(inits) & set(called))[0]} is both an init subgraph and run by control flow")
        return inits, sorted(called)

    def _subgraph_index(self, sub: Any, k: int, option: str, count: int) -> int:
        index = self._options(sub.Operators(k)).get(option, -1)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 < index < count:
            raise InputError(f"{self.path}: operator {k} names subgraph {index} ({option}), but the model has {count}")
        return index

    def _op_type(self, op: Any, opcodes: list[str], k: int) -> str:
        index = op.OpcodeIndex()
        if index >= len(opcodes):
            raise InputError(f"{self.path}: operator {k} uses opcode index {index}, but the model has {len(opcodes)} opcodes")
        return opcodes[index]

    def _read_subgraph(self, sub: Any, opcodes: list[str]) -> SourceGraph:
        names = self._tensor_names(sub)
        graph = SourceGraph("tflite", str(self.path), [], [], [], {})
        for i in range(sub.TensorsLength()):
            self._read_tensor(sub.Tensors(i), names[i], graph)
        for i in sub.InputsAsNumpy() if sub.InputsLength() else []:
            graph.inputs.append(TensorInfo(names[i], graph.shapes[names[i]], graph.dtypes[names[i]]))
            qp = graph.quant.get(names[i])
            if qp is not None and qp.dtype == "int32":  # an integer input (its quantization, a bias's kind, is read as integers)
                del graph.quant[names[i]]
        graph.outputs = [names[int(i)] for i in (sub.OutputsAsNumpy() if sub.OutputsLength() else [])]
        for k in range(sub.OperatorsLength()):
            op = sub.Operators(k)
            ins = [names[int(i)] if i >= 0 else "" for i in (op.InputsAsNumpy() if op.InputsLength() else [])]
            outs = [names[int(i)] for i in (op.OutputsAsNumpy() if op.OutputsLength() else [])]
            graph.ops.append(SourceOp(self._op_type(op, opcodes, k), {"in": ins}, {"out": outs}, self._options(op)))
        self._check_single_writer(graph)
        return graph

    def _check_single_writer(self, graph: SourceGraph) -> None:
        """Each tensor is written once: by one op, and not also a graph input or a constant (a
        file whose op outputs collide cannot become an ONNX graph, which names values once)."""
        written = {t.name: "a graph input" for t in graph.inputs} | dict.fromkeys(graph.constants, "a constant")
        for op in graph.ops:
            for name in op.outputs["out"]:
                if name in written:
                    raise InputError(f"{self.path}: op {op.label}: tensor {name!r} is also {written[name]}; a tensor is written once")
                written[name] = f"the output of op {op.type}"

    def _subgraphs(self) -> list[Any]:
        return [self.model.Subgraphs(i) for i in range(self.model.SubgraphsLength())]

    def _opcode_name(self, code: Any) -> str:
        # deprecated_builtin_code is an int8 (127 = look in builtin_code); old files leave
        # builtin_code 0, and ai-edge-quantizer leaves deprecated_builtin_code 0. LiteRT takes the
        # larger of the two. The `tflite` package's BuiltinCode() hides the raw field below 127
        # (it returns the deprecated one), so the field is read from the table itself.
        number = max(code.DeprecatedBuiltinCode(), _raw_builtin_code(code))
        name = _OPCODE_NAMES.get(number, f"UNKNOWN_OPCODE_{number}")
        if name == "CUSTOM":
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode() if custom else '?'}"
        return name

    def _tensor_names(self, sub: Any) -> list[str]:
        """Tensor names as stored, made unique (TFLite does not promise unique names)."""
        names: list[str] = []
        seen: set[str] = set()
        for i in range(sub.TensorsLength()):
            raw = sub.Tensors(i).Name()
            if raw and len(raw) > MAX_NAME_BYTES:  # a corrupt string offset: the name would be copied into every node
                raise InputError(f"{self.path}: tensor {i}: a name of {len(raw)} bytes (corrupt string?)")
            name = raw.decode("utf-8", "replace") if raw else f"tensor_{i}"
            if name in seen:
                name = f"{name}#{i}"
            seen.add(name)
            names.append(name)
        return names

    def _dtype(self, tensor: Any, name: str) -> str:
        kind = _TENSOR_TYPES.get(tensor.Type(), f"type {tensor.Type()}")
        if kind == "RESOURCE":  # a variable handle (VAR_HANDLE); lift_variables removes it
            return RESOURCE
        if kind not in _NUMPY_TYPES:
            raise InputError(f"{self.path}: tensor {name!r} has unsupported type {kind}")
        return _NUMPY_TYPES[kind]

    def _read_tensor(self, tensor: Any, name: str, graph: SourceGraph) -> None:
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        if tensor.ShapeSignatureLength():
            shape = tuple(int(d) for d in tensor.ShapeSignatureAsNumpy())
        if len(shape) > MAX_RANK or any(d < -1 or d >= 1 << 31 for d in shape):
            raise InputError(f"{self.path}: tensor {name!r}: shape {list(shape)[:10]} is not a tensor shape")
        graph.shapes[name] = shape
        graph.dtypes[name] = self._dtype(tensor, name)
        if graph.dtypes[name] == RESOURCE:
            return
        raw = self._buffer(tensor.Buffer(), name)
        data = None
        if raw is not None:
            dtype = np.dtype(graph.dtypes[name])
            count = int(np.prod(shape)) if shape else 1
            if len(raw) != count * dtype.itemsize or any(d < 0 for d in shape):
                raise InputError(
                    f"{self.path}: tensor {name!r}: buffer holds {len(raw)} bytes, shape {list(shape)} of {dtype} needs {count * dtype.itemsize}"
                )
            data = np.frombuffer(raw, dtype=dtype).reshape(shape)  # a read-only view of the mapped file
        elif tensor.Buffer() and 0 in shape:  # a constant with no elements (a scalar's target shape []) has no bytes
            data = np.zeros(shape, np.dtype(graph.dtypes[name]))
        qp, data, remark = tensor_qparams(tensor.Quantization(), name, shape, _TENSOR_TYPES.get(tensor.Type(), ""), data)
        if qp is not None:
            graph.quant[name] = qp
        if remark:
            graph.notes.append(remark)
        if data is not None:
            graph.constants[name] = data

    def _buffer(self, index: int, name: str) -> memoryview | None:
        if index == 0:  # buffer 0 is the empty sentinel
            return None
        if index >= self.model.BuffersLength():
            raise InputError(f"{self.path}: tensor {name!r} refers to buffer {index}, but the model has {self.model.BuffersLength()}")
        buf = self.model.Buffers(index)
        offset, size = buf.Offset(), buf.Size()
        if offset > 1:  # models past 2 GB keep data after the flatbuffer, addressed from the file start
            if offset + size > len(self.data):
                raise InputError(
                    f"{self.path}: tensor {name!r}: buffer {index} [{offset}, {offset + size}) lies past the file end ({len(self.data)})"
                )
            return self.data[offset : offset + size] if size else None  # memoryview slices: no copy
        if not buf.DataLength():
            return None
        start = buf._tab.Vector(buf._tab.Offset(4))
        if start + buf.DataLength() > len(self.data):
            raise InputError(f"{self.path}: tensor {name!r}: buffer {index} data lies past the file end")
        return self.data[start : start + buf.DataLength()]

    def _options(self, op: Any) -> dict[str, Any]:
        kind = _OPTION_CLASSES.get(op.BuiltinOptionsType())
        table = op.BuiltinOptions()
        if kind in (None, "NONE") or table is None:
            return {}
        cls = getattr(tflite, kind, None)
        if cls is None:
            return {}
        options = cls()
        options.Init(table.Bytes, table.Pos)
        attrs: dict[str, Any] = {}
        for attr, is_vector in _getters(cls):
            if is_vector:
                n = getattr(options, f"{attr}Length")()
                attrs[attr] = [int(v) for v in getattr(options, f"{attr}AsNumpy")()] if n else []
            else:
                attrs[attr] = getattr(options, attr)()
        return attrs


def _reachable(runs: dict[int, set[int]], start: int) -> list[int]:
    """The subgraphs `start` runs, directly or through others (itself only through a cycle)."""
    seen: list[int] = []
    pending = list(runs[start])
    while pending:
        s = pending.pop()
        if s not in seen:
            seen.append(s)
            pending.extend(runs[s])
    return seen


@functools.cache
def _getters(cls: type) -> list[tuple[str, bool]]:
    """An options table's field getters, (name, is a vector): once per table type, not per op."""
    return [
        (attr, hasattr(cls, f"{attr}Length"))
        for attr in dir(cls)
        if not (
            attr.startswith("_")
            or attr == "Init"
            or attr.startswith(_SKIP_GETTERS)
            or attr.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier"))
        )
    ]
