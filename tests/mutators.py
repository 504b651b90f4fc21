"""Structure-aware mutators: each edits a model file through its own structure (a .tflite
flatbuffer's fields, a protobuf's fields, a .pdiparams tensor record, a PIR program's JSON tree, a
.pt2 archive's members) and writes it back consistently (lengths, sizes), so that a mutant gets
past the outer parse and reaches the checks behind it. Shared by the worker-process campaigns
(fuzzing.py) and the coverage-guided targets (coverage_fuzz.py)."""

from __future__ import annotations

import functools
import importlib
import io
import json
import random
import struct
import zipfile
from typing import Any

INTERESTING_INTS = (-1, 0, 1, 2, 3, 4, 5, 7, 8, 127, 128, 255, 1 << 16, (1 << 31) - 1, -(1 << 31))
VTABLE_OFFSETS = (0, 1, 2, 4, 6, 8, 0x7FFF, 0xFFFF)  # a flatbuffer field's offset in its table
# float32 values a quantization scale or bound may hold, as their bit patterns (a field's pool is ints)
FLOAT_BITS = tuple(struct.unpack("<i", struct.pack("<f", v))[0] for v in (0.0, -0.0, -1.0, 1e-45, 1e-38, 1e38, float("inf"), float("nan")))


# A field a mutation edits: (offset, size in bytes, the values it draws from; () for INTERESTING_INTS)
TfliteField = tuple[int, int, tuple[int, ...]]


@functools.cache
def tflite_op_codes() -> tuple[int, ...]:
    """The builtin operator codes qonvert maps: an operator code set to one of them reaches mappers
    that no seed file uses, with another op's inputs and options."""
    import tflite

    importlib.import_module("qonvert.converters.tflite.ops")
    from qonvert.converters.registry import mappers

    return tuple(sorted(code for name in mappers("tflite") if isinstance(code := getattr(tflite.BuiltinOperator, name, None), int)))


def operator_code_slots(code: Any) -> list[tuple[int, int]]:
    """Where a .tflite OperatorCode table names its op, as (position, size): deprecated_builtin_code
    (int8, 127 for a code past it) and builtin_code (int32), whichever the file holds."""
    return [(code._tab.Pos + off, size) for slot, size in ((4, 1), (10, 4)) if (off := code._tab.Offset(slot))]


def write_operator_code(out: bytearray, slots: list[tuple[int, int]], value: int) -> None:
    """Both of an OperatorCode's fields set to one builtin code, as a converter writes them."""
    for at, size in slots:
        out[at : at + size] = (value if size == 4 else min(value, 127)).to_bytes(size, "little")


