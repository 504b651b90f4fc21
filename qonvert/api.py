"""The public verbs: convert, verify, inspect."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from .converters import as_source
from .errors import QonvertError
from .metadata import StateVariable, read_states
from .opsets.canonical import check_canonical
from .opsets.qparams import QuantParams
from .runtime import refio
from .runtime.compare import OutputStats, compare, output_lsb
from .runtime.layers import LayerStats, compare_layers
from .runtime.ort import FusionReport, fusion_report, run_steps, session
from .verify.sampling import check_feeds, input_levels, input_specs, sample_inputs

_EXTERNAL_DATA_BYTES = 1 << 31  # protobuf's 2 GiB limit


@dataclass
class ConvertResult:
    model: onnx.ModelProto
    output: Path | None
    framework: str
    opset: int
    pass_counts: dict[str, int]
    remarks: list[str] = field(default_factory=list)


def convert(
    model: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str] | None = None,
    *,
    opset: int | None = None,
    framework: str | None = None,
    **options: Any,
) -> ConvertResult:
    """Convert a quantized model (file, directory or path prefix) to canonical QDQ ONNX.

    options are the framework's own (naming another framework's is an error):
    - Paddle, observers: quantize_linear pairs with only_observer=True are identity in Paddle;
      "skip" keeps Paddle's numbers, "quantize" uses their scales as real quantization points
      (what int8 backends do: more integer kernels, outputs may differ from Paddle by a few LSB);
    - TFLite, nchw_io: 4-D inputs and outputs are NCHW instead of the source's NHWC.

    The output file is written atomically: on any error no file is left behind.
    Raises QonvertError on bad input (unsupported ops are all listed at once).
    """
    from .converters import build, load_source

    if opset is not None and not 13 <= opset <= 24:
        raise QonvertError(f"opset {opset}: supported opsets are 13..24")
    source = load_source(model, framework, **options)
    conv = build(source, opset)
    problems = check_canonical(conv.model)
    if problems:
        raise QonvertError(f"{source.path}: internal error, output breaks the QDQ contract: {problems[0]} (+{len(problems) - 1} more)")
    proto = ir.to_proto(conv.model)
    # Serialise once: the checker reads these bytes and they are what gets written.
    data = proto.SerializeToString() if proto.ByteSize() < _EXTERNAL_DATA_BYTES - (1 << 24) else None
    try:
        onnx.checker.check_model(data if data is not None else proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise QonvertError(f"{source.path}: internal error, the converted model fails onnx.checker: {exc}") from None
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        save_atomic(conv.model, data, out_path)
    return ConvertResult(proto, out_path, source.framework, conv.opset, conv.pass_counts, conv.remarks)


def initial_state(model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, np.ndarray]:
    """A converted streaming model's state before its first step, by state input name ({} for a
    stateless model). Feed these with the first step, then each step's `<name>_out` outputs."""
    proto = model if isinstance(model, onnx.ModelProto) else _load_onnx(Path(model))
    return {s.input: s.initial for s in read_states(proto)}


def save_atomic(model: ir.Model, data: bytes | None, path: Path) -> None:
    """Write `data` (the serialised model), or the model with external data when it is None
    (over protobuf's 2 GiB), through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if data is None:
            ir.save(model, tmp, external_data=path.name + ".data")
        else:
            Path(tmp).write_bytes(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class InputCoverage:
    name: str
    reached: int  # quantization levels (codes) the samples reach
    levels: int  # levels the input's quantization has


@dataclass
class VerifyReport:
    outputs: list[OutputStats]
    samples: int
    device: str
    tolerance_lsb: float
    fusion: FusionReport | None = None
    remarks: list[str] = field(default_factory=list)
    layers: list[LayerStats] | None = None  # verify(per_layer=True)
    inputs: list[InputCoverage] = field(default_factory=list)  # integer or quantized inputs

    @property
    def equivalent(self) -> bool:
        ok = all(o.max_diff_lsb <= self.tolerance_lsb + 1e-3 for o in self.outputs)
        return ok and all(o.top1_agreement in (None, 1.0) for o in self.outputs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "equivalent": self.equivalent,
            "samples": self.samples,
            "device": self.device,
            "tolerance_lsb": self.tolerance_lsb,
            "inputs": [asdict(i) for i in self.inputs],
            "outputs": [o.as_dict() for o in self.outputs],
            "fusion": None
            if self.fusion is None
            else {
                "integer_kernels": self.fusion.integer,
                "float_ops": self.fusion.float_ops,
                "quantized_ops": self.fusion.quantized_in_source,
                "coverage": self.fusion.coverage,
            },
            "remarks": self.remarks,
            "layers": None if self.layers is None else [layer.as_dict() for layer in self.layers],
        }


def random_inputs(model: onnx.ModelProto, samples: int, seed: int = 0, input_shapes: dict[str, list[int]] | None = None) -> refio.Samples:
    """verify's default inputs: each input over its whole quantization range (verify.sampling)."""
    return sample_inputs(model, samples, seed, input_shapes)


