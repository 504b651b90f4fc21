"""The one input sampler: each input spread over its whole quantization range.

Real int8 models take raw codes (scale 1) or floats the graph quantizes from e.g. [0, 255]; values
around 0 would reach a handful of codes and the reference would span one or two levels. So:
- an integer input gets every code of its dtype, uniformly;
- a float input that the graph quantizes (through layout ops only) gets the reals of every code
  of that quantization, uniformly, each off its grid point by a uniform fraction of a step;
- a float input with no quantization gets standard-normal values (images normalised as most
  backbones expect): FLOAT_DEFAULT.
Coverage (how many codes the samples reach) is measured by `input_levels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import InputError
from ..metadata import read_input_quantization, read_states
from ..opsets.graph_edit import LAYOUT_OPS, qparams_of
from ..opsets.qparams import QDTYPES, QuantParams

FLOAT_DEFAULT = "standard normal"
Samples = list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]  # dynamic dims as 1
    dtype: np.dtype
    qparams: QuantParams | None  # the per-tensor quantization the input goes through, if any
    declared: tuple[int | None, ...] = ()  # the model's own dims, None where dynamic


DYNAMIC_DIM = 64  # a dynamic dimension other than the batch, unless input_shapes says otherwise


def input_specs(model: onnx.ModelProto | ir.Model, input_shapes: dict[str, list[int]] | None = None) -> list[InputSpec]:
    """The graph inputs, less state inputs (verify carries those from step to step); a dynamic
    batch becomes 1 and any other dynamic dimension DYNAMIC_DIM (a real image or sequence size,
    not a degenerate 1x1), or what `input_shapes` names."""
    graph = (model if isinstance(model, ir.Model) else ir.from_proto(model)).graph
    specs = []
    given = dict(input_shapes or {})
    state_inputs = {s.input for s in read_states(model)}
    recorded = read_input_quantization(model)
    for value in graph.inputs:
        if value.name in state_inputs:
            continue
        declared = list(value.shape or ())
        if value.name in given:
            dims = tuple(int(d) for d in given.pop(value.name))
            if len(dims) != len(declared) or any(isinstance(w, int) and w > 0 and w != d for w, d in zip(declared, dims, strict=False)):
                raise InputError(f"input {value.name!r}: shape {list(dims)} does not fit the model's {[str(d) for d in declared]}")
        else:
            dims = tuple(d if isinstance(d, int) and d > 0 else (1 if i == 0 else DYNAMIC_DIM) for i, d in enumerate(declared))
        dtype = np.dtype(value.dtype.numpy()) if value.dtype is not None else np.dtype(np.float32)
        static = tuple(d if isinstance(d, int) and d > 0 else None for d in declared)
        qp = _quantization_of(value)
        if qp is None and value.name in recorded and dtype.name in QDTYPES:
            scale, zero_point = recorded[value.name]
            qp = QuantParams(np.asarray(scale, np.float32), np.asarray(zero_point, np.int64), dtype.name)
        specs.append(InputSpec(value.name or "", dims, dtype, qp, static))
    if given:
        raise InputError(f"input_shapes names {', '.join(map(repr, given))}, not an input of the model")
    return specs


def _quantization_of(value: ir.Value) -> QuantParams | None:
    """The per-tensor Q or DQ the input reaches through single-consumer layout ops."""
    cur = value
    for _ in range(8):
        users = cur.consumers()
        if len(users) != 1:
            return None
        node = users[0]
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not node.domain:
            qp = qparams_of(node)
            return qp if qp is not None and not qp.per_axis else None
        if node.op_type not in LAYOUT_OPS or node.domain:
            return None
        cur = node.outputs[0]
    return None


def quantize_float_feeds(specs: list[InputSpec], feeds: Samples) -> tuple[Samples, list[str]]:
    """Float values given for an integer input that the model dequantizes (an int8-I/O model fed
    the images an application quantizes) become its codes, by the input's own scale and zero point
    (rounding half away from zero, as LiteRT's QUANTIZE does); each such input is named once."""
    notes: list[str] = []
    out = [dict(feed) for feed in feeds]
    for spec in specs:
        qp = spec.qparams
        given = [feed.get(spec.name) for feed in out]
        if qp is None or spec.dtype.kind not in "iu" or not all(v is not None and v.dtype.kind == "f" for v in given):
            continue
        lo, hi = qp.code_range
        for feed in out:
            steps = feed[spec.name].astype(np.float64) / float(qp.scale)
            codes = np.sign(steps) * np.floor(np.abs(steps) + 0.5) + int(qp.zero_point)
            feed[spec.name] = np.clip(codes, lo, hi).astype(spec.dtype)
        by = f"the model's scale {float(qp.scale):.6g} and zero point {int(qp.zero_point)}"
        notes.append(f"input {spec.name!r} given as float: quantized to {spec.dtype} with {by}")
    return out, notes


def check_feeds(path: str, specs: list[InputSpec], feeds: Samples) -> None:
    """Inputs from a file must name, shape and type every model input as the model does."""
    for i, feed in enumerate(feeds):
        for spec in specs:
            if spec.name not in feed:
                raise InputError(f"{path}: sample {i} has no value for input {spec.name!r}")
            got = feed[spec.name]
            if got.ndim != len(spec.declared) or any(w is not None and g != w for g, w in zip(got.shape, spec.declared, strict=True)):
                want = ["?" if w is None else w for w in spec.declared]
                raise InputError(f"{path}: input {spec.name!r} of sample {i} has shape {list(got.shape)}, the model takes {want}")
            if got.dtype.kind != spec.dtype.kind and not (got.dtype.kind in "iu" and spec.dtype.kind in "iu"):
                raise InputError(f"{path}: input {spec.name!r} of sample {i} is {got.dtype}, the model takes {spec.dtype}")


def sample_inputs(model: onnx.ModelProto, samples: int, seed: int = 0, input_shapes: dict[str, list[int]] | None = None) -> Samples:
    rng = np.random.default_rng(seed)
    specs = input_specs(model, input_shapes)
    out: Samples = []
    for _ in range(samples):
        feed: dict[str, np.ndarray] = {}
        for spec in specs:
            feed[spec.name] = _sample(spec, rng)
        out.append(feed)
    return out


def _sample(spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.dtype.kind in "iu":
        lo, hi = _code_range(spec)
        return rng.integers(lo, hi + 1, spec.shape).astype(spec.dtype)
    if spec.dtype.kind == "b":
        return rng.integers(0, 2, spec.shape).astype(bool)
    qp = spec.qparams
    if qp is None:
        return rng.standard_normal(spec.shape).astype(spec.dtype)
    lo, hi = qp.code_range
    codes = rng.integers(lo, hi + 1, spec.shape)
    jitter = rng.uniform(-0.45, 0.45, spec.shape)  # inside the step: the code is what rounding gives
    return ((codes - qp.zero_point + jitter) * qp.scale.astype(np.float64)).astype(spec.dtype)


def _code_range(spec: InputSpec) -> tuple[int, int]:
    if spec.qparams is not None:
        return spec.qparams.code_range
    if spec.dtype.name in QDTYPES:
        lo, hi = QDTYPES[spec.dtype.name]
        return lo, hi
    info = np.iinfo(spec.dtype)
    return max(int(info.min), -128), min(int(info.max), 127)  # an index or count input: small values


def input_levels(spec: InputSpec, values: list[np.ndarray]) -> tuple[int, int] | None:
    """(codes the samples reach, codes there are) for an integer or quantized input; None otherwise."""
    if spec.dtype.kind in "iu":
        lo, hi = _code_range(spec)
        codes = np.concatenate([np.asarray(v).ravel() for v in values]).astype(np.int64)
    elif spec.qparams is not None:
        lo, hi = spec.qparams.code_range
        codes = spec.qparams.quantize(np.concatenate([np.asarray(v, np.float32).ravel() for v in values])).astype(np.int64)
    else:
        return None
    reached = np.unique(np.clip(codes, lo, hi)).size
    return int(reached), hi - lo + 1
