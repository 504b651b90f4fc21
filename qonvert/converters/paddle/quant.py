"""Every Paddle quantization convention, in one place.

- Paddle's Scale is the abs-max: ONNX scale = Scale / (2^(bit_length-1) - 1).
- quant_axis -1 is per-tensor; rank-1 data uses axis 0; conv weights axis 0,
  mul/matmul/matmul_v2/conv2d_transpose weights axis 1 (as the attribute says).
- round_type 0 rounds half to even (as ONNX), 1 half away from zero (a possible 1-LSB tie difference).
- quantize_linear/dequantize_linear with only_observer=True are identity in Paddle's kernels; they
  only record a scale for int8 backends. resolve_observers drops them ("skip", Paddle's numbers) or
  makes them real quantization points ("quantize", the int8 backends' reading), see there.
- The legacy fake ops are rewritten into quantize_linear/dequantize_linear (normalise_fake_ops),
  so the mappers see one quantization form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...errors import InputError
from ...opsets.qparams import QuantParams
from ..source import MAX_RANK, SourceGraph, SourceOp

BITS_TO_DTYPE = {8: "int8", 16: "int16", 4: "int4"}


def bin_count(bit_length: int) -> int:
    if not 2 <= bit_length <= 32:  # 2**(2**63) would never finish: bounds before arithmetic
        raise InputError(f"bit_length {bit_length} is not a quantization width")
    return 2 ** (bit_length - 1) - 1


def bits_of(op: SourceOp) -> int:
    widths = op.ints_attr("bit_length", "quant_bits", default=[8], scalar=True)  # an int, or the fake ops' list
    if not widths or widths[0] not in BITS_TO_DTYPE:
        shown = widths[0] if len(widths) == 1 else widths
        raise InputError(f"op {op.label}: bit_length {shown!r} (e.g. a float8 e4m3/e5m2 pair) is not supported yet")
    return widths[0]


def qparams(
    op: SourceOp, abs_max: np.ndarray, zero_point: np.ndarray | None, shape: tuple[int, ...] | None, tensor: str, validate: bool = True
) -> QuantParams:
    """QuantParams of a quantize_linear/dequantize_linear op acting on a tensor of `shape`
    (validate=False for a constant, whose dead channels are revived first)."""
    bits = bits_of(op)
    scale = np.asarray(abs_max, dtype=np.float64).ravel() / bin_count(bits)
    zp = np.zeros(scale.shape, np.int64) if zero_point is None else np.asarray(zero_point).astype(np.int64).ravel()
    if zp.size == 1 and scale.size > 1:
        zp = np.repeat(zp, scale.size)
    if zp.size != scale.size or scale.size == 0:
        raise InputError(f"op {op.label}: tensor {tensor!r}: {scale.size} scales and {zp.size} zero points")
    rank = len(shape) if shape is not None else None
    # bounded even where the tensor's rank is unknown (a run-time tensor without a declared shape)
    axis = op.int_attr("quant_axis", default=-1, low=-1, high=MAX_RANK - 1)
    if axis == -1 and scale.size == 1:
        qp = QuantParams(
            scale.reshape(()).astype(np.float32),
            zp.reshape(()),
            BITS_TO_DTYPE[bits],
            None,
            op.optional_int_attr("qmin"),
            op.optional_int_attr("qmax"),
        )
    else:
        if rank == 1:
            axis = 0
        if rank is not None and not 0 <= axis < rank:
            raise InputError(f"op {op.label}: quant_axis {axis} out of range for tensor {tensor!r} of rank {rank}")
        qp = QuantParams(scale.astype(np.float32), zp, BITS_TO_DTYPE[bits], axis, op.optional_int_attr("qmin"), op.optional_int_attr("qmax"))
    return qp.validate(tensor, shape) if validate else qp


def parsed_params(graph: SourceGraph) -> dict[str, QuantParams]:
    """The QuantParams of every quantize_linear / dequantize_linear with a constant scale, by the
    tensor it acts on (what `inspect` shows): ONNX terms, scale = abs-max / bnt."""
    found: dict[str, QuantParams] = {}
    for op in graph.ops:
        if op.type not in ("quantize_linear", "dequantize_linear"):
            continue
        x, scale = op.input("X"), graph.constants.get(op.input("Scale") or "")
        if x is None or scale is None or x in found:
            continue
        zp = graph.constants.get(op.input("ZeroPoint") or "")
        shape = graph.constants[x].shape if x in graph.constants else graph.shapes.get(x)
        found[x] = qparams(op, scale, zp, tuple(shape) if shape is not None else None, x, validate=False)
    return found


def paddle_round(x: np.ndarray, round_type: int) -> np.ndarray:
    if round_type == 1:
        return np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.rint(x)


def fold_quantize(op: SourceOp, x: np.ndarray, qp: QuantParams) -> np.ndarray:
    """quantize_linear on a constant, as Paddle computes it (x * bnt / Scale, Paddle's rounding;
    Paddle's `inverse` divides by Scale + 1e-6 where Scale is 0, so a dead channel stays 0)."""
    qp.check_shape(op.input("X") or "?", x.shape)
    s, z = qp.broadcast(x.ndim)
    inverse = 1.0 / np.where(s <= 1e-30, s + np.float32(1e-6), s)
    q = paddle_round(x.astype(np.float32) * inverse, op.int_attr("round_type", default=0)) + z
    return np.clip(q, qp.qmin, qp.qmax)


# -- legacy fake ops -> quantize_linear / dequantize_linear ----------------------------------
FAKE_QDQ = {
    "fake_quantize_dequantize_moving_average_abs_max",
    "fake_quantize_dequantize_abs_max",
    "fake_channel_wise_quantize_dequantize_abs_max",
}
FAKE_Q = {
    "fake_quantize_moving_average_abs_max",
    "fake_quantize_range_abs_max",
    "fake_quantize_abs_max",
    "fake_channel_wise_quantize_abs_max",
}
FAKE_DQ = {"fake_dequantize_max_abs", "fake_channel_wise_dequantize_max_abs"}
_WEIGHT_SLOTS = {
    "conv2d": ("Input", "Filter"),
    "depthwise_conv2d": ("Input", "Filter"),
    "conv2d_transpose": ("Input", "Filter"),
    "mul": ("X", "Y"),
    "matmul": ("X", "Y"),
    "matmul_v2": ("X", "Y"),
}
# Shape-only ops that PIR's translation of a legacy `mul` puts around its matmul (x_num_col_dims).
_RESHAPES = ("reshape", "reshape2", "flatten", "flatten_contiguous_range", "squeeze", "squeeze2", "unsqueeze", "unsqueeze2")


def _reshaped(name: str, producers: dict[str, SourceOp]) -> SourceOp | None:
    """The shape-only op whose value `name` is (its Out: an XShape side output is no reshape of X)."""
    op = producers.get(name)
    return op if op is not None and op.type in _RESHAPES and op.input("X") and op.output("Out") == name else None


def _through_reshapes(name: str, producers: dict[str, SourceOp], stop: Callable[[str], bool] = lambda n: False) -> str:
    """The tensor `name` reshapes, following shape-only ops back (until `stop` holds)."""
    for _ in range(8):
        op = _reshaped(name, producers)
        if stop(name) or op is None:
            break
        name = op.input("X") or name
    return name


def normalise_fake_ops(graph: SourceGraph) -> None:
    """Rewrite the legacy fake-quant ops (PaddleSlim, static PTQ with onnx_format=False) in place."""
    if not any(op.type in FAKE_QDQ | FAKE_Q | FAKE_DQ for op in graph.ops):
        return
    c = graph.constants
    new_ops: list[SourceOp] = []
    act_scale: dict[str, tuple[np.ndarray, int]] = {}  # quantized (int-valued) tensor -> (abs-max, bits)
    rename: dict[str, str] = {}
    producers = graph.producers()

    def const(name: str, value: np.ndarray) -> str:
        c[name] = np.asarray(value, dtype=np.float32)
        return name

    def op_scale(op: SourceOp, x: str) -> np.ndarray:
        in_scale = op.input("InScale")
        if in_scale is not None and in_scale in c:
            return c[in_scale].astype(np.float32).ravel()
        if x not in c:
            raise InputError(f"op {op.label}: scale is computed at run time from a non-constant tensor")
        if c[x].size == 0:  # its abs-max is the scale
            raise InputError(f"op {op.label}: its input {x!r} is an empty constant, with no abs-max to scale by")
        axis = op.optional_int_attr("quant_axis", low=0, high=c[x].ndim - 1)
        if op.type.startswith("fake_channel_wise") and axis is not None:
            data = np.moveaxis(np.abs(c[x]), axis, 0).reshape(c[x].shape[axis], -1)
            return data.max(axis=1).astype(np.float32)
        return np.asarray([np.abs(c[x]).max()], np.float32)

    def qdq_attrs(op: SourceOp, per_channel: bool) -> dict[str, object]:
        # The fake ops clip to the abs-max before rounding: codes in [-bnt, bnt], not the dtype's -128.
        axis = op.int_attr("quant_axis", default=0, low=0, high=MAX_RANK - 1) if per_channel else -1
        bnt = bin_count(bits_of(op))
        return {"bit_length": bits_of(op), "quant_axis": axis, "round_type": op.attr("round_type", default=0), "qmin": -bnt, "qmax": bnt}

    for op in graph.ops:
        op.inputs = {k: [rename.get(n, n) for n in v] for k, v in op.inputs.items()}
        if op.type in FAKE_QDQ or op.type in FAKE_Q:
            x, out = _operands(op)
            scale = op_scale(op, x)
            per_channel = op.type.startswith("fake_channel_wise")
            attrs = qdq_attrs(op, per_channel)
            sname = const(f"{out}@scale", scale)
            out_scale = op.output("OutScale")
            if out_scale and out_scale not in c:  # PIR names the scale it passes on anew (ProgramDesc reuses InScale)
                const(out_scale, scale)
            q_out = f"{out}@quantized" if op.type in FAKE_QDQ else out
            new_ops.append(SourceOp("quantize_linear", {"X": [x], "Scale": [sname]}, {"Y": [q_out]}, attrs))
            if op.type in FAKE_QDQ:
                new_ops.append(SourceOp("dequantize_linear", {"X": [q_out], "Scale": [sname]}, {"Y": [out]}, attrs))
            else:
                act_scale[out] = (scale, bits_of(op))
            continue
        if op.type in FAKE_DQ:
            x, out = _operands(op)
            total = _dequant_factor(op, c)
            producer = producers.get(_through_reshapes(x, producers, lambda n: n in act_scale))
            if x in act_scale:  # a plain dequantization of a quantized activation
                bits = act_scale[x][1]
                sname = const(f"{out}@scale", total * bin_count(bits))
                new_ops.append(
                    SourceOp(
                        "dequantize_linear",
                        {"X": [x], "Scale": [sname]},
                        {"Y": [out]},
                        {"bit_length": bits, "quant_axis": -1 if total.size == 1 else 0},
                    )
                )
                continue
            if producer is None or producer.type not in _WEIGHT_SLOTS:
                raise InputError(f"op {op.label}: dequantizes a tensor that is neither quantized nor a conv/matmul output")
            _dequantize_frozen(producer, op, total, act_scale, new_ops, c, producers)
            rename[out] = x
            continue
        new_ops.append(op)
    # The frozen pattern's conv/matmul reads the quantized activation: give it a DQ.
    rewired: list[SourceOp] = []
    dq_of: dict[str, str] = {}
    for op in new_ops:
        for slot, names in op.inputs.items():
            if op.type == "dequantize_linear" and slot == "X":
                continue
            for i, n in enumerate(names):
                if n in act_scale:
                    if n not in dq_of:
                        scale, bits = act_scale[n]
                        dq_of[n] = f"{n}@dequantized"
                        rewired.append(
                            SourceOp(
                                "dequantize_linear",
                                {"X": [n], "Scale": [f"{n}@scale"]},
                                {"Y": [dq_of[n]]},
                                {"bit_length": bits, "quant_axis": -1},
                            )
                        )
                    names[i] = dq_of[n]
        rewired.append(op)
    graph.ops = rewired
    graph.outputs = [rename.get(n, n) for n in graph.outputs]
    for old, new in rename.items():
        if old in graph.shapes:
            graph.shapes.setdefault(new, graph.shapes[old])
    for op in graph.ops:  # the tensors made here have their input's shape (mul needs ranks)
        if op.type in ("quantize_linear", "dequantize_linear"):
            x, y = op.input("X") or "", op.output("Y") or ""
            shape = c[x].shape if x in c else graph.shapes.get(x)
            if shape is not None:
                graph.shapes.setdefault(y, tuple(shape))
    graph.notes.append("legacy fake-quant ops rewritten to quantize/dequantize pairs")


def _dequant_factor(op: SourceOp, c: dict[str, np.ndarray]) -> np.ndarray:
    """The float factor a fake dequant op multiplies by (per channel or scalar)."""
    if op.type == "fake_dequantize_max_abs":
        scale = c[op.input("Scale") or ""].astype(np.float64).ravel()
        return (scale / op.float_attr("max_range", default=float("nan"))).astype(np.float64)
    missing = [n for n in op.inputs.get("Scales", []) if n not in c]
    if missing:
        raise InputError(f"op {op.label}: scale {missing[0]!r} is computed at run time, not a constant")
    scales = [c[n].astype(np.float64).ravel() for n in op.inputs.get("Scales", [])]
    sizes = sorted({s.size for s in scales} - {1})
    if len(sizes) > 1 or 0 in sizes:  # one per channel and one per tensor: a size-1 scale or one channel count
        raise InputError(f"op {op.label}: its scales hold {' and '.join(map(str, sizes))} values; they do not match")
    bits = op.ints_attr("quant_bits", default=[8] * len(scales), low=2, high=32, scalar=True)
    factor = np.ones(1)
    for s, b in zip(scales, bits, strict=False):
        factor = factor * s / bin_count(int(b))
    return factor


def _dequantize_frozen(
    producer: SourceOp,
    dq: SourceOp,
    total: np.ndarray,
    act_scale: dict[str, tuple[np.ndarray, int]],
    new_ops: list[SourceOp],
    c: dict[str, np.ndarray],
    producers: dict[str, SourceOp],
) -> None:
    """conv/matmul on (quantized activation, integer-valued weight) followed by a dequant of its
    output: give the weight its own dequantize_linear with factor total / activation factor."""
    act_slot, w_slot = _WEIGHT_SLOTS[producer.type]
    act, weight = producer.input(act_slot), producer.input(w_slot) or ""
    act = _through_reshapes(act or "", producers, lambda n: n in act_scale)
    reader, slot = producer, w_slot  # the op that reads the weight constant (PIR: a reshape of it)
    for _ in range(8):  # a bounded walk, as _through_reshapes: a corrupt file's reshapes can form a ring
        reshape = None if weight in c else _reshaped(weight, producers)
        if reshape is None:
            break
        reader, slot = reshape, "X"
        weight = reader.input("X") or ""
    if act not in act_scale or weight not in c:
        raise InputError(f"op {dq.label}: frozen quantized {producer.type} without a quantized input and constant weight")
    # the weight's DQ goes right before its reader, which must precede this op (found by identity:
    # SourceOp compares by value, and a corrupt file can hold two equal ops)
    at = next((k for k, op in enumerate(new_ops) if op is reader), None)
    if at is None:
        raise InputError(f"op {dq.label}: reads the output of op {reader.label}, which comes after it in the program")
    a_scale, a_bits = act_scale[act]
    first = float(a_scale.ravel()[0]) if a_scale.size else 0.0
    if not np.isfinite(first) or first <= 0:  # the weight's factor divides by it
        raise InputError(f"op {dq.label}: the scale of its input {act!r} is {first}, not positive and finite")
    w_factor = total / (first / bin_count(a_bits))
    w_bits = 8
    axis = dq.int_attr("quant_axis", default=0 if producer.type in ("conv2d", "depthwise_conv2d") else 1, low=0, high=MAX_RANK - 1)
    if producer.type == "conv2d_transpose":
        axis = 1
    name = f"{weight}@scale"
    c[name] = (w_factor * bin_count(w_bits)).astype(np.float32)
    dq_name = f"{weight}@dequantized"
    weight_dq = SourceOp(
        "dequantize_linear",
        {"X": [weight], "Scale": [name]},
        {"Y": [dq_name]},
        {"bit_length": w_bits, "quant_axis": -1 if w_factor.size == 1 else axis},
    )
    new_ops.insert(at, weight_dq)
    reader.inputs[slot] = [dq_name]


OBSERVER_MODES = ("skip", "quantize")
_FOLDS_INTO_PRODUCER = ("batch_norm", "elementwise_add", "elementwise_sub", "add", "subtract")


def resolve_observers(graph: SourceGraph, mode: str) -> int:
    """Drop observer-only Q/DQ pairs, or (mode "quantize") turn those on activations into real ones.

    In "quantize" mode an observer is still dropped where the observed tensor is constant
    (Paddle observes conv biases) or feeds only a BatchNorm or a constant bias add: those fold
    into the conv/matmul (int32 bias, BN in the weight scale), as TensorRT and oneDNN fuse them,
    and rounding in between would add error no int8 backend has. Returns the number made real.
    """
    if mode not in OBSERVER_MODES:
        raise InputError(f"observers mode {mode!r}: expected one of {', '.join(OBSERVER_MODES)}")
    observers = [op for op in graph.ops if op.type == "quantize_linear" and op.attr("only_observer", default=False)]
    if not observers:
        return 0
    constant = set(graph.constants)
    for op in graph.ops:
        ins = [n for names in op.inputs.values() for n in names]
        if ins and all(n in constant for n in ins):
            constant.update(n for names in op.outputs.values() for n in names)
    users = graph.consumers()

    def folds(observed_dq: SourceOp) -> bool:
        out = observed_dq.output("Y")
        consumers = users.get(out or "", [])
        return bool(consumers) and all(
            c.type == "batch_norm" or (c.type in _FOLDS_INTO_PRODUCER and any(n in constant for n in (c.input("Y") or "", c.input("X") or "")))
            for c in consumers
        )

    alias: dict[str, str] = {}
    made_real = 0
    dropped: set[int] = set()
    for q in observers:
        dq = next((u for u in users.get(q.output("Y") or "", []) if u.type == "dequantize_linear"), None)
        x = q.input("X")
        if mode == "quantize" and dq is not None and x not in constant and not folds(dq):
            q.attrs["only_observer"] = dq.attrs["only_observer"] = False
            made_real += 1
            continue
        if not x or not q.output("Y"):
            raise InputError(f"op {q.label}: an observer without {'input X' if not x else 'output Y'}")
        dropped.add(id(q))
        alias[q.output("Y") or ""] = x
        if dq is not None:
            dropped.add(id(dq))
            alias[dq.output("Y") or ""] = x
    kept = []
    for op in graph.ops:
        if id(op) in dropped:
            continue
        op.inputs = {k: [_resolve(alias, n) for n in v] for k, v in op.inputs.items()}
        kept.append(op)
    graph.ops = kept
    graph.outputs = [_resolve(alias, n) for n in graph.outputs]
    if made_real:
        graph.notes.append(
            f"{made_real} observer-only quantizations (only_observer=True) made real Q/DQ: Paddle's own executor "
            "skips them, so outputs may differ from Paddle by a few LSB (use observers='skip' to match it)"
        )
    return made_real


def _resolve(alias: dict[str, str], name: str) -> str:
    seen = set()
    while name in alias:
        if name in seen:  # observers that write each other's inputs (or their own) in a ring
            raise InputError(f"tensor {name!r}: observer-only quantizations that read and write it form a cycle")
        seen.add(name)
        name = alias[name]
    return name


def _operands(op: SourceOp) -> tuple[str, str]:
    """A fake quantization op's input X and output Out, which the file must name."""
    x, out = op.input("X"), op.output("Out")
    if x is None or out is None:
        raise InputError(f"op {op.label}: a fake quantization op without {'input X' if x is None else 'output Out'}")
    return x, out