def tflite_fields(data: bytes) -> list[TfliteField]:
    """The fields a structure-aware mutation edits in a .tflite file: each operator code's builtin
    code (drawn from the codes qonvert maps); each tensor's shape entries and the shape's length,
    its type, buffer index and quantization (quantized dimension, zero points, and min, max and
    scale entries set to zero, negative, tiny, huge, inf or NaN, and those vectors' lengths); each
    operator's opcode index, its input and output indices and the lengths of those lists, and every
    field its builtin options table holds (found through the table's vtable); and the vtable
    entries of tensors, operators and options (a field's offset, set to point elsewhere)."""
    import tflite

    model = tflite.Model.GetRootAs(data, 0)
    fields: list[TfliteField] = []

    def vector(table: Any, slot: int, item: int, pool: tuple[int, ...] = ()) -> None:
        offset = table._tab.Offset(slot)
        if offset:
            start = table._tab.Vector(offset)
            fields.append((start - 4, 4, ()))  # the length
            count = min(table._tab.VectorLen(offset), (len(data) - start) // item)  # a mutant's may be huge
            fields.extend((start + k * item, item, pool) for k in range(max(count, 0)))

    def scalar(table: Any, slot: int, size: int, pool: tuple[int, ...] = ()) -> None:
        offset = table._tab.Offset(slot)
        if offset:
            fields.append((table._tab.Pos + offset, size, pool))

    def vtable(pos: int) -> None:
        """The table's vtable entries (a field's offset in the table, 0 for absent), each set to
        an offset that points elsewhere, past the table, or nowhere."""
        start = pos - int.from_bytes(data[pos : pos + 4], "little", signed=True)
        if 0 <= start <= len(data) - 4:
            size = int.from_bytes(data[start : start + 2], "little")
            fields.extend((start + entry, 2, VTABLE_OFFSETS) for entry in range(4, min(size, 64), 2))

    bound = len(data) // 4  # a mutant's counts may be huge: no more entries than the file has words
    codes = tflite_op_codes()
    for c in range(min(model.OperatorCodesLength(), bound)):
        for at, size in operator_code_slots(model.OperatorCodes(c)):  # each alone: a mutant may disagree with itself
            fields.append((at, size, codes if size == 4 else tuple(k for k in codes if k < 127)))
    for s in range(min(model.SubgraphsLength(), bound)):
        sub = model.Subgraphs(s)
        for t in range(min(sub.TensorsLength(), bound)):
            tensor = sub.Tensors(t)
            vtable(tensor._tab.Pos)
            vector(tensor, 4, 4)  # shape
            scalar(tensor, 6, 1)  # type
            scalar(tensor, 8, 4)  # buffer
            vector(tensor, 18, 4)  # shape_signature
            quant = tensor.Quantization()
            if quant is not None:
                vector(quant, 4, 4, FLOAT_BITS)  # min
                vector(quant, 6, 4, FLOAT_BITS)  # max
                vector(quant, 8, 4, FLOAT_BITS)  # scale
                vector(quant, 10, 8)  # zero_point
                scalar(quant, 16, 4)  # quantized_dimension
        for k in range(min(sub.OperatorsLength(), bound)):
            op = sub.Operators(k)
            vtable(op._tab.Pos)
            scalar(op, 4, 4)  # opcode_index
            vector(op, 6, 4)  # inputs
            vector(op, 8, 4)  # outputs
            options = op.BuiltinOptions()
            if options is not None:
                vtable(options.Pos)
                start = options.Pos - int.from_bytes(data[options.Pos : options.Pos + 4], "little", signed=True)
                size = int.from_bytes(data[start : start + 2], "little")
                for entry in range(4, size, 2):
                    at = int.from_bytes(data[start + entry : start + entry + 2], "little")
                    if at:
                        fields.append((options.Pos + at, 1, ()))  # a bool, enum or the low byte of an int
    return [(at, size, pool) for at, size, pool in fields if 0 <= at and at + size <= len(data)]


def mutate_tflite_fields(data: bytes, rng: random.Random, fields: list[TfliteField]) -> bytes:
    """One to three fields of the file set to interesting values (in range of their width), or
    to a value of the field's own pool."""
    out = bytearray(data)
    offsets = [f for f in fields if f[2] is VTABLE_OFFSETS]  # a quarter of the edits, however many tables
    values = [f for f in fields if f[2] is not VTABLE_OFFSETS]
    for _ in range(rng.randint(1, 3)):
        at, size, pool = rng.choice(offsets if offsets and (not values or rng.random() < 0.25) else values)
        old = int.from_bytes(out[at : at + size], "little", signed=True)
        value = rng.choice(pool or [*INTERESTING_INTS, old - 1, old + 1])
        out[at : at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


@functools.cache
def paddle_op_types() -> list[str]:
    """Every Paddle op type qonvert maps: a string swapped for one reaches mappers that no seed
    program uses. Imported at the first mutation, after a coverage target's instrumented imports."""
    importlib.import_module("qonvert.converters.paddle.ops")
    from qonvert.converters.registry import mappers

    return sorted(mappers("paddle"))


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """One to three edits of a PIR program's JSON tree: a number set to an interesting value, a
    list entry dropped or repeated, a string (an op or attribute name, a type) swapped for another
    string of the program, or an op's type for any type qonvert maps."""
    tree = json.loads(data)
    slots: list[tuple[Any, Any]] = []  # (container, key or index) of every value in the tree
    strings: list[str] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)):
                pending.append(value)
            elif isinstance(value, str):
                strings.append(value)
    for _ in range(rng.randint(1, 3)):
        node, key = rng.choice(slots)
        if isinstance(node, list) and key >= len(node):
            continue  # an earlier edit of this run dropped it
        value = node[key]
        if isinstance(value, bool) or value is None:
            node[key] = not value
        elif isinstance(value, (int, float)):
            node[key] = rng.choice([*INTERESTING_INTS, value - 1, value + 1, -value, 1e308, 0.5])
        elif isinstance(value, str) and strings:
            swap_op = value.startswith("1.") and rng.random() < 0.25
            node[key] = "1." + rng.choice(paddle_op_types()) if swap_op else rng.choice(strings)
        elif isinstance(value, list) and value:
            at = rng.randrange(len(value))
            if rng.random() < 0.5:
                del value[at]
            else:
                value.insert(at, value[at])
    return json.dumps(tree).encode()


