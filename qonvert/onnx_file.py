"""Writing ONNX files: atomically, and without holding a second copy of the weights.

A model is one protobuf message, which protobuf would build whole in memory and then serialise
whole: two more copies of the weights beside the IR's. But protobuf merges a singular message field
that occurs more than once (ModelProto.graph) and appends to repeated ones (GraphProto.initializer),
so the model without its initializers, followed by one `graph { initializer }` record per weight,
parses as the same model (onnx.load, ORT and the checker all read it so) while only one weight's
bytes are serialised at a time. (The value_info entries that onnx_ir adds for initializers, which
repeat each tensor's own type and dims, are left out.)
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
import onnx_ir as ir

from .errors import InputError, first_line

EXTERNAL_DATA_BYTES = (1 << 31) - (1 << 24)  # protobuf's 2 GiB limit, less room for the graph
_GRAPH_FIELD = 7  # ModelProto.graph
_INITIALIZER_FIELD = 5  # GraphProto.initializer
_RAW_DATA_FIELD = 9  # TensorProto.raw_data
_RAW_DTYPES = {  # numpy dtypes whose C-order bytes are ONNX's raw_data as they stand
    np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float16, np.float32, np.float64)
}


def initializer_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tensor_parts(value: ir.Value) -> list[bytes | memoryview]:
    """The TensorProto of an initializer, in pieces to write one after the other. A plain numpy
    array's bytes are its raw_data (little-endian, C order): they are written straight from the
    array (or the mapped source file it views) after the tensor's other fields, not copied twice
    into a protobuf first."""
    tensor = value.const_value
    assert tensor is not None  # an initializer
    # (a lazy weight is computed here, once: through a protobuf it was held three times over)
    array = tensor.raw if isinstance(tensor, ir.Tensor) else tensor.numpy() if isinstance(tensor, ir.LazyTensor) else None
    if (
        isinstance(array, np.ndarray)
        and array.dtype in _RAW_DTYPES
        and sys.byteorder == "little"
        and ir.DataType.from_numpy(array.dtype) == tensor.dtype
        and not tensor.metadata_props
    ):
        head = onnx.TensorProto(name=value.name, data_type=tensor.dtype.value, dims=array.shape)
        if tensor.doc_string:  # set only if there is one: protobuf 2 records an empty one too
            head.doc_string = tensor.doc_string
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data  # a view: no copy
        return [head.SerializeToString(), _varint(_RAW_DATA_FIELD << 3 | 2) + _varint(len(data)), data]
    tensor.name = value.name
    return [ir.serde.serialize_tensor(tensor).SerializeToString()]


def write_model(model: ir.Model, f: BinaryIO, release: Callable[[int], None] | None = None) -> None:
    """The model as one ONNX protobuf (module docstring), its weights serialised one at a time, in
    their order; `release` is told the bytes of each weight once it is written (converters.source.
    page_releaser lets go of the source pages read)."""
    initializers = list(model.graph.initializers.values())
    model.graph.initializers.clear()
    try:
        head = ir.serde.serialize_model(model)
    finally:
        for value in initializers:
            model.graph.register_initializer(value)
    f.write(head.SerializeToString())
    del head
    for value in initializers:
        parts = _tensor_parts(value)
        size = sum(len(p) for p in parts)
        initializer = _varint(_INITIALIZER_FIELD << 3 | 2) + _varint(size)  # graph { initializer { ... } }
        f.write(_varint(_GRAPH_FIELD << 3 | 2) + _varint(len(initializer) + size) + initializer)
        for part in parts:
            f.write(part)
        if release is not None:
            release(size)


def save_external(model: ir.Model, path: Path) -> None:
    """The model with every weight in `<name>.data` beside it (not atomic: for a temporary folder).
    ORT maps such a file rather than parsing its weights out of the protobuf: calibrating ResNet-50
    loaded a session in 50 MB instead of 79."""
    _contiguous_when_written(model)
    ir.save(model, path, external_data=path.name + ".data")


def _contiguous_when_written(model: ir.Model) -> None:
    """A weight held as a strided view (a transposed weight: constants.fold_constant_layout) is put
    in C order only when it is written, one at a time: numpy writes a strided array to a file one
    element at a time (7 s for 256 MB), and copying all of them first would hold the model twice."""
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, ir.Tensor) and isinstance(tensor.raw, np.ndarray) and not tensor.raw.flags.c_contiguous:
            value.const_value = ir.LazyTensor(functools.partial(_c_order, tensor.raw, tensor.dtype), tensor.dtype, tensor.shape, name=tensor.name)


def _c_order(array: np.ndarray, dtype: ir.DataType) -> ir.Tensor:
    return ir.Tensor(np.ascontiguousarray(array), dtype=dtype)


def _readable(tmp: str) -> None:
    """mkstemp makes 0600 files; the output gets the permissions any new file would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def save_atomic(
    model: ir.Model | onnx.ModelProto,
    path: Path,
    check: Callable[[str], None] | None = None,
    release: Callable[[int], None] | None = None,
) -> None:
    """Write the model through a temporary file that `check` may inspect, renamed into place; on any
    failure neither file is left behind. An ir.Model is written by write_model, or past protobuf's
    2 GiB with its weights in `<name>.data`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    data_file = path.with_name(path.name + ".data")
    external = isinstance(model, ir.Model) and initializer_bytes(model) >= EXTERNAL_DATA_BYTES
    done = False
    try:
        if isinstance(model, onnx.ModelProto):
            onnx.save_model(model, tmp)
        elif external:
            _contiguous_when_written(model)
            ir.save(model, tmp, external_data=data_file.name)
        else:
            with open(tmp, "wb") as f:
                write_model(model, f, release)
        if check is not None:
            check(tmp)
        _readable(tmp)
        os.replace(tmp, path)
        done = True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if external and not done and data_file.exists():
            data_file.unlink()


LOAD_EXTERNAL_BYTES = 1 << 30  # external weights up to this are read in; past it they stay in the file


def load_onnx(path: Path) -> onnx.ModelProto:
    """The model, its external weights read in unless they pass LOAD_EXTERNAL_BYTES (a model past
    protobuf's 2 GiB): those stay in the file, located absolutely so that the IR reads them on
    demand (runtime.ort.session gives ORT their folder)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
        external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        base = path.resolve().parent
        if sum(external_length(t) for t in external) <= LOAD_EXTERNAL_BYTES:
            onnx.load_external_data_for_model(proto, str(base))
            return proto
        for tensor in external:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = str(base / entry.value)
        return proto
    except Exception as exc:
        raise InputError(f"{path}: not a readable ONNX model ({first_line(exc, 300)})") from None


def external_length(tensor: onnx.TensorProto) -> int:
    """The byte length an external tensor's entry declares (unknown: as large as can be)."""
    return next((int(e.value) for e in tensor.external_data if e.key == "length"), 1 << 62)
