"""The public verbs: convert, verify, inspect."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common

# Private, on purpose: onnx_ir's own ShapeInferencePass and CheckerPass call onnx's C API through
# it, serialising the model without the large initializers' bytes; onnx_ir has no public form of it.
from onnx_ir.passes.common import _c_api_utils

from . import onnx_file, targets
from .errors import InputError, InternalError, QonvertError
from .metadata import SOURCE_OP, read_states
from .onnx_file import load_onnx, save_atomic
from .opsets import versions
from .opsets.canonical import FileFinding, check_canonical
from .opsets.passes import run_passes
from .opsets.passes.weights import FoldFloatConvWeights
from .opsets.qparams import QuantParams
from .runtime.layers import LayerStats as LayerStats
from .runtime.ort import FusionReport, fusion_report
from .targets import Target
from .verify.core import random_inputs as random_inputs  # the public verbs and their reports, here
from .verify.core import verify as verify
from .verify.report import InputCoverage as InputCoverage
from .verify.report import VerifyReport as VerifyReport


@dataclass
class ConvertResult:
    output: Path | None
    framework: str
    opset: int
    pass_counts: dict[str, int]
    remarks: list[str] = field(default_factory=list)
    _model: onnx.ModelProto | None = field(default=None, repr=False)
    # A target's form keeps no canonical model in memory: it is converted again, once, if asked for.
    _make_canonical: Callable[[], onnx.ModelProto] | None = field(default=None, repr=False)
    _canonical: onnx.ModelProto | None = field(default=None, repr=False)

    @property
    def canonical(self) -> onnx.ModelProto | None:
        """The canonical model beside a target's form (--target, --speed); None without a target."""
        if self._canonical is None and self._make_canonical is not None:
            self._canonical = self._make_canonical()
        return self._canonical

    @property
    def model(self) -> onnx.ModelProto:
        """The converted model. A conversion written to a file keeps no copy in memory: it is read
        back from the output on first use (weights past 2 GiB stay in their `.data` file)."""
        if self._model is None:
            if self.output is None:
                raise InternalError("internal error, a conversion without an output kept no model")
            self._model = onnx.load(str(self.output), load_external_data=False)
        return self._model


