"""Paddle ProgramDesc programs (.pdmodel, protobuf), read without paddle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import InputError
from ..source import SourceGraph, SourceOp, TensorInfo
from .params import PADDLE_DTYPES, _size, read_params
from .protobuf import Message

_FEED_FETCH_TYPES = {9, 10}  # VarType FEED_MINIBATCH, FETCH_LIST


def _attr(attr: Message) -> tuple[str, Any]:
    """OpDesc.Attr: name=1, type=2 (AttrType), then one field per type."""
    name, kind = attr.string(1), attr.int(2)
    value: Any
    if kind == 0:
        value = attr.int(3)
    elif kind == 1:
        value = attr.float(4)
    elif kind == 2:
        value = attr.string(5)
    elif kind == 3:
        value = attr.ints(6)
    elif kind == 4:
        value = attr.floats(7)
    elif kind == 5:
        value = attr.strings(8)
    elif kind == 6:
        value = bool(attr.int(10))
    elif kind == 7:
        value = [bool(b) for b in attr.ints(11)]
    elif kind == 9:
        value = attr.int(13)
    elif kind == 11:
        value = attr.ints(15)
    elif kind == 12:
        value = attr.floats(16, "d")
    elif kind == 15:
        value = attr.double(19)
    elif kind == 13:
        value = attr.string(17)
    elif kind == 14:
        value = attr.strings(18)
    elif kind in (16, 17):  # SCALAR (field 20) / SCALARS (21), e.g. assign_value's values
        scalars = [_scalar(m) for m in attr.messages(20 if kind == 16 else 21, name)]
        value = scalars[0] if kind == 16 and scalars else scalars
    else:  # blocks: not used by the ops we map
        value = None
    return name, value


def _scalar(msg: Message) -> bool | int | float:
    """Scalar: type=1 (BOOLEAN 1, LONG 2, FLOAT64 3), b=2, i=3, r=4."""
    kind = msg.int(1)
    if kind == 1:
        return bool(msg.int(2))
    if kind == 2:
        return msg.int(3)
    return msg.double(4)


def read_legacy(program: Path, params: Path | None) -> SourceGraph:
    try:
        data = program.read_bytes()
    except OSError as exc:
        raise InputError(f"{program}: cannot read program ({exc.strerror})") from None
    where = str(program)
    desc = Message(data, where)
    blocks = desc.messages(1, where)
    if not blocks:
        raise InputError(f"{program}: not a Paddle ProgramDesc (no blocks)")
    block = blocks[0]

    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    param_names: list[str] = []
    for var in block.messages(3, where):
        name = var.string(1)
        vtype = var.messages(2, where)
        if not vtype:
            continue
        kind = vtype[0].int(1)
        lod = vtype[0].messages(3, where)
        if lod:
            tensor = lod[0].messages(1, where)
            if tensor:
                shapes[name] = tuple(tensor[0].ints(2))
                dtypes[name] = PADDLE_DTYPES.get(tensor[0].int(1), "float32")
        if var.int(3) and kind not in _FEED_FETCH_TYPES:
            param_names.append(name)

    ops: list[SourceOp] = []
    feeds: list[tuple[int, str]] = []
    fetches: list[tuple[int, str]] = []
    for opd in block.messages(4, where):
        op_type = opd.string(3)
        ins = {v.string(1): v.strings(2) for v in opd.messages(1, where)}
        outs = {v.string(1): v.strings(2) for v in opd.messages(2, where)}
        attrs = dict(_attr(a) for a in opd.messages(4, where))
        if not op_type:
            raise InputError(f"{program}: op without a type")
        if op_type in ("feed", "fetch"):
            slot = outs.get("Out") if op_type == "feed" else ins.get("X")
            col = attrs.get("col", 0)
            if not slot or not isinstance(col, int):
                raise InputError(f"{program}: a {op_type} op without its {'Out' if op_type == 'feed' else 'X'} variable or column")
            (feeds if op_type == "feed" else fetches).append((col, slot[0]))
        else:
            ops.append(SourceOp(op_type, {k: v for k, v in ins.items() if v}, {k: v for k, v in outs.items() if v}, attrs))

    inputs = [TensorInfo(n, shapes.get(n, ()), dtypes.get(n, "float32")) for _, n in sorted(feeds)]
    outputs = [n for _, n in sorted(fetches)]
    if params is not None:
        constants = read_params(params, sorted(param_names))
    elif param_names:
        raise InputError(f"{program}: program has {len(param_names)} parameters but no .pdiparams file was found")
    else:
        constants = {}
    for name, arr in constants.items():
        if name in shapes and arr.size != _size(shapes[name]):
            raise InputError(f"{params}: parameter {name!r} has shape {arr.shape}, program says {shapes[name]}")
    return SourceGraph("paddle", where, ops, inputs, outputs, constants, shapes)
