"""The calibration run's value ranges (targets/ort_calibration.py), measured on ONNX Runtime one
segment of the model at a time.

One session of the whole model held every float weight that it dequantizes at run time (float convs
with int8 weights) and the probed intermediates at once: ORT's scheduler runs the nodes of fused
kernels after the float ones that are ready, so those weights were all alive at the start of a run
(Paddle's PTQ ResNet-50: +55 MB during the run, on a 26 MB model). Here the model is cut, in graph
order, into segments of about SEGMENT_BYTES of weights; each segment gets its own session, runs
every calibration feed, and is closed before the next. The values a later segment reads are written
to the temporary folder (numpy files, read back mapped), and the samples come mapped from their
.npz (refio.load(mapped=True)), their pages dropped after each run: neither the segments'
intermediates nor the samples are held in memory together.

Each probed value's ReduceMin and ReduceMax follow its producer, so a segment measures what it
computes. A cut crosses only tensors the model declares (their type in the file), none that ORT
fuses across (_cuts); a model with subgraphs, or not in topological order, runs as one segment."""

from __future__ import annotations

import ctypes
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from ..onnx_file import external_length
from ..runtime import refio

SEGMENT_BYTES = 2 << 20  # weight bytes a segment holds, at least (the last one may hold fewer)
MAX_SEGMENTS = 64  # a larger model's segments are larger (each is a session to make)


@dataclass
class _Segment:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # values computed by earlier segments, or graph inputs
    outputs: list[str] = field(default_factory=list)  # probes, and values later segments read


def value_ranges(model: ir.Model, names: list[str], feeds: refio.Samples) -> dict[str, tuple[float, float]]:
    """Each named float value's (min, max) over the feeds."""
    from ..converters.source import drop_pages, mapped_files
    from ..onnx_file import save_external

    if not names:
        return {}
    low = {name: np.inf for name in names}
    high = {name: -np.inf for name in names}
    with tempfile.TemporaryDirectory(prefix="qonvert-calibration-") as folder:
        probe_path = Path(folder) / "probe.onnx"
        probes = _add_probes(model, names)
        outputs = list(model.graph.outputs)
        model.graph.outputs[:] = [node.outputs[0] for node in probes]
        try:
            save_external(model, probe_path)  # its weights in one file, mapped by each segment's session
        finally:  # the model as it was
            model.graph.outputs[:] = outputs
            model.graph.remove(probes, safe=True)
        drop_pages(mapped_files(_initializer_arrays(model)))  # writing read the source file's weight pages
        probe = onnx.load(str(probe_path), load_external_data=False)
        for output, array in _run_segments(probe, probe_path.parent, feeds):
            k = int(output.rsplit("_", 1)[1])
            if output.startswith("qonvert_calibration_ReduceMin"):
                low[names[k]] = min(low[names[k]], float(array))
            else:
                high[names[k]] = max(high[names[k]], float(array))
    return {name: (float(low[name]), float(high[name])) for name in names}


def _add_probes(model: ir.Model, names: list[str]) -> list[ir.Node]:
    """A ReduceMin and a ReduceMax of each named value, right after its producer (graph inputs'
    first), as the segment cuts need."""
    graph = model.graph
    producers = {str(v.name): node for node in graph for v in node.outputs}
    graph_inputs = {str(v.name): v for v in graph.inputs}
    added = []
    for k, name in enumerate(names):
        value = graph_inputs[name] if name in graph_inputs else next(v for v in producers[name].outputs if v.name == name)
        nodes = []
        for op in ("ReduceMin", "ReduceMax"):
            node = ir.node(op, [value], {"keepdims": 0}, name=f"qonvert_calibration_{op}_{k}")
            node.outputs[0].name, node.outputs[0].dtype, node.outputs[0].shape = node.name, ir.DataType.FLOAT, ir.Shape([])
            nodes.append(node)
        if name in graph_inputs:
            graph.insert_before(graph[0], nodes)
        else:
            graph.insert_after(producers[name], nodes)
        added += nodes
    return added


def _initializer_arrays(model: ir.Model) -> list[np.ndarray]:
    """The weights held as arrays (views of a mapped source file among them); lazy ones not computed."""
    tensors = [v.const_value for v in model.graph.initializers.values()]
    return [t.raw for t in tensors if isinstance(t, ir.Tensor) and isinstance(t.raw, np.ndarray)]


