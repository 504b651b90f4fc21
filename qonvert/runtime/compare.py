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
    top1_agreement: float | None  # a classifier's (its kind): the verdict asks 1.0
    levels: int  # distinct quantization levels the reference spans
    ref_range: float = 0.0  # max - min of the reference values
    # |diff| in LSB: counts of values in [0, 0.5), [0.5, 1.5), ... [HISTOGRAM_BINS - 1.5, inf)
    histogram: list[int] = field(default_factory=list)
    # What the application reads of the output (output_kind): its agreement in those terms, where
    # they have one (a classifier's top-1, a sequence's per-position argmax, a map's threshold).
    kind: str = "other"
    agreement: float | None = None
    agreement_terms: str = ""

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


KINDS = ("classifier", "sequence", "map", "regression", "other")
MAP_THRESHOLD = 0.3  # a probability map's default binarisation (PP-OCR det's)


def output_kind(shape: tuple[int, ...], ref: list[np.ndarray], named: str | None = None) -> tuple[str, float]:
    """(kind, map threshold) of an output: the one named (`map@0.5` sets the threshold), else from
    its shape where that is safe: [N, C] a classifier, [N, T, C] a sequence, a one-channel 4-D
    output whose values lie in [0, 1] a probability map; anything else has no agreement figure."""
    if named:
        kind, _, threshold = named.partition("@")
        if kind not in KINDS:
            raise InputError(f"output kind {named!r}: expected one of {', '.join(KINDS)} (map@THRESHOLD for a map's)")
        try:
            return kind, float(threshold) if threshold else MAP_THRESHOLD
        except ValueError:
            raise InputError(f"output kind {named!r}: the threshold is not a number") from None
    if len(shape) == 2 and shape[-1] > 1:
        return "classifier", MAP_THRESHOLD
    if len(shape) == 3 and shape[1] > 1 and shape[2] > 1:
        return "sequence", MAP_THRESHOLD
    if len(shape) == 4 and 1 in (shape[1], shape[3]) and all(float(r.min(initial=0)) >= 0 and float(r.max(initial=0)) <= 1 for r in ref):
        return "map", MAP_THRESHOLD
    return "other", MAP_THRESHOLD


def _agreement(kind: str, threshold: float, ours: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float | None, str]:
    if kind == "classifier":
        return float(np.mean([np.array_equal(np.argmax(x, -1), np.argmax(y, -1)) for x, y in zip(ours, ref, strict=True)])), "top-1"
    if kind == "sequence":
        same = np.concatenate([(np.argmax(x, -1) == np.argmax(y, -1)).ravel() for x, y in zip(ours, ref, strict=True)])
        return float(np.mean(same)), "argmax per position"
    if kind == "map":
        same = np.concatenate([((x > threshold) == (y > threshold)).ravel() for x, y in zip(ours, ref, strict=True)])
        return float(np.mean(same)), f"map > {threshold:g}"
    return None, ""


def compare(name: str, ours: list[np.ndarray], ref: list[np.ndarray], lsb: float, quantized: bool = True, kind: str | None = None) -> OutputStats:
    """quantized=False: the output passes through no quantization; `levels` then counts distinct values.
    kind: what the output is (output_kind's names), where its shape does not say it safely."""
    a = np.concatenate([np.asarray(x, np.float64).ravel() for x in ours])
    b = np.concatenate([np.asarray(x, np.float64).ravel() for x in ref])
    if a.shape != b.shape:
        raise InputError(f"output {name!r}: ours has {a.size} values, the reference {b.size}")
    diff = np.abs(a - b) / lsb
    if _on_grid(a / lsb) and _on_grid(b / lsb):  # both quantized at this step: count whole steps
        diff = np.abs(np.rint(a / lsb) - np.rint(b / lsb))
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(a @ b / denom) if denom else float(np.array_equal(a, b))
    found, threshold = output_kind(tuple(np.shape(ref[0])) if ref else (), ref, kind)
    agreement, terms = _agreement(found, threshold, ours, ref) if ours else (None, "")
    return OutputStats(
        name=name,
        lsb=lsb,
        max_abs_diff=float(np.max(np.abs(a - b))) if a.size else 0.0,
        max_diff_lsb=float(diff.max()) if diff.size else 0.0,
        pct_exact=float(np.mean(diff < 0.01) * 100) if diff.size else 100.0,
        pct_within_1lsb=float(np.mean(diff <= 1.0 + 1e-3) * 100) if diff.size else 100.0,
        cosine=cosine,
        top1_agreement=agreement if found == "classifier" else None,
        levels=int(np.unique(np.round(b / lsb) if quantized else b).size),
        ref_range=float(b.max() - b.min()) if b.size else 0.0,
        histogram=_histogram(diff),
        kind=found,
        agreement=agreement,
        agreement_terms=terms,
    )
