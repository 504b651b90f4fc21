"""verify: the ONNX model on ORT against the source model on its own runtime (or a recorded .npz
reference) on the same inputs, compared in LSB units of each output's quantization; per layer, each
quantized tensor from the reference's own inputs (runtime/layers.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import InputError
from ..metadata import SOURCE_FRAMEWORK, TARGET, StateVariable, metadata, read_states
from ..onnx_file import load_onnx
from ..runtime import refio
from ..runtime.compare import OutputStats, compare, output_lsb
from ..runtime.layers import compare_layers, outputs_from_reference
from ..runtime.ort import fusion_report, run_steps, session
from .report import BARS, InputCoverage, KernelSpread, VerifyReport
from .sampling import check_feeds, input_levels, input_specs, quantize_float_feeds, sample_inputs

EXACT_TARGET, EXACT_KERNELS = "litert-exact", "reference"  # the form and the kernel set it reproduces (targets/litert_exact)


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
    bar: str | None = None,
    reference_kernels: str | None = None,
    output_kinds: dict[str, str] | None = None,
    **options: Any,
) -> VerifyReport:
    """Run the ONNX model on ORT and the source model on its own runtime (or a recorded .npz
    reference) on the same inputs; compare outputs in LSB units of each output's quantization.
    input_shapes: shapes for inputs with dynamic dimensions (default: batch 1, others 64).
    per_layer: also compare every quantized tensor, each computed from the reference's own values
    of its inputs (LiteRT, PyTorch and Paddle ProgramDesc give them), to tell which op makes a difference.
    options: the framework's own options the model was converted with, where running the source
    depends on them (PyTorch: engine, trust_pickle, example_inputs).
    bar: "end-to-end" (every output within tolerance_lsb, same top-1), "per-layer" (every op
    within 1 step of the source on the source's inputs; runs per_layer), "spread" (end to end, or
    every output within the source's own kernel spread and every op within 1 step; runs
    per_layer) or "exact" (every output and every tensor equal; runs per_layer) sets
    `equivalent`. Default: exact for a model in the litert-exact form, else end-to-end.
    reference_kernels: the source runtime's kernel set the comparison runs against (LiteRT:
    xnnpack, builtin, reference; default the first, and the reference kernels for a litert-exact
    model); the others run too, for the source's own spread (a recorded reference has none).
    output_kinds: what an output is, by name, where its shape does not say it safely (classifier,
    sequence, map or map@THRESHOLD, regression): its agreement is reported in those terms."""
    from ..converters import as_source, frontend

    proto = onnx_model if isinstance(onnx_model, onnx.ModelProto) else load_onnx(Path(onnx_model))
    exact_form = metadata(proto).get(TARGET) == EXACT_TARGET
    bar = bar or ("exact" if exact_form else "end-to-end")
    if bar not in BARS:
        raise InputError(f"--bar {bar!r}: expected one of {', '.join(BARS)}")
    per_layer = per_layer or bar in ("per-layer", "spread", "exact")
    src = as_source(source)
    chosen = frontend(src)
    framework_options = chosen.options(**options)  # the ones it was converted with (PyTorch: engine, ...)
    kernel_sets = chosen.kernel_sets(src, framework_options)
    kinds = dict(output_kinds or {})
    if reference_kernels is None and exact_form and EXACT_KERNELS in kernel_sets:
        reference_kernels = EXACT_KERNELS  # what the form reproduces
    kernels = _kernel_set(chosen.runtime, kernel_sets, reference_kernels)
    if per_layer:
        _check_intermediates(src)
    unknown = sorted(set(kinds) - {o.name for o in proto.graph.output})
    if unknown:
        raise InputError(f"--output-kind {unknown[0]!r}: the model's outputs are {', '.join(o.name for o in proto.graph.output)}")
    ref_outputs: list[list[np.ndarray]] = []
    feed_notes: list[str] = []
    float_parts: list[str] = []
    specs = input_specs(proto, input_shapes)
    if reference is not None:
        feeds, ref_outputs, _ = refio.load(Path(reference))
        if not ref_outputs:
            raise InputError(f"{reference}: holds no reference outputs")
        check_feeds(str(reference), specs, feeds)
    elif inputs is not None:
        feeds, _, _ = refio.load(Path(inputs))
        feeds, feed_notes = quantize_float_feeds(specs, feeds)
        check_feeds(str(inputs), specs, feeds)
    else:
        if samples < 1:
            raise InputError(f"samples: at least 1 random input to verify on, not {samples}")
        feeds = random_inputs(proto, samples, input_shapes=input_shapes)
    if not feeds:
        raise InputError(f"{reference or inputs}: holds no input samples")
    states = read_states(proto)
    lsbs = output_lsb(proto)  # (one IR parse of the model, for our outputs and the spread's)
    spread: list[KernelSpread] = []
    spread_notes: list[str] = []
    if not ref_outputs:
        extra = [s.source_output for s in states]
        if not kernel_sets:
            ref_outputs = chosen.run_reference(src, feeds, extra, framework_options)
        else:  # the one compared against first, then the others, for the source's own spread
            runs = chosen.run_kernel_sets(src, feeds, extra, framework_options, (kernels, *(k for k in kernel_sets if k != kernels)))
            first = runs.pop(kernels)
            if isinstance(first, InputError):
                raise first
            ref_outputs, others = first, {}
            for k, run in runs.items():
                if isinstance(run, InputError):  # a set without this model's ops (LiteRT's reference: DEPTH_TO_SPACE)
                    spread_notes.append(f"the source's {k} kernels cannot run it, so its spread leaves them out ({run})")
                else:
                    others[k] = run
            spread = _spread(proto, lsbs, {kernels: ref_outputs, **others}, kinds) if others else []
    if save_reference is not None:
        refio.save(Path(save_reference), feeds, ref_outputs, [o.name for o in proto.graph.output])
    sess = session(proto, device)
    ours = run_steps(sess, feeds, states)  # a streaming model carries its own state, step to step
    stats = []
    if any(len(r) != len(proto.graph.output) for r in ref_outputs):
        raise InputError(f"{reference or source}: the reference has {len(ref_outputs[0])} outputs, the ONNX model {len(proto.graph.output)}")
    for j, out in enumerate(proto.graph.output):
        lsb = lsbs[out.name]
        kind = kinds.get(out.name)
        stats.append(compare(out.name, [o[j] for o in ours], [r[j] for r in ref_outputs], lsb or 1.0, quantized=lsb is not None, kind=kind))
    report = fusion_report(proto) if fusion and device == "cpu" else None
    layers = None
    if per_layer:  # each step from the reference's own state, as every op from its own inputs
        layer_feeds = _with_reference_state(proto, feeds, ref_outputs, states)
        intermediates = chosen.run_intermediates(src, feeds, framework_options, kernels or None)
        layers = compare_layers(proto, layer_feeds, intermediates, device, required=bar != "exact")  # exact: the outputs may be all
        named = [{out.name: r[j] for j, out in enumerate(proto.graph.output)} for r in ref_outputs]  # the outputs, by name
        floats = outputs_from_reference(proto, layer_feeds, [i | n for i, n in zip(intermediates, named, strict=True)], device)
        float_parts = [f"{name} {diff:.3g}" for name, diff in floats.items()]
    coverage = [InputCoverage(spec.name, *levels) for spec in specs if (levels := input_levels(spec, [f[spec.name] for f in feeds]))]
    source_notes = [] if reference is not None else chosen.reference_remarks(src, framework_options)
    remarks = feed_notes + spread_notes + source_notes + _warnings(stats, coverage)
    if float_parts:
        remarks.append(f"with every quantized tensor set to the reference's own, the float outputs differ by: {', '.join(float_parts)}")
    remarks[:0] = _target_remarks(proto, feeds, states)
    if states:
        remarks.insert(0, f"{len(feeds)} streaming steps, state carried on both sides: {', '.join(s.variable for s in states)}")
    meta = metadata(proto)
    return VerifyReport(
        stats,
        len(feeds),
        device,
        tolerance_lsb,
        report,
        layers=layers,
        inputs=coverage,
        remarks=remarks,
        bar=bar,
        framework=meta.get(SOURCE_FRAMEWORK, chosen.name),
        opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0),
        model=os.fspath(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__,
        runtime=chosen.runtime if reference is None else f"a recorded reference ({reference})",
        kernels=kernels if reference is None else "",
        source_spread=spread,
    )


def _kernel_set(runtime: str, sets: tuple[str, ...], asked: str | None) -> str:
    """The kernel set the comparison runs against: the one asked for, else the runtime's first."""
    if asked is None:
        return sets[0] if sets else ""
    if asked not in sets:
        raise InputError(f"--reference-kernels {asked!r}: {runtime} has these kernel sets for this model: {', '.join(sets) or 'only its one'}")
    return asked