# -- protobuf (ProgramDesc, a .pdiparams TensorDesc) ---------------------------------------------
# A message is a list of [field number, wire type, value]: an int (varint), bytes (fixed32/64, or
# length-delimited that is not a message), or a list (a length-delimited field that parses as a
# message and writes back to the same bytes).
Fields = list[list[Any]]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _put_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative ints are ten-byte varints, as protobuf writes them
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def parse_protobuf(buf: bytes, depth: int = 0) -> Fields:
    fields: Fields = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            fields.append([number, wire, value])
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("truncated fixed field")
            fields.append([number, wire, buf[pos : pos + size]])
            pos += size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            body = buf[pos : pos + size]
            pos += size
            fields.append([number, wire, _submessage(body, depth)])
        else:
            raise ValueError(f"wire type {wire}")
    return fields


def _submessage(body: bytes, depth: int) -> bytes | Fields:
    if depth >= 16 or not body:
        return body
    try:
        inner = parse_protobuf(body, depth + 1)
    except ValueError:
        return body
    return inner if inner and write_protobuf(inner) == body else body


def write_protobuf(fields: Fields) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _put_varint(number << 3 | wire)
        if wire == 0:
            out += _put_varint(value)
        elif wire == 2:
            body = write_protobuf(value) if isinstance(value, list) else value
            out += _put_varint(len(body)) + body
        else:
            out += value
    return bytes(out)


def mutate_protobuf(data: bytes, rng: random.Random) -> bytes:
    """One to three edits anywhere in the message tree: a varint set to an interesting value
    (counts, dims, enum codes, indices), a field dropped or repeated, a string swapped for another
    string of the file or for an op type qonvert maps, a fixed field's bytes set to an interesting
    float or int."""
    tree = parse_protobuf(data)
    messages: list[Fields] = []
    strings: list[bytes] = []
    pending = [tree]
    while pending:
        fields = pending.pop()
        messages.append(fields)
        for _, wire, value in fields:
            if isinstance(value, list):
                pending.append(value)
            elif wire == 2:
                strings.append(value)
    for _ in range(rng.randint(1, 3)):
        fields = rng.choice(messages)
        if not fields:
            continue
        at = rng.randrange(len(fields))
        number, wire, value = fields[at]
        choice = rng.randrange(4)
        if choice == 0:
            del fields[at]
        elif choice == 1:
            fields.insert(at, [number, wire, value])
        elif wire == 0:
            fields[at][2] = rng.choice([*INTERESTING_INTS, value - 1, value + 1, 1 << 40])
        elif wire in (1, 5):
            fmt = rng.choice("fi") if wire == 5 else rng.choice("dq")
            special = [0, -1, 1 << 30] if fmt in "iq" else [0.0, -0.0, float("inf"), float("nan"), 1e-45, 1e38, -1.0]
            fields[at][2] = struct.pack("<" + fmt, rng.choice(special))
        elif isinstance(value, bytes) and strings:
            swap_op = rng.random() < 0.25
            fields[at][2] = rng.choice(paddle_op_types()).encode() if swap_op else rng.choice(strings)
    return write_protobuf(tree)


