"""Source readers + op mappers -> canonical ONNX (the one direction data flows)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx_ir as ir

from .. import __version__, metadata
from ..errors import InputError, InternalError, QonvertError, located
from ..opsets import versions
from ..opsets.builder import GraphBuilder
from ..opsets.passes import canonicalize
from ..opsets.qparams import QuantParams
from .context import NP_TO_IR, run_mappers
from .frontend import Frontend
from .paddle.frontend import PaddleFrontend
from .registry import required_opset
from .source import SourceGraph
from .tflite.frontend import TFLiteFrontend
from .torch.frontend import TorchFrontend

# The frontends, in the order detection asks them.
FRONTENDS: dict[str, Frontend] = {f.name: f for f in (TFLiteFrontend(), PaddleFrontend(), TorchFrontend())}


@dataclass
class Conversion:
    model: ir.Model
    source: SourceGraph
    opset: int
    name_map: dict[str, str]
    pass_counts: dict[str, int]
    remarks: list[str] = field(default_factory=list)


def frontend(path: Any, framework: str | None = None) -> Frontend:
    """The frontend named, or the first whose `detect` takes the path (or in-memory model)."""
    if framework is not None:
        if framework not in FRONTENDS:
            raise InputError(f"framework {framework!r} is not supported: {', '.join(FRONTENDS)}")
        return FRONTENDS[framework]
    for candidate in FRONTENDS.values():
        if candidate.detect(path):
            return candidate
    if not isinstance(path, Path):
        raise InputError(f"{type(path).__name__}: not a model qonvert can read (a path, or a PyTorch module)")
    if not path.exists():
        raise InputError(f"{path}: no such file or directory (nor a path prefix of a model)")
    raise InputError(f"{path}: cannot tell the framework (expected a .tflite file, a Paddle .json/.pdmodel program or a PyTorch .pt2)")


def as_source(model: Any) -> Any:
    """A path for str / PathLike, else the object itself (an in-memory PyTorch model)."""
    return Path(model) if isinstance(model, (str, os.PathLike)) else model


def load_source(path: Any, framework: str | None = None, **options: Any) -> SourceGraph:
    """Read a model into a SourceGraph; `options` are the frontend's own (PaddleOptions, ...)."""
    path = as_source(path)
    chosen = frontend(path, framework)
    return chosen.load(path, chosen.options(**options))


def qparams(source: SourceGraph) -> dict[str, QuantParams]:
    """Every quantized tensor's parameters as the reader parsed them, in ONNX terms (inspect)."""
    return FRONTENDS[source.framework].qparams(source)


def build(source: SourceGraph, opset: int | None = None) -> Conversion:
    """Map the source graph once, at the lowest opset its ops (the registry's table) and its
    quantization (the frontend) allow, or the one asked for if higher."""
    ops = {op.type for op in source.all_ops()}
    target = max(opset or versions.MIN_OPSET, required_opset(source.framework, ops), FRONTENDS[source.framework].min_opset(source))
    builder = GraphBuilder(opset=target)
    ctx = run_mappers(source, builder)
    if builder.min_opset > target:
        raise InternalError(f"{source.path}: internal error, the graph needs opset {builder.min_opset}, built for {target}")
    outputs = [ctx.output(n) for n in source.outputs]
    inputs = ctx.graph_inputs
    for out_name, value in zip(source.outputs, outputs, strict=True):
        if value.is_graph_input() or value.const_value is not None or value in outputs[: outputs.index(value)]:
            raise InputError(f"{source.path}: output {out_name!r} is an input or constant; not supported")
    meta = {
        metadata.VERSION: __version__,
        metadata.SOURCE_FRAMEWORK: source.framework,
        metadata.SOURCE_PATH: Path(source.path).name,
        metadata.OPSET: str(target),
    }
    model = builder.finish(inputs, outputs, opset=target, metadata=meta)
    try:
        counts = canonicalize(model)
    except QonvertError as exc:  # a pass meeting what the file says (a bias past int32 ...), or a pass's bug
        raise located(exc, str(source.path)) from None
    _restore_output_names(model, source.outputs)
    _declare_output_types(model, source)
    names = {k: v for k, v in ctx.name_map.items() if v}
    if names:
        model.metadata_props[metadata.NAME_MAP] = json.dumps(names, sort_keys=True)
    layouts = {k: list(p) for k, p in ctx.perms.items() if k in source.quant}
    if layouts:  # how each quantized source tensor is transposed in ONNX (verify --per-layer)
        model.metadata_props[metadata.LAYOUTS] = json.dumps(layouts, sort_keys=True)
    metadata.write_states(model, source.states)
    return Conversion(model, source, target, names, counts, ctx.remarks + source.notes)


def _declare_output_types(model: ir.Model, source: SourceGraph) -> None:
    """Every graph output carries a type and a shape (onnx.checker needs them): where shape
    inference could not tell (a shape computed at run time), the source's own shape is used,
    its dynamic dimensions named."""
    for value, name in zip(model.graph.outputs, source.outputs, strict=True):
        if value.type is None and source.dtypes.get(name) in NP_TO_IR and name not in source.quant:
            value.type = ir.TensorType(NP_TO_IR[source.dtypes[name]])
        if value.type is None:  # neither the file nor shape inference says (a corrupt declaration)
            raise InputError(f"{source.path}: output {name!r} has no declared type, and none can be inferred")
        shape = source.shapes.get(name)
        inferred = list(value.shape) if value.shape is not None else None
        if shape is None:
            if inferred is None:
                raise InputError(f"{source.path}: the shape of output {name!r} is unknown, in the source and after conversion")
            continue
        perm = source.io_perms.get(name)
        dims: list[int | str] = [shape[p] for p in perm] if perm else list(shape)
        if inferred is not None and len(inferred) != len(dims):
            continue  # a rank the source does not say: inference's word stands
        value.shape = ir.Shape(
            [
                d if isinstance(d, int) and d >= 0 else (inferred[i] if inferred and isinstance(inferred[i], int) else f"{name}_d{i}")
                for i, d in enumerate(dims)
            ]
        )


def _restore_output_names(model: ir.Model, names: list[str]) -> None:
    """Passes may replace a graph output's producer; the outputs keep the source names."""
    taken = {v.name for n in model.graph for v in n.outputs} | set(model.graph.initializers)
    for value, name in zip(model.graph.outputs, names, strict=True):
        if value.name != name and name not in taken:
            value.name = name
