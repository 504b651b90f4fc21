# mypy: disable-error-code="valid-type"
"""A minimal protobuf wire-format reader: enough for Paddle's ProgramDesc and TensorDesc,
so conversion never imports paddle (or needs generated _pb2 modules)."""

from __future__ import annotations

import struct
from typing import Any

from ...errors import InputError


class Message:
    """Fields of one decoded message: field number -> list of raw values in wire order."""

    __slots__ = ("fields", "where")

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.fields: dict[int, list[Any]] = {}
        self.where = where
        fields = self.fields
        buf = memoryview(data)
        pos, end = 0, len(buf)
        try:
            while pos < end:
                key = buf[pos]  # one-byte keys and varints inline: nearly all of a ProgramDesc's
                key, pos = (key, pos + 1) if key < 0x80 else _varint(buf, pos)
                number, wire = key >> 3, key & 7
                if wire == 0:
                    val = buf[pos]
                    val, pos = (val, pos + 1) if val < 0x80 else _varint(buf, pos)
                elif wire == 2:
                    size, pos = _varint(buf, pos)
                    if pos + size > end:
                        raise ValueError("length past end")
                    val, pos = buf[pos : pos + size], pos + size  # type: ignore[assignment]
                elif wire == 5:
                    val, pos = bytes(buf[pos : pos + 4]), pos + 4  # type: ignore[assignment]
                elif wire == 1:
                    val, pos = bytes(buf[pos : pos + 8]), pos + 8  # type: ignore[assignment]
                else:
                    raise ValueError(f"wire type {wire}")
                if pos > end or number == 0:
                    raise ValueError("truncated")
                if number in fields:
                    fields[number].append(val)
                else:
                    fields[number] = [val]
        except (ValueError, IndexError) as exc:
            raise InputError(f"{where}: not a valid protobuf message ({exc})") from None

    def _typed(self, number: int, kind: type | tuple[type, ...], what: str) -> list[Any]:
        """The field's values, each of the wire type the schema gives it (a file can say another:
        bytes(n) of a varint would allocate n bytes)."""
        vals = self.fields.get(number, [])
        for v in vals:
            if not isinstance(v, kind):
                raise InputError(f"{self.where}: field {number} is not {what} (corrupt protobuf)")
        return vals

    def messages(self, number: int, where: str) -> list[Message]:
        return [Message(v, where) for v in self._typed(number, memoryview, "a message")]

    def string(self, number: int, default: str = "") -> str:
        vals = self._typed(number, memoryview, "a string")
        return bytes(vals[-1]).decode("utf-8", "replace") if vals else default

    def strings(self, number: int) -> list[str]:
        return [bytes(v).decode("utf-8", "replace") for v in self._typed(number, memoryview, "a string")]

    def int(self, number: int, default: int = 0) -> int:
        vals = self._typed(number, int, "an integer")
        return _signed(vals[-1]) if vals else default

    def ints(self, number: int) -> list[int]:
        """A repeated varint field, packed or not (int32/int64/bool/enum)."""
        out: list[int] = []
        for v in self._typed(number, (int, memoryview), "integers"):
            if isinstance(v, int):
                out.append(_signed(v))
            else:
                buf, pos = memoryview(v), 0
                while pos < len(buf):
                    x, pos = _varint(buf, pos)
                    out.append(_signed(x))
        return out

    def float(self, number: int, default: float = 0.0) -> float:
        vals = [v for v in self._typed(number, bytes, "a float") if len(v) == 4]
        if len(vals) != len(self.fields.get(number, [])):
            raise InputError(f"{self.where}: field {number} is not a float (corrupt protobuf)")
        return float(struct.unpack("<f", vals[-1])[0]) if vals else default

    def floats(self, number: int, fmt: str = "f") -> list[float]:
        size = struct.calcsize(fmt)
        out: list[float] = []
        for v in self._typed(number, (bytes, memoryview), "floats"):
            raw = bytes(v)
            out.extend(struct.unpack(f"<{len(raw) // size}{fmt}", raw))
        return out

    def double(self, number: int, default: float = 0.0) -> float:
        vals = [v for v in self._typed(number, bytes, "a double") if len(v) == 8]
        if len(vals) != len(self.fields.get(number, [])):
            raise InputError(f"{self.where}: field {number} is not a double (corrupt protobuf)")
        return float(struct.unpack("<d", vals[-1])[0]) if vals else default

    def has(self, number: int) -> bool:
        return number in self.fields


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v