def _spread(
    proto: onnx.ModelProto, lsbs: dict[str, float | None], runs: dict[str, list[list[np.ndarray]]], kinds: dict[str, str]
) -> list[KernelSpread]:
    """Each pair of kernel sets against each other, output by output; the worst output's figures."""
    names = list(runs)
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            stats = []
            for j, out in enumerate(proto.graph.output):
                lsb, theirs, base = lsbs[out.name], [o[j] for o in runs[second]], [r[j] for r in runs[first]]
                stats.append(compare(out.name, theirs, base, lsb or 1.0, quantized=lsb is not None, kind=kinds.get(out.name)))
            agreeing = min((s for s in stats if s.agreement is not None), key=lambda s: s.agreement or 0.0, default=None)
            max_lsb, exact = max(s.max_diff_lsb for s in stats), min(s.pct_exact for s in stats)
            terms = "" if agreeing is None else agreeing.agreement_terms
            pairs.append(KernelSpread(first, second, max_lsb, exact, None if agreeing is None else agreeing.agreement, terms))
    return pairs


def _with_reference_state(proto: onnx.ModelProto, feeds: refio.Samples, ref: list[list[np.ndarray]], states: list[StateVariable]) -> refio.Samples:
    """Each step's feed with the state the reference held before it."""
    names = [o.name for o in proto.graph.output]
    full = []
    for k, feed in enumerate(feeds):
        state = {s.input: s.initial if k == 0 else ref[k - 1][names.index(s.output)] for s in states}
        full.append({**feed, **state})
    return full


def _target_remarks(proto: onnx.ModelProto, feeds: refio.Samples, states: list[StateVariable]) -> list[str]:
    """What the targets say of a model in their form on these inputs (the speed form: its
    uint8-stored activations past 127 steps); none for a canonical model."""
    from ..targets import all_targets

    state = {s.input: s.initial for s in states}
    remarks = [t.verify_remark(proto, [state | feed for feed in feeds]) for t in all_targets()]
    return [r for r in remarks if r]


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
    from ..converters import FRONTENDS, frontend

    chosen = frontend(source)
    if not chosen.intermediates:
        able = ", ".join(f.runtime for f in FRONTENDS.values() if f.intermediates)
        raise InputError(f"{source}: --per-layer needs the reference runtime's intermediate tensors; only {able} gives them")