def convert(
    model: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str] | None = None,
    *,
    opset: int | None = None,
    framework: str | None = None,
    target: str | None = None,
    symmetric: bool = False,
    speed: bool = False,
    calibration: str | os.PathLike[str] | None = None,
    **options: Any,
) -> ConvertResult:
    """Convert a quantized model (file, directory or path prefix) to canonical QDQ ONNX.

    options are the framework's own (naming another framework's is an error):
    - Paddle, observers: quantize_linear pairs with only_observer=True are identity in Paddle;
      "skip" keeps Paddle's numbers, "quantize" uses their scales as real quantization points
      (what int8 backends do: more integer kernels, outputs may differ from Paddle by a few LSB);
    - TFLite, nchw_io: 4-D inputs and outputs are NCHW instead of the source's NHWC.

    target="tensorrt": TensorRT's form (signed int8, zero point 0, float biases). The exact changes
    are made; a model that also needs lossy ones (asymmetric activations, weight codes of -128) is
    refused with the list unless symmetric=True, which re-quantizes them with their range kept.

    speed=True: ORT CPU's speed form (targets/ort_speed.py): non-negative symmetric activations
    stored as uint8 (differs only where the source saturates at 127 steps, which verify counts) and,
    with calibration (an .npz of input feeds in the ONNX model's layout), a calibrated Q on the
    outputs the source leaves in float, so that ORT fuses every quantized op.

    The output file is written atomically: on any error no file is left behind.
    Raises QonvertError on bad input (unsupported ops are all listed at once).
    """
    from .converters import build, load_source
    from .converters.source import drop_pages, mapped_files, page_releaser

    if opset is not None and not versions.MIN_OPSET <= opset <= versions.MAX_OPSET:
        raise InputError(f"opset {opset}: supported opsets are {versions.MIN_OPSET}..{versions.MAX_OPSET}")
    chosen, target_options = _target(target, speed, symmetric=symmetric, calibration=calibration)
    source = load_source(model, framework, **options)
    where, fw = str(source.path), source.framework
    conv = build(source, opset)
    built, opset_used, counts, remarks = conv.model, conv.opset, conv.pass_counts, conv.remarks
    if chosen is None:  # a target derives its form from the int8 weights (the speed form folds its own float convs')
        counts = {**counts, **run_passes(built, [FoldFloatConvWeights(), common.RemoveUnusedNodesPass()])}
    # Nothing below needs the source graph: its weights (views of the mapped file, or arrays the
    # graph replaced) go with it, and the IR model goes once serialised, so the peak stays low.
    mapped = mapped_files(source.constants.values())
    drop_pages(mapped)
    del source, conv
    problems = check_canonical(built)
    from_file = [p for p in problems if isinstance(p, FileFinding)]  # the file's, kept as given
    if from_file:
        takes = "constant symmetric weights, per tensor or per output channel, one scale a channel"
        raise InputError(f"{where}: {from_file[0]}: the canonical form takes {takes}")
    if problems:
        raise InternalError(f"{where}: internal error, output breaks the QDQ contract: {problems[0]} (+{len(problems) - 1} more)")
    out_path = Path(output) if output is not None else None

    def done(proto: onnx.ModelProto | None, canonical: Callable[[], onnx.ModelProto] | None = None) -> ConvertResult:
        return ConvertResult(out_path, fw, opset_used, counts, remarks, proto, canonical)

    try:  # the full checker, on the graph with its large weights' bytes left out (their types and
        # shapes stay): neither a copy of the weights nor a parse of them
        _c_api_utils.call_onnx_api(lambda proto: onnx.checker.check_model(proto, full_check=True), built)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise _checker_error(where, built, exc) from None

    if chosen is None and out_path is not None:
        # Streamed from the IR: no protobuf copy of the model is built (ConvertResult.model reads
        # the file back if asked); past 2 GiB its weights go to `<name>.data`.
        save_atomic(built, out_path, release=page_releaser(mapped))
        return done(None)
    if out_path is None and onnx_file.initializer_bytes(built) >= onnx_file.EXTERNAL_DATA_BYTES:
        raise InputError(f"{where}: a model over 2 GiB is written with external data: give an output path")
    if chosen is None:
        proto = ir.to_proto(built)
        drop_pages(mapped)  # serialising read the int8 weights' pages again
        return done(proto)
    remarks += chosen.derive(built, where, **target_options)  # in place, by the target's passes
    try:  # the canonical model passed already: a derived form that fails is a qonvert bug
        _c_api_utils.call_onnx_api(lambda proto: onnx.checker.check_model(proto, full_check=True), built)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InternalError(f"{where}: internal error, {chosen.form} fails onnx.checker: {exc}") from None

    def canonical() -> onnx.ModelProto:
        return convert(model, opset=opset, framework=framework, **options).model

    if out_path is None:
        return done(ir.to_proto(built), canonical)
    save_atomic(built, out_path, release=page_releaser(mapped))  # streamed, as the canonical form is
    return done(None, canonical)


def _checker_error(where: str, model: ir.Model, exc: Exception) -> QonvertError:
    """A type or shape contradiction at a node mapped from a source op is the file's: its declared
    tensor types or shapes disagree with the op (a corrupt or hand-edited file; every mapper passes
    the checker on the fixtures). Anything else the checker finds is a qonvert bug."""
    text = str(exc)
    match = re.search(r"node name: ([^)]+)\): (?:\[ShapeInferenceError\] )?(.*)", text)
    if match:
        node = next((n for n in model.graph if n.name == match.group(1)), None)
        source_op = node.metadata_props.get(SOURCE_OP) if node is not None else None
        if source_op:
            return InputError(f"{where}: op {source_op}: the file's tensor types or shapes do not fit the op ({match.group(2)[:200]})")
        if node is not None and "existing shape differ" in match.group(2):  # a declared shape, read from the file
            tensor = node.outputs[0].name if node.outputs else "?"
            return InputError(f"{where}: tensor {tensor!r}: the file declares a shape that its ops do not compute ({match.group(2)[:200]})")
    return InternalError(f"{where}: internal error, the converted model fails onnx.checker: {text[:500]}")


def _target(name: str | None, speed: bool, **options: Any) -> tuple[Target | None, dict[str, Any]]:
    """The target asked for (speed=True: ort-speed) and the options it takes; an option given
    for a target that does not take it is an error naming the target that does."""
    if speed and name not in (None, "ort-speed"):
        raise InputError(f"speed form and target {name!r}: choose one (the speed form is ORT CPU's)")
    wanted = "ort-speed" if speed else name
    chosen = targets.target(wanted) if wanted is not None else None
    for option, value in options.items():
        if value and (chosen is None or option not in chosen.options):
            owner = next(t.name for t in targets.all_targets() if option in t.options)
            given = f"target {chosen.name!r}" if chosen else "the canonical form"
            raise InputError(f"{option} is an option of target {owner!r} (--target {owner}), not of {given}")
    return chosen, {k: v for k, v in options.items() if chosen is not None and k in chosen.options}


