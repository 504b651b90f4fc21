"""Reads a TorchScript archive of an eager- or FX-converted quantized model (torch.jit.save of a
traced or scripted module) into a SourceGraph, by running its inlined graph once, op by op, on
example inputs: TorchScript records neither shapes nor the parameters of its quantized tensors,
and the run gives both (a quantized tensor carries its own scale and zero point).

Ops are named as in PT2E graphs ("aten.flatten.using_ints", "quantized.conv2d_relu.new"), so one
registry serves both; arguments are slots "0", "1", ... as there. Packed parameters become
constants `<output>.weight` (int8 codes, their quantization in graph.quant) and `<output>.bias`
(float), and a conv's settings attrs (stride, padding, dilation, groups, output_padding). Every
quantized tensor is named in graph.quant, so its ONNX value goes through Q -> DQ with the
parameters PyTorch gave it (as TFLite's integer tensors do).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import InputError, first_line
from ...opsets.qparams import QuantParams
from ..source import SourceGraph, SourceOp, TensorInfo
from .export import dtype_name

_QDTYPES = {"torch.quint8": "uint8", "torch.qint8": "int8", "torch.qint32": "int32"}


OnOp = Callable[[Any, list[str], list[str], list[Any], list[Any]], None]


def interpret(module: Any, inputs: tuple[Any, ...], path: str, on_op: OnOp) -> dict[str, Any]:
    """Run the module's inlined graph node by node; `on_op(node, input names, output names, args,
    results)` sees each op after it ran. Returns every value by name."""
    import torch

    fx = module.inlined_graph
    params = list(fx.inputs())
    if len(params) - 1 != len(inputs):
        raise InputError(f"{path}: the model takes {len(params) - 1} inputs, {len(inputs)} given")
    env: dict[str, Any] = {params[0].debugName(): module}
    env.update({p.debugName(): x for p, x in zip(params[1:], inputs, strict=True)})
    for node in fx.nodes():
        kind = node.kind()
        outs = [o.debugName() for o in node.outputs()]
        ins = [i.debugName() for i in node.inputs()]
        if kind == "prim::Constant":
            env[outs[0]] = node.output().toIValue()
        elif kind == "prim::GetAttr":
            env[outs[0]] = getattr(env[ins[0]], node.s("name"))
        elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            env[outs[0]] = [env[i] for i in ins]
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            env.update(zip(outs, env[ins[0]], strict=True))
        elif kind == "prim::NumToTensor":  # shape arithmetic (x.shape in forward): static here
            env[outs[0]] = torch.scalar_tensor(env[ins[0]], dtype=torch.int64)
        elif kind.startswith("prim::"):
            raise InputError(f"{path}: TorchScript {kind} (control flow or a Python call) is not supported")
        else:
            args = [env[i] for i in ins]
            try:
                result = _call(torch, node, args)
            except Exception as exc:  # the model's own op failed on these inputs: say which
                raise InputError(f"{path}: running {kind} ({outs[0]}) failed: {first_line(exc)}") from None
            results = [result] if len(outs) == 1 else list(result)
            env.update(zip(outs, results, strict=True))
            on_op(node, ins, outs, args, results)
    return env


def _call(torch: Any, node: Any, args: list[Any]) -> Any:
    """The node's own overload, keyword-only arguments by name (mean's dtype, ...)."""
    schema = torch._C.parse_schema(node.schema())
    namespace, _, name = schema.name.partition("::")
    op = getattr(getattr(getattr(torch.ops, namespace), name), schema.overload_name or "default")
    positional = [a for a, spec in zip(args, schema.arguments, strict=False) if not spec.kwarg_only]
    keywords = {spec.name: a for a, spec in zip(args, schema.arguments, strict=False) if spec.kwarg_only}
    return op(*positional, **keywords)


def _members(node: Any, ins: list[str], args: list[Any]) -> list[tuple[str, Any]]:
    """The node's inputs as (name, value), a list (cat's tensors, a float LSTM's weights) as the
    members its ListConstruct takes."""
    members: list[tuple[str, Any]] = []
    for k, (name, value) in enumerate(zip(ins, args, strict=True)):
        producer = node.inputsAt(k).node()
        if isinstance(value, list) and producer.kind() == "prim::ListConstruct":
            members += zip([i.debugName() for i in producer.inputs()], value, strict=False)
        else:
            members.append((name, value))
    return members


def input_names(module: Any) -> list[str]:
    return [v.debugName() for v in list(module.inlined_graph.inputs())[1:]]


def read_torchscript(module: Any, example_inputs: tuple[Any, ...], path: str) -> SourceGraph:
    import torch

    graph = SourceGraph("torch", path, [], [], [], {})
    for name, example in zip(input_names(module), example_inputs, strict=False):
        graph.inputs.append(TensorInfo(name, tuple(example.shape), dtype_name(example.dtype)))
        _record(graph, name, example)

    made = {info.name for info in graph.inputs}  # tensors computed from the inputs

    def add(node: Any, ins: list[str], outs: list[str], args: list[Any], results: list[Any]) -> None:
        if not any(isinstance(value, torch.Tensor) for value in results):
            return  # sizes and numbers (x.shape in forward): consumers take them as attributes
        # Only the module's own tensors: fold the result (a reference model's weight quantize), but
        # keep a dequantize of a constant: it is the weight's DQ.
        members = _members(node, ins, args)
        if not any(name in made for name, _ in members) and node.kind() != "aten::dequantize":
            for out, value in zip(outs, results, strict=True):
                if isinstance(value, torch.Tensor):
                    _constant(graph, out, value)
            return
        for name, value in members:  # a module's own tensors (BN statistics, a float LSTM's weights ...)
            if isinstance(value, torch.Tensor) and name not in made and name not in graph.constants:
                _constant(graph, name, value)
        for out, value in zip(outs, results, strict=True):
            if isinstance(value, torch.Tensor):
                _record(graph, out, value)
            made.add(out)
        graph.ops.append(_op(graph, node, ins, outs, args))

    interpret(module, example_inputs, path, add)
    for value in module.inlined_graph.outputs():  # a returned tuple: its elements are the outputs
        producer = value.node()
        names = [i.debugName() for i in producer.inputs()] if producer.kind() == "prim::TupleConstruct" else [value.debugName()]
        graph.outputs += names
    if not graph.quant:
        raise InputError(f"{path}: no quantized tensor: a float TorchScript model (convert it with torch.ao.quantization first)")
    _plain_input_names(graph)
    return graph


def _op(graph: SourceGraph, node: Any, ins: list[str], outs: list[str], args: list[Any]) -> SourceOp:
    import torch

    schema = node.schema()
    qualified = schema.split("(", 1)[0] if schema != "(no schema)" else node.kind()
    namespace, _, name = qualified.partition("::")
    op_name, _, overload = name.partition(".")
    inputs: dict[str, list[str]] = {}
    attrs: dict[str, Any] = {}
    for k, (arg_name, value) in enumerate(zip(ins, args, strict=True)):
        if isinstance(value, torch.Tensor):
            inputs[str(k)] = [arg_name]
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            construct = node.inputsAt(k).node()  # a tensor list (cat): the ListConstruct's own inputs
            inputs[str(k)] = [i.debugName() for i in construct.inputs()]
        elif isinstance(value, torch.ScriptObject):
            _unpack(graph, outs[0], value, inputs, attrs, one_d="conv1d" in node.kind())
        elif isinstance(value, list) and value and all(isinstance(v, torch.ScriptObject) for v in value):
            _unpack_cells(graph, outs[0], value, inputs, attrs)
        else:
            attrs[str(k)] = dtype_name(value) if isinstance(value, torch.dtype) else value
    if op_name.startswith("linear") and op_name.endswith("dynamic"):  # qnnpack ignores reduce_range
        attrs["reduce_range_applied"] = bool(attrs.get("2", False)) and torch.backends.quantized.engine != "qnnpack"
    return SourceOp(f"{namespace}.{op_name}.{overload or 'default'}", inputs, {"out": outs}, attrs)


def _constant(graph: SourceGraph, name: str, value: Any) -> None:
    """A tensor that depends on no input: a constant (a quantized one as its codes)."""
    import torch

    if value.is_quantized:
        graph.constants[name] = value.int_repr().numpy().copy()
        graph.quant[name] = _qparams(value, name)
    elif value.dim() == 0 and value.dtype == torch.float64:
        # a traced Python number (x + 1e-5): a 0-d tensor does not promote a float32 tensor it
        # meets, so PyTorch computes in float32 with it
        graph.constants[name] = value.detach().numpy().astype(np.float32)
    else:
        graph.constants[name] = value.detach().numpy().copy()
    graph.shapes[name] = tuple(int(d) for d in value.shape)


def _record(graph: SourceGraph, name: str, value: Any) -> None:
    graph.shapes[name] = tuple(int(d) for d in value.shape)
    dtype = str(value.dtype)
    if dtype in _QDTYPES:
        graph.dtypes[name] = _QDTYPES[dtype]
        graph.quant[name] = _qparams(value, name)
    else:
        graph.dtypes[name] = dtype_name(value.dtype)


def _qparams(value: Any, name: str, validate: bool = True) -> QuantParams:
    import torch

    dtype = _QDTYPES[str(value.dtype)]
    if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        qp = QuantParams(np.asarray(value.q_scale(), np.float32), np.asarray(value.q_zero_point(), np.int64), dtype)
    else:
        scales = value.q_per_channel_scales().numpy().astype(np.float32)
        zero_points = value.q_per_channel_zero_points().numpy().astype(np.int64)
        qp = QuantParams(scales, zero_points, dtype, int(value.q_per_channel_axis()))
    return qp.validate(name, tuple(value.shape)) if validate else qp


def _unpack(graph: SourceGraph, base: str, packed: Any, inputs: dict[str, list[str]], attrs: dict[str, Any], one_d: bool = False) -> None:
    """A packed conv/linear parameter object: weight codes (and their quantization), float bias,
    and a conv's settings. A conv1d packs a 2-D conv ([out, in, 1, k], settings [1, s])."""
    try:
        weight, bias = packed.unpack()
    except Exception as exc:
        raise InputError(f"{base}: packed parameters that cannot be unpacked ({exc})") from None
    if one_d and weight.dim() == 4:
        weight = weight.squeeze(2)
    qp, codes, remark = _qparams(weight, f"{base}.weight", validate=False).revive_dead_channels(weight.int_repr().numpy(), f"{base}.weight")
    graph.constants[f"{base}.weight"] = codes.copy()
    graph.quant[f"{base}.weight"] = qp.validate(f"{base}.weight", codes.shape)
    if remark:
        graph.notes.append(remark)
    inputs["weight"] = [f"{base}.weight"]
    if bias is not None:
        graph.constants[f"{base}.bias"] = bias.detach().numpy().astype(np.float32).copy()
        inputs["bias"] = [f"{base}.bias"]
    spatial = weight.dim() - 2  # conv1d packs 2-D settings ([1, k]): the last `spatial` are its own
    for setting in ("stride", "padding", "dilation", "groups", "output_padding"):
        getter = getattr(packed, setting, None)
        if getter is None:
            continue
        try:
            value = getter()
        except RuntimeError:  # linear parameters have none of these
            continue
        attrs[setting] = list(value)[-spatial:] if isinstance(value, (list, tuple)) else value


def _unpack_cells(graph: SourceGraph, base: str, cells: list[Any], inputs: dict[str, list[str]], attrs: dict[str, Any]) -> None:
    """A quantized RNN's cell parameters (one per layer and direction), each pickled as (kind,
    biases, doubles, longs, packed weights): the packed input and hidden weights give int8
    `w_ih{k}` / `w_hh{k}` and their float biases `b_ih{k}` / `b_hh{k}`; longs[0] is reduce_range,
    which the engine may apply (qnnpack ignores it)."""
    import torch

    reduce_range = False
    for k, cell in enumerate(cells):
        try:
            kind, _biases, _doubles, longs, packed = cell.__getstate__()[0]
        except Exception as exc:
            raise InputError(f"{base}: RNN cell parameters that cannot be read ({type(exc).__name__})") from None
        if kind != "quantized_dynamic" or len(packed) != 2:
            raise InputError(f"{base}: RNN cell parameters of kind {kind!r} are not supported (only dynamic quantization)")
        reduce_range = bool(longs and longs[0])
        for gate, weights in zip(("ih", "hh"), packed, strict=True):
            unpacked: dict[str, list[str]] = {}  # int8 codes `.weight` (quantized), float `.bias`
            _unpack(graph, f"{base}.w_{gate}{k}", weights, unpacked, {})
            inputs[f"w_{gate}{k}"] = unpacked["weight"]
            inputs[f"b_{gate}{k}"] = unpacked.get("bias", [])
    attrs["reduce_range_applied"] = reduce_range and torch.backends.quantized.engine != "qnnpack"


def _plain_input_names(graph: SourceGraph) -> None:
    """TorchScript names values `x.1`; the ONNX inputs take the argument's own name (`x`), as the
    module's forward calls it. An inner value already called so gives the name up."""
    taken = set(graph.shapes) | set(graph.constants)
    for info in graph.inputs:
        plain = re.sub(r"\.\d+$", "", info.name)
        if plain == info.name:
            continue
        if plain in taken:
            graph.rename(plain, f"{plain}#inner")
        graph.rename(info.name, plain)
        info.name = plain