def verify(
    source: str | os.PathLike[str] | Any,
    onnx_model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    device: str = "cpu",
    samples: int = 20,
    inputs: str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | None = None,
    save_reference: str | os.PathLike[str] | None = None,
    tolerance_lsb: float = 1.0,
    fusion: bool = True,
    per_layer: bool = False,
    input_shapes: dict[str, list[int]] | None = None,
    **options: Any,
) -> VerifyReport:
    """Run the ONNX model on ORT and the source model on its own runtime (or a recorded .npz
    reference) on the same inputs; compare outputs in LSB units of each output's quantization.
    input_shapes: shapes for inputs with dynamic dimensions (default: batch 1, others 64).
    per_layer: also compare every quantized tensor, each computed from the reference's own values
    of its inputs (LiteRT and PyTorch give them), to tell which op makes a difference.
    options: the framework's own options the model was converted with, where running the source
    depends on them (PyTorch: engine, trust_pickle, example_inputs)."""
    from .converters import frontend

    src = as_source(source)
    chosen = frontend(src)
    framework_options = chosen.options(**options)  # the ones it was converted with (PyTorch: engine, ...)
    if per_layer:
        _check_intermediates(src)
    proto = onnx_model if isinstance(onnx_model, onnx.ModelProto) else _load_onnx(Path(onnx_model))
    ref_outputs: list[list[np.ndarray]] = []
    specs = input_specs(proto, input_shapes)
    if reference is not None:
        feeds, ref_outputs, _ = refio.load(Path(reference))
        if not ref_outputs:
            raise QonvertError(f"{reference}: holds no reference outputs")
        check_feeds(str(reference), specs, feeds)
    elif inputs is not None:
        feeds, _, _ = refio.load(Path(inputs))
        check_feeds(str(inputs), specs, feeds)
    else:
        feeds = random_inputs(proto, samples, input_shapes=input_shapes)
    if not feeds:
        raise QonvertError(f"{reference or inputs}: holds no input samples")
    states = read_states(proto)
    if not ref_outputs:
        ref_outputs = chosen.run_reference(src, feeds, [s.source_output for s in states], framework_options)
    if save_reference is not None:
        refio.save(Path(save_reference), feeds, ref_outputs, [o.name for o in proto.graph.output])
    sess = session(proto, device)
    ours = run_steps(sess, feeds, states)  # a streaming model carries its own state, step to step
    lsbs = output_lsb(proto)
    stats = []
    if any(len(r) != len(proto.graph.output) for r in ref_outputs):
        raise QonvertError(f"{reference or source}: the reference has {len(ref_outputs[0])} outputs, the ONNX model {len(proto.graph.output)}")
    for j, out in enumerate(proto.graph.output):
        lsb = lsbs[out.name]
        stats.append(compare(out.name, [o[j] for o in ours], [r[j] for r in ref_outputs], lsb or 1.0, quantized=lsb is not None))
    report = fusion_report(proto) if fusion and device == "cpu" else None
    layers = None
    if per_layer:  # each step from the reference's own state, as every op from its own inputs
        layer_feeds = _with_reference_state(proto, feeds, ref_outputs, states)
        layers = compare_layers(proto, layer_feeds, chosen.run_intermediates(src, feeds, framework_options), device)
    coverage = [InputCoverage(spec.name, *levels) for spec in specs if (levels := input_levels(spec, [f[spec.name] for f in feeds]))]
    remarks = ([] if reference is not None else chosen.reference_remarks(src, framework_options)) + _warnings(stats, coverage)
    if states:
        remarks.insert(0, f"{len(feeds)} streaming steps, state carried on both sides: {', '.join(s.variable for s in states)}")
    return VerifyReport(stats, len(feeds), device, tolerance_lsb, report, layers=layers, inputs=coverage, remarks=remarks)


