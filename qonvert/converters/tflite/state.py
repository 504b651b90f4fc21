"""Resource variables (streaming models) become state inputs and outputs: one ONNX run is one step.

A stateful TFLite model (microWakeWord's streaming layers, Keras models with tf.Variables) has an
init subgraph that CALL_ONCE runs before the first invoke, assigning each variable a constant, and
a main subgraph that reads variables (READ_VARIABLE) and writes them (ASSIGN_VARIABLE) through
handles that VAR_HANDLE makes from a (container, shared_name) pair.

ONNX has no variables, so the state moves to the caller: a variable that the main graph assigns
becomes a graph input `<name>` (its value before the step) and a graph output `<name>_out` (after
it); the caller feeds each step's `_out` back in. The initial values go into the model's metadata
(qonvert.metadata.STATE). A variable that is only read is a constant: its initial value.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...metadata import StateVariable
from ...naming import unique_name
from ...opsets.qparams import QuantParams
from ..source import SourceGraph, SourceOp, TensorInfo

STATE_OPS = frozenset({"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})
RESOURCE = "resource"  # the dtype name handle tensors get


def lift_variables(main: SourceGraph, inits: list[SourceGraph]) -> SourceGraph:
    initial = _initial_values(inits)
    handles = _handles(main)
    taken = set(main.shapes) - set(handles)
    state_input = {var: _fresh(var, taken) for var in dict.fromkeys(handles.values())}
    reads: dict[str, str] = {}  # a READ_VARIABLE output -> the tensor holding that value
    first_read: dict[str, str] = {}  # variable -> its first READ_VARIABLE output (type, quantization)
    last_write: dict[str, str] = {}  # variable -> the tensor it was last assigned
    kept = []
    for op in main.ops:
        for names in op.inputs.values():
            names[:] = [reads.get(n, n) for n in names]
        if op.type == "READ_VARIABLE":
            var = _variable(op, handles, main.path)
            out = _operand(op.outputs.get("out", []), 0, op, main.path)
            first_read.setdefault(var, out)
            reads[out] = last_write.get(var, state_input[var])
        elif op.type == "ASSIGN_VARIABLE":
            last_write[_variable(op, handles, main.path)] = _operand(op.inputs["in"], 1, op, main.path)
        elif op.type not in ("VAR_HANDLE", "CALL_ONCE"):
            kept.append(op)
    main.ops = kept
    main.outputs = [reads.get(n, n) for n in main.outputs]
    for handle in handles:
        main.shapes.pop(handle, None)
        main.dtypes.pop(handle, None)

    for var, name in state_input.items():
        model = first_read.get(var)
        value, value_qp = initial.get(var) or (None, None)
        if model is not None:  # the value as the main graph reads it
            if model not in main.shapes or model not in main.dtypes:  # e.g. a read into a handle tensor
                raise InputError(f"{main.path}: variable {var!r} is read into {model!r}, which is not a tensor of the graph")
            main.shapes[name], main.dtypes[name] = main.shapes[model], main.dtypes[model]
            if model in main.quant:
                main.quant[name] = main.quant[model]
        elif value is not None:
            main.shapes[name], main.dtypes[name] = value.shape, value.dtype.name
            if value_qp is not None:
                main.quant[name] = value_qp
        written = last_write.get(var)
        if name not in main.shapes and written is not None and written in main.shapes and written in main.dtypes:
            main.shapes[name], main.dtypes[name] = main.shapes[written], main.dtypes[written]  # only written: its type
        if written is not None and (name not in main.shapes or name not in main.dtypes):
            raise InputError(f"{main.path}: variable {var!r}: no read, init value or written tensor gives its type")
        if value is None and var in first_read and reads[first_read[var]] == name:
            raise InputError(f"{main.path}: variable {var!r} is read before anything assigns it (no CALL_ONCE init value)")
        if value is None:  # written before it is read: its value before the step is never used
            value = np.zeros([max(d, 1) for d in main.shapes.get(name, ())], main.dtypes.get(name, "float32"))
        value = _fit(value, main.shapes.get(name), main.dtypes.get(name), var, main.path)
        if written is None or written == name:  # never changed: a constant
            main.constants[name] = value
            continue
        _check_written(main, var, written, last_write)
        output = _fresh(f"{var}_out", taken)
        main.rename(written, output)
        main.inputs.append(TensorInfo(name, main.shapes[name], main.dtypes[name]))
        main.outputs.append(output)
        main.states.append(StateVariable(var, name, output, value, source_output=written))
    if main.states:
        listed = ", ".join(f"{s.variable!r} ({s.input} -> {s.output})" for s in main.states)
        main.notes.append(
            f"state variables become graph inputs and outputs, one run per step: {listed}; "
            "initial values in metadata 'qonvert.state' (qonvert.initial_state)"
        )
    return main


def _initial_values(inits: list[SourceGraph]) -> dict[str, tuple[np.ndarray, QuantParams | None]]:
    """Each variable's constant from the init subgraphs."""
    values: dict[str, tuple[np.ndarray, QuantParams | None]] = {}
    for init in inits:
        handles = _handles(init)
        for op in init.ops:
            if op.type == "ASSIGN_VARIABLE":
                var = _variable(op, handles, init.path)
                value = _operand(op.inputs["in"], 1, op, init.path)
                if value not in init.constants:
                    raise InputError(f"{init.path}: the init subgraph assigns variable {var!r} a computed value; only constants are supported")
                values[var] = (init.constants[value], init.quant.get(value))
            elif op.type != "VAR_HANDLE":
                raise InputError(f"{init.path}: the CALL_ONCE init subgraph runs {op.type}; only VAR_HANDLE and ASSIGN_VARIABLE are supported")
    return values


