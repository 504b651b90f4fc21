"""Comparison of ORT outputs with reference outputs, in units of the output's quantization step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import InputError


@dataclass
class OutputStats:
    name: str
    lsb: float  # the quantization step the comparison is counted in
    max_abs_diff: float
    max_diff_lsb: float
    pct_exact: float  # |diff| < 0.01 LSB: float noise only
    pct_within_1lsb: float
    cosine: float
    top1_agreement: float | None  # for [N, classes] outputs
    levels: int  # distinct quantization levels the reference spans
    ref_range: float = 0.0  # max - min of the reference values
    # |diff| in LSB: counts of values in [0, 0.5), [0.5, 1.5), ... [HISTOGRAM_BINS - 1.5, inf)
    histogram: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def output_lsb(model: onnx.ModelProto) -> dict[str, float | None]:
    """Per graph output: the scale of the last quantization it passes through (max over axes);
    1 for an integer output (its own steps), None for one that passes through no quantization."""
    from ..opsets.graph_edit import const_array

    result: dict[str, float | None] = {}
    for out in ir.from_proto(model).graph.outputs:
        name = out.name or "?"
        if out.dtype is not None and out.dtype.is_integer():
            result[name] = 1.0  # an integer output is compared in its own steps
            continue
        seen: set[int] = set()
        frontier: list[ir.Value] = [out]
        lsb = 0.0
        while frontier and not lsb:
            following: list[ir.Value] = []
            for value in frontier:
                node = value.producer()
                if node is None or id(node) in seen:
                    continue
                seen.add(id(node))
                # an activation's Q/DQ (a constant's is a weight's); only its scale's values are read
                if node.op_type in ("DequantizeLinear", "QuantizeLinear") and node.inputs[0] is not None and node.inputs[0].const_value is None:
                    scale = const_array(node.inputs[1])
                    lsb = float(np.max(scale)) if scale is not None else 0.0
                    break
                following.extend(v for v in node.inputs if v is not None and v.const_value is None)
            frontier = following
        result[name] = lsb or None
    return result


HISTOGRAM_BINS = 12  # whole steps 0..10, then "more"


def _histogram(diff: np.ndarray) -> list[int]:
    edges = [-np.inf, 0.5, *(k + 0.5 for k in range(1, HISTOGRAM_BINS - 1)), np.inf]
    return [int(c) for c in np.histogram(diff, bins=edges)[0]]


def _on_grid(steps: np.ndarray) -> bool:
    """Values that are whole multiples of the step (up to float32 rounding of x * scale)."""
    return bool(steps.size) and bool(np.all(np.abs(steps - np.rint(steps)) < 1e-3))


def compare(name: str, ours: list[np.ndarray], ref: list[np.ndarray], lsb: float, quantized: bool = True) -> OutputStats:
    """quantized=False: the output passes through no quantization; `levels` then counts distinct values."""
    a = np.concatenate([np.asarray(x, np.float64).ravel() for x in ours])
    b = np.concatenate([np.asarray(x, np.float64).ravel() for x in ref])
    if a.shape != b.shape:
        raise InputError(f"output {name!r}: ours has {a.size} values, the reference {b.size}")
    diff = np.abs(a - b) / lsb
    if _on_grid(a / lsb) and _on_grid(b / lsb):  # both quantized at this step: count whole steps
        diff = np.abs(np.rint(a / lsb) - np.rint(b / lsb))
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(a @ b / denom) if denom else float(np.array_equal(a, b))
    top1 = None
    if ours and ours[0].ndim == 2 and ours[0].shape[-1] > 1:
        hits = [np.array_equal(np.argmax(x, -1), np.argmax(y, -1)) for x, y in zip(ours, ref, strict=True)]
        top1 = float(np.mean(hits))
    return OutputStats(
        name=name,
        lsb=lsb,
        max_abs_diff=float(np.max(np.abs(a - b))) if a.size else 0.0,
        max_diff_lsb=float(diff.max()) if diff.size else 0.0,
        pct_exact=float(np.mean(diff < 0.01) * 100) if diff.size else 100.0,
        pct_within_1lsb=float(np.mean(diff <= 1.0 + 1e-3) * 100) if diff.size else 100.0,
        cosine=cosine,
        top1_agreement=top1,
        levels=int(np.unique(np.round(b / lsb) if quantized else b).size),
        ref_range=float(b.max() - b.min()) if b.size else 0.0,
        histogram=_histogram(diff),
    )