def _with_reference_state(proto: onnx.ModelProto, feeds: refio.Samples, ref: list[list[np.ndarray]], states: list[StateVariable]) -> refio.Samples:
    """Each step's feed with the state the reference held before it."""
    names = [o.name for o in proto.graph.output]
    full = []
    for k, feed in enumerate(feeds):
        state = {s.input: s.initial if k == 0 else ref[k - 1][names.index(s.output)] for s in states}
        full.append({**feed, **state})
    return full


def source_options(conversion_options: dict[str, Any]) -> dict[str, Any]:
    """The conversion options that running the source depends on, for `verify`: all the frontend's
    but `input_shapes` (verify's own keyword: the feeds set a TorchScript run's shapes) and `opset`."""
    return {k: v for k, v in conversion_options.items() if k not in ("opset", "input_shapes")}


MIN_OUTPUT_LEVELS = 8  # a reference spanning fewer quantization levels proves little


def _warnings(outputs: list[OutputStats], inputs: list[InputCoverage]) -> list[str]:
    notes = []
    for o in outputs:
        if o.levels <= 1:
            notes.append(f"output {o.name!r}: the reference is constant on these inputs: the comparison proves nothing")
        elif o.levels < MIN_OUTPUT_LEVELS:
            notes.append(f"output {o.name!r}: the reference spans only {o.levels} quantization levels: the comparison means little")
    for i in inputs:
        if i.reached * 4 < i.levels:
            notes.append(f"input {i.name!r}: the samples reach only {i.reached} of its {i.levels} quantization levels")
    return notes


def _check_intermediates(source: Any) -> None:
    from .converters import FRONTENDS, frontend

    chosen = frontend(source)
    if not chosen.intermediates:
        able = ", ".join(f.runtime for f in FRONTENDS.values() if f.intermediates)
        raise QonvertError(f"{source}: --per-layer needs the reference runtime's intermediate tensors; only {able} gives them")


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise QonvertError(f"{path}: not a readable ONNX model ({exc})") from None


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


def inspect(model: str | os.PathLike[str]) -> InspectReport:
    """Quantized tensors (scale, zero point, axis, dtype), op support, and ORT fusion of ONNX files."""
    path = Path(model)
    if path.suffix == ".onnx":
        proto = _load_onnx(path)
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
        return InspectReport("onnx", tensors, ops, fusion_report(proto))
    from .converters import load_source, quant_params
    from .converters.registry import lookup

    source = load_source(path)
    counts: dict[str, tuple[int, bool]] = {}
    for op in source.ops:
        n, _ = counts.get(op.type, (0, True))
        counts[op.type] = (n + 1, lookup(source.framework, op.type) is not None)
    tensors = [_quantized(name, qp) for name, qp in quant_params(source).items()]
    return InspectReport(source.framework, tensors, counts)


def _quantized(name: str, qp: QuantParams) -> QuantizedTensor:
    return QuantizedTensor(name, qp.dtype, _fmt(qp.scale), _fmt(qp.zero_point), qp.axis)


def _fmt(arr: np.ndarray) -> str:
    a = np.asarray(arr).ravel()
    if a.size == 1:
        return f"{a[0]:.6g}"
    return f"[{a.size}] {a.min():.4g}..{a.max():.4g}"