def _handles(graph: SourceGraph) -> dict[str, str]:
    """Handle tensor -> variable name (shared_name, prefixed by a non-empty container)."""
    handles = {}
    for op in graph.ops:
        if op.type == "VAR_HANDLE":
            shared, container = (_text(op.attrs.get(k)) for k in ("SharedName", "Container"))
            handle = _operand(op.outputs.get("out", []), 0, op, graph.path)
            handles[handle] = f"{container}/{shared}" if container else (shared or handle)
    return handles


def _variable(op: SourceOp, handles: dict[str, str], path: str) -> str:
    handle = _operand(op.inputs.get("in", []), 0, op, path)
    if handle not in handles:
        raise InputError(f"{path}: op {op.label}: input {handle!r} is not a VAR_HANDLE")
    return handles[handle]


def _operand(names: list[str], index: int, op: SourceOp, path: str) -> str:
    if index >= len(names) or not names[index]:
        raise InputError(f"{path}: op {op.type} has no operand {index}")
    return names[index]


def _text(raw: object) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def _fresh(name: str, taken: set[str]) -> str:
    new = unique_name(name, taken)
    taken.add(new)
    return new


def _fit(value: np.ndarray, shape: tuple[int, ...] | None, dtype: str | None, var: str, path: str) -> np.ndarray:
    """The initial value in the shape and dtype the main graph reads."""
    if shape is not None and all(d >= 0 for d in shape) and value.size != int(np.prod(shape, dtype=np.int64)):
        raise InputError(f"{path}: variable {var!r}: initial value has shape {list(value.shape)}, the graph reads {list(shape)}")
    if dtype is not None and value.dtype.name != dtype:
        raise InputError(f"{path}: variable {var!r}: initial value is {value.dtype.name}, the graph reads {dtype}")
    return value.reshape(shape) if shape is not None and all(d >= 0 for d in shape) else value


def _check_written(graph: SourceGraph, var: str, written: str, last_write: dict[str, str]) -> None:
    """The next value must be a computed tensor of its own: ONNX gives each output one name."""
    if written in graph.constants:
        raise InputError(f"{graph.path}: variable {var!r} is assigned a constant ({written!r}); not supported")
    if written in graph.outputs or written in {t.name for t in graph.inputs}:
        raise InputError(f"{graph.path}: variable {var!r} is assigned {written!r}, which is also a graph input or output; not supported")
    if sum(1 for w in last_write.values() if w == written) > 1:
        raise InputError(f"{graph.path}: several variables are assigned the same tensor {written!r}; not supported")