def _segments(graph: onnx.GraphProto) -> list[_Segment]:
    """The graph's nodes cut in order into segments of about SEGMENT_BYTES of weights each."""
    nodes = list(graph.node)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for node in nodes for a in node.attribute):
        return [_Segment(nodes, sorted(v.name for v in graph.input), [v.name for v in graph.output])]
    nodes = _needed(nodes, {v.name for v in graph.output})
    weights = {t.name: external_length(t) if t.external_data else len(t.raw_data) for t in graph.initializer}
    inputs = {v.name for v in graph.input}
    declared = [*graph.value_info, *graph.input]  # (strings would not go through numpy's files)
    tensors = {v.name for v in declared if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type != onnx.TensorProto.STRING}
    produced_at: dict[str, int] = {}
    last_read: dict[str, int] = {}
    last_quantized: dict[str, int] = {}  # value -> the last node that is a Q of it
    for index, node in enumerate(nodes):
        if node.op_type == "QuantizeLinear":
            last_quantized[node.input[0]] = index
        for name in node.input:
            if name and name not in weights and name not in inputs and name not in produced_at:
                return [_Segment(nodes, sorted(inputs), [v.name for v in graph.output])]  # not in topological order
            last_read[name] = index
        produced_at.update({name: index for name in node.output if name})
    cuts = _cuts(nodes, weights, tensors, last_read, last_quantized)
    probes = {v.name for v in graph.output}
    segments = []
    for start, end in zip([0, *cuts], [*cuts, len(nodes)], strict=True):
        part = nodes[start:end]
        made = {name for node in part for name in node.output if name}
        read = {name for node in part for name in node.input if name and name not in weights}
        later = {v for v in made if last_read.get(v, -1) >= end}
        segments.append(_Segment(part, sorted(read - made), sorted((made & probes) | later)))
    return segments


def _cuts(
    nodes: list[onnx.NodeProto], weights: dict[str, int], tensors: set[str], last_read: dict[str, int], last_quantized: dict[str, int]
) -> list[int]:
    """Where segments start: once a segment holds SEGMENT_BYTES of weights, at the next node
    boundary that crosses declared tensors only, and none that ORT fuses across: a DQ's output (a
    weight's would be spilled in float) or the input of a Q (the quantized op before it would run
    in float)."""
    least = max(SEGMENT_BYTES, sum(weights.values()) // MAX_SEGMENTS)
    cuts, held, seen = [], 0, set()
    live: set[str] = set()  # values computed so far that a later node reads
    constant, fused = set(weights), set(weights)
    for index, node in enumerate(nodes[:-1]):
        held += sum(weights[name] for name in node.input if name in weights and name not in seen)
        seen.update(node.input)
        live.difference_update(name for name in node.input if last_read.get(name) == index)
        live.update(name for name in node.output if last_read.get(name, -1) > index)
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
        if node.op_type == "DequantizeLinear" or constant.issuperset(node.output):
            fused.update(node.output)
        if held >= least and live <= tensors and not any(v in fused or last_quantized.get(v, -1) > index for v in live):
            cuts.append(index + 1)
            held = 0
    return cuts


def _needed(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes the outputs depend on (the probes': the model's own outputs are not computed)."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def _segment_model(probe: onnx.ModelProto, segment: _Segment) -> onnx.ModelProto:
    """The segment as a model: its inputs as the probe declares them, its weights where the probe's are."""
    graph = probe.graph
    declared = {v.name: v for v in [*graph.value_info, *graph.input]}
    used = {name for node in segment.nodes for name in node.input}
    sub = onnx.helper.make_graph(
        segment.nodes,
        graph.name,
        [declared[name] for name in segment.inputs],
        [onnx.ValueInfoProto(name=name) for name in segment.outputs],  # ORT infers an output's type
        [t for t in graph.initializer if t.name in used],
    )
    out = onnx.helper.make_model(sub, opset_imports=probe.opset_import, ir_version=probe.ir_version)
    out.functions.extend(probe.functions)
    return out


def _trim_heap() -> None:
    """Give the heap's freed memory back to the system (glibc keeps it, fragmented, after a
    session): the next segment starts from what is live, not from the last one's high-water mark."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _run_segments(probe: onnx.ModelProto, folder: Path, feeds: refio.Samples) -> Iterator[tuple[str, np.ndarray]]:
    """Each segment run on every feed in turn: the probes' outputs, as (name, value). The values
    later segments read go through files, each removed once read for the last time."""
    from ..converters.source import drop_pages, mapped_files
    from ..runtime.ort import run, session

    graph_inputs = {v.name for v in probe.graph.input}
    probes = {v.name for v in probe.graph.output}
    feed_files = mapped_files(array for feed in feeds for array in feed.values())  # refio.load(mapped=True)
    segments = _segments(probe.graph)
    number: dict[str, int] = {}  # a value written for later segments -> its files' number
    for k, segment in enumerate(segments):
        path = folder / f"segment{k}.onnx"  # beside probe.onnx.data, which its weights name
        onnx.save(_segment_model(probe, segment), str(path))
        sess = session(str(path), "cpu", arena=False)
        names = [o.name for o in sess.get_outputs()]
        for sample, feed in enumerate(feeds):
            inputs = {
                name: feed[name] if name in graph_inputs else np.load(folder / f"{sample}-{number[name]}.npy", mmap_mode="r")
                for name in segment.inputs
            }
            outputs = run(sess, inputs)
            drop_pages(feed_files)  # the sample read
            for name, array in zip(names, outputs, strict=True):
                if name in probes:
                    yield name, array
                else:
                    number.setdefault(name, len(number))
                    np.save(folder / f"{sample}-{number[name]}.npy", array)
        del sess
        _trim_heap()
        read_later = {name for later in segments[k + 1 :] for name in later.inputs}
        for name in [n for n in segment.inputs if n in number and n not in read_later]:
            for sample in range(len(feeds)):
                (folder / f"{sample}-{number[name]}.npy").unlink()
