"""Writes .pdiparams in Paddle's layout (for bad-input tests that edit a parameter)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_CODES = {"float32": 5, "int8": 21, "int64": 3, "int32": 2, "float64": 6}


def _varint(v: int) -> bytes:
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def write_params(path: Path, params: dict[str, np.ndarray]) -> None:
    blob = bytearray()
    for name in sorted(params):
        arr = np.ascontiguousarray(params[name])
        desc = b"\x08" + _varint(_CODES[str(arr.dtype)]) + b"".join(b"\x10" + _varint(d) for d in arr.shape)
        blob += struct.pack("<IQ", 0, 0) + struct.pack("<Ii", 0, len(desc)) + desc + arr.tobytes()
    path.write_bytes(bytes(blob))