def derivation_costs(
    source: str | os.PathLike[str] | Any,
    result: ConvertResult,
    target: str,
    target_options: dict[str, Any],
    derived_report: VerifyReport | None = None,
    **verify_options: Any,
) -> list[str]:
    """What each stage of a target's derivation costs, against the source: the canonical model
    and each stage verified on the same inputs (`derived_report`: the derived model's, if already
    made), in the canonical model's output steps."""
    canonical = result.canonical
    stages = targets.target(target).stages(canonical, result.model, **target_options) if canonical is not None else []
    if canonical is None or not stages:
        return []
    reports = [verify(source, canonical, fusion=False, **verify_options)]
    for k, (_, model) in enumerate(stages):
        reused = derived_report if k == len(stages) - 1 else None
        reports.append(reused or verify(source, model, fusion=False, **verify_options))
    return [_cost(what, before, after) for (what, _), before, after in zip(stages, reports[:-1], reports[1:], strict=True)]


def _cost(what: str, before: VerifyReport, after: VerifyReport) -> str:
    """Both against the source, in `before`'s output steps (a re-derived model's may be coarser)."""
    parts = []
    for a, b in zip(before.outputs, after.outputs, strict=True):
        exact = f", exact {a.pct_exact:.1f}% -> {b.pct_exact:.1f}%" if a.lsb == b.lsb else ""
        parts.append(f"{a.name}: max {a.max_diff_lsb:.3g} -> {b.max_abs_diff / a.lsb:.3g} LSB{exact}, top-1 {a.top1_agreement} -> {b.top1_agreement}")
    return f"cost of {what} (against the source, canonical LSB): " + "; ".join(parts)


def initial_state(model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, np.ndarray]:
    """A converted streaming model's state before its first step, by state input name ({} for a
    stateless model). Feed these with the first step, then each step's `<name>_out` outputs."""
    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(Path(model))
    return {s.input: s.initial for s in read_states(proto)}


def source_options(conversion_options: dict[str, Any]) -> dict[str, Any]:
    """The conversion options that running the source depends on, for `verify`: all the frontend's
    but `input_shapes` (verify's own keyword: the feeds set a TorchScript run's shapes) and `opset`."""
    return {k: v for k, v in conversion_options.items() if k not in ("opset", "input_shapes")}


@dataclass
class QuantizedTensor:
    name: str
    dtype: str
    scale: str
    zero_point: str
    axis: int | None


@dataclass
class InspectReport:
    kind: str  # "onnx" or the source framework
    quantized: list[QuantizedTensor]
    ops: dict[str, tuple[int, bool]]  # op type -> (count, supported)
    fusion: FusionReport | None = None
    target_findings: list[str] | None = None  # what the target asked for would change or reject


def inspect(model: str | os.PathLike[str], target: str | None = None) -> InspectReport:
    """Quantized tensors (scale, zero point, axis, dtype), op support, and ORT fusion of ONNX files;
    with `target`, what that target would change, reject or run outside int8 (ONNX files)."""
    path = Path(model)
    if target is not None and path.suffix != ".onnx":
        raise InputError(f"{model}: --target checks a converted .onnx model")
    if path.suffix == ".onnx":
        proto = load_onnx(path)
        graph = ir.from_proto(proto).graph
        from .opsets.graph_edit import qparams_of

        tensors = []
        for node in graph:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                qp = qparams_of(node)
                if qp is not None:
                    name = node.inputs[0].name if node.inputs[0] is not None else "?"
                    tensors.append(_quantized(name or "?", qp))
        ops: dict[str, tuple[int, bool]] = {}
        for node in graph:
            ops[node.op_type] = (ops.get(node.op_type, (0, True))[0] + 1, True)
        found = targets.target(target).findings(proto) if target is not None else None
        return InspectReport("onnx", tensors, ops, fusion_report(proto), found)
    from .converters import load_source, qparams
    from .converters.registry import lookup

    source = load_source(path)
    counts: dict[str, tuple[int, bool]] = {}
    for op in source.ops:
        n, _ = counts.get(op.type, (0, True))
        counts[op.type] = (n + 1, lookup(source.framework, op.type) is not None)
    tensors = [_quantized(name, qp) for name, qp in qparams(source).items()]
    return InspectReport(source.framework, tensors, counts)


def _quantized(name: str, qp: QuantParams) -> QuantizedTensor:
    return QuantizedTensor(name, qp.dtype, _fmt(qp.scale), _fmt(qp.zero_point), qp.axis)


def _fmt(arr: np.ndarray) -> str:
    a = np.asarray(arr).ravel()
    if a.size == 1:
        return f"{a[0]:.6g}"
    return f"[{a.size}] {a.min():.4g}..{a.max():.4g}"
