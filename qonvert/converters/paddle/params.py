"""Reads .pdiparams: tensors concatenated in sorted-name order, no index.

Each tensor: uint32 version, uint64 lod_level (+ per level uint64 nbytes + data),
uint32 version, int32 desc size, TensorDesc protobuf (data_type=1, dims=2), raw data.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..source import map_file
from .protobuf import Message

# Paddle VarType.Type -> numpy dtype (the float8 pair is handled by the quant layer)
PADDLE_DTYPES: dict[int, str] = {
    0: "bool",
    1: "int16",
    2: "int32",
    3: "int64",
    4: "float16",
    5: "float32",
    6: "float64",
    20: "uint8",
    21: "int8",
    22: "bfloat16",
}


def read_params(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read the tensors `names` (already sorted as Paddle saved them) from `path`."""
    buf = map_file(path, "parameters")
    out: dict[str, np.ndarray] = {}
    pos = 0
    for name in names:
        try:
            out[name], pos = _read_tensor(buf, pos)
        except (struct.error, ValueError, IndexError) as exc:
            raise InputError(f"{path}: truncated or corrupt at tensor {name!r} (byte {pos} of {len(buf)}): {exc}") from None
    if pos != len(buf):
        raise InputError(f"{path}: {len(buf) - pos} bytes left after {len(names)} tensors: the file does not match the program")
    return out


def _read_tensor(buf: memoryview, pos: int) -> tuple[np.ndarray, int]:
    (_version,) = struct.unpack_from("<I", buf, pos)
    (lod_level,) = struct.unpack_from("<Q", buf, pos + 4)
    pos += 12
    if lod_level > 64:  # a LoD level per nesting: files have 0 or 1
        raise ValueError(f"LoD level {lod_level}")
    for _ in range(lod_level):
        (nbytes,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + nbytes
        if pos > len(buf):
            raise ValueError(f"LoD of {nbytes} bytes past the end")
    (_version2, desc_size) = struct.unpack_from("<Ii", buf, pos)
    pos += 8
    if desc_size < 0 or pos + desc_size > len(buf):
        raise ValueError("bad tensor descriptor size")
    desc = Message(buf[pos : pos + desc_size], "TensorDesc")
    pos += desc_size
    code = desc.int(1, -1)
    dims = desc.ints(2)
    if code not in PADDLE_DTYPES or any(d < 0 for d in dims):
        raise ValueError(f"unsupported tensor dtype {code} or dims {dims}")
    dtype = np.dtype(PADDLE_DTYPES[code]) if code != 22 else np.dtype(np.uint16)
    count = int(np.prod(dims)) if dims else 1
    nbytes = count * dtype.itemsize
    if pos + nbytes > len(buf):
        raise ValueError(f"data needs {nbytes} bytes, {len(buf) - pos} left")
    arr = np.frombuffer(buf[pos : pos + nbytes], dtype=dtype).reshape(dims)  # a read-only view of the mapped file
    if code == 22:  # bfloat16: widen to float32 exactly
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr, pos + nbytes


def _size(shape: tuple[int, ...]) -> int:
    """Element count of a program-declared shape (scalars are saved as [1] or [])."""
    n = 1
    for d in shape:
        n *= d
    return n