# -- .pdiparams: a sequence of tensor records ------------------------------------------------------


def pdiparams_records(data: bytes) -> list[tuple[int, int, int]]:
    """(record start, descriptor start, descriptor size) of each tensor record the file holds
    (version u32, LoD level u64, LoD, version u32, descriptor size i32, TensorDesc, data)."""
    from qonvert.converters.paddle.params import _read_tensor

    records = []
    pos = 0
    view = memoryview(data)
    while pos < len(data):
        lod_level = struct.unpack_from("<Q", data, pos + 4)[0]
        desc_at = pos + 12
        for _ in range(lod_level):
            desc_at += 8 + struct.unpack_from("<Q", data, desc_at)[0]
        size = struct.unpack_from("<i", data, desc_at + 4)[0]
        records.append((pos, desc_at + 8, size))
        _, pos = _read_tensor(view, pos)
    return records


def record_body(data: bytes, records: list[tuple[int, int, int]], k: int) -> tuple[int, int]:
    """Where record k's tensor data lies: after its TensorDesc, up to the next record (or the end)."""
    _, desc_at, size = records[k]
    return desc_at + size, records[k + 1][0] if k + 1 < len(records) else len(data)


def mutate_pdiparams(data: bytes, rng: random.Random, records: list[tuple[int, int, int]]) -> bytes:
    """One record edited: its TensorDesc mutated as a protobuf (dims, dtype) with the size field
    kept consistent, a header integer set to an interesting value, its data cut short, or one
    4-byte word of its data set to a special float (a scale of zero, NaN, inf ...: scales are
    records of their own)."""
    k = rng.randrange(len(records))
    start, desc_at, size = records[k]
    choice = rng.randrange(4)
    if choice == 0:
        desc = mutate_protobuf(data[desc_at : desc_at + size], rng)
        return data[: desc_at - 4] + struct.pack("<i", len(desc)) + desc + data[desc_at + size :]
    if choice == 1:
        at, fmt = rng.choice([(start, "<I"), (start + 4, "<Q"), (desc_at - 8, "<I"), (desc_at - 4, "<i")])
        value = rng.choice(INTERESTING_INTS) & ((1 << (8 * struct.calcsize(fmt))) - 1)
        packed = struct.pack(fmt.replace("i", "I").replace("q", "Q"), value)
        return data[:at] + packed + data[at + len(packed) :]
    body, end = record_body(data, records, k)
    if choice == 2 or end - body < 4:
        return data[: rng.randrange(body, len(data) + 1)]
    at = body + 4 * rng.randrange((end - body) // 4)
    return data[:at] + struct.pack("<i", rng.choice(FLOAT_BITS)) + data[at + 4 :]


# -- .pt2: a zip archive of torch.export's members -------------------------------------------------


def mutate_pt2(data: bytes, rng: random.Random) -> bytes:
    """One member of the archive edited and the archive written again: the serialized program's
    JSON (or another JSON member) through mutate_json, or a member's bytes (a weight, the sample
    inputs, the version files) truncated or with bytes set."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    k = rng.randrange(len(members))
    info, body = members[k]
    if info.filename.endswith(".json") and rng.random() < 0.8:
        body = mutate_json(body, rng)
    elif body and rng.random() < 0.5:
        body = body[: rng.randrange(len(body))]
    elif body:
        edited = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            edited[rng.randrange(len(edited))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        body = bytes(edited)
    members[k] = (info, body)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for member, content in members:
            archive.writestr(member, content)
    return out.getvalue()
