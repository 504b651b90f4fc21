"""Reads a torch.export ExportedProgram (a PT2E-quantized .pt2, or one made in memory) into a SourceGraph.

Ops keep their overload names ("aten.conv2d.default", "quantized_decomposed.quantize_per_tensor.default").
Positional arguments become slots "0", "1", ...: a tensor argument an input slot (a list of
tensors, as `cat` takes, one slot with several names), anything else an attr of that name;
keyword arguments the same under their own names. Parameters, buffers and lifted constants
are constants; torch dtypes become numpy dtype names.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import InputError
from ..source import SourceGraph, SourceOp, TensorInfo

_DTYPES = {
    "torch.float32": "float32",
    "torch.float16": "float16",
    "torch.float64": "float64",
    "torch.int64": "int64",
    "torch.int32": "int32",
    "torch.int16": "int16",
    "torch.int8": "int8",
    "torch.uint8": "uint8",
    "torch.bool": "bool",
}


def dtype_name(dtype: Any) -> str:
    name = _DTYPES.get(str(dtype))
    if name is None:
        raise InputError(f"torch dtype {dtype} is not supported")
    return name


def decompose_untranslated(program: Any, translated: Callable[[str], bool]) -> Any:
    """The program with the ops no mapper translates decomposed, as torch.onnx decomposes before
    dispatching to torchlib (`__and__` to bitwise_and, diff to slices ...): only those, with
    torch.export's own decompositions, so every op a mapper owns (and every Q/DQ) stays as it is."""
    untranslated = {str(n.target) for n in program.graph.nodes if n.op == "call_function" and not translated(str(n.target))}
    if not untranslated:  # the usual case: torch's table costs 0.1 s to build
        return program
    wanted = {op: fn for name, (op, fn) in _decompositions().items() if name in untranslated}
    if not wanted:
        return program
    try:
        return program.run_decompositions(wanted)
    except Exception:  # torch cannot retrace it (tensor-subclass internals with fake tensors): the
        return program  # program as it is, whose untranslated ops the pre-flight then lists


@functools.cache
def _decompositions() -> dict[str, tuple[Any, Callable[..., Any]]]:
    """torch.export's default decompositions by op name, built once a process."""
    import torch

    return {str(op): (op, fn) for op, fn in torch.export.default_decompositions().items()}


def read_exported(program: Any, path: str, promote: bool = False) -> SourceGraph:
    """An ExportedProgram: parameters, buffers and lifted constants come in as placeholders. A
    tensor subclass (torchao's quantized weights) is read through the inner tensors that export's
    `access_subclass_inner_tensor` takes from it (qdata, scale, zero_point), never as itself.
    `promote`: PyTorch's implicit type promotions made explicit first (a copy of the graph; the
    user's program is not touched), as torch.onnx does before torchlib, whose functions expect
    their inputs promoted (cumsum of a bool mask, int64 + float), where torch's pass can run."""
    signature = program.graph_signature
    lifted = {**signature.inputs_to_parameters, **signature.inputs_to_buffers, **signature.inputs_to_lifted_tensor_constants}
    values = {**program.state_dict, **program.constants}
    graph = program.graph
    if promote:
        import copy

        from torch.onnx._internal.fx import passes

        module = copy.deepcopy(program.graph_module)
        try:
            passes.InsertTypePromotion(module).run()
            graph = module.graph
        except Exception:  # torch's pass cannot trace a graph that reads tensor-subclass internals
            pass  # (torchao's weights) with fake tensors: such a graph is read as it is
    return _read(graph, {name: values[target] for name, target in lifted.items()}, program, path)


def read_graph_module(module: Any, path: str) -> SourceGraph:
    """A GraphModule as convert_pt2e returns it (already a flat aten graph): read as it is, so its
    node names are the ones its own run gives (verify --per-layer)."""
    return _read(module.graph, {}, module, path)


# Ops of no data: export's run-time checks of a tensor's metadata, and tensor-subclass access
# (read as constants below).
_CHECKS = ("aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten.sym_constrain_range_for_size.default")
_INNER = "export.access_subclass_inner_tensor.default"
READER_OPS = {*_CHECKS, _INNER, str(operator.getitem)}  # what the reader itself takes
QUANTIZE_NAMESPACES = ("quantized_decomposed.", "torchao.")  # the ops that make a graph a quantized one


def _is_subclass(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, torch.nn.Parameter) and hasattr(value, "__tensor_flatten__")


def _read(fx_graph: Any, lifted: dict[str, Any], owner: Any, path: str) -> SourceGraph:
    import torch

    graph = SourceGraph("torch", path, [], [], [], {})
    subclasses = {name: value for name, value in lifted.items() if _is_subclass(value)}
    for node in fx_graph.nodes:
        meta = node.meta.get("val")
        if isinstance(meta, torch.Tensor):
            graph.shapes[node.name] = tuple(int(d) if isinstance(d, int) else -1 for d in meta.shape)
            graph.dtypes[node.name] = _DTYPES.get(str(meta.dtype), str(meta.dtype))
        elif node.op == "call_function" and str(node.target).startswith("quantized_decomposed.") and node.args:
            source = getattr(node.args[0], "name", None)  # convert_pt2e's new Q/DQ nodes carry no meta:
            if source in graph.shapes:  # a Q/DQ keeps its input's shape
                graph.shapes[node.name] = graph.shapes[source]
        if node.op == "placeholder":
            if node.name in subclasses:
                _subclass_used_as_is(node, subclasses[node.name], path)
            elif node.name in lifted:
                graph.constants[node.name] = _array(lifted[node.name])
            else:
                graph.inputs.append(TensorInfo(node.name, graph.shapes.get(node.name, ()), graph.dtypes.get(node.name, "float32")))
        elif node.op == "call_function" and node.target is operator.getitem:
            continue  # read with the op it unpacks (_op names that op's outputs after its getitems)
        elif node.op == "call_function" and str(node.target) in _CHECKS:
            continue
        elif node.op == "call_function" and str(node.target) == _INNER:
            inner = getattr(subclasses[node.args[0].name], str(node.args[1]))
            graph.constants[node.name] = _array(inner)
            graph.shapes[node.name] = graph.constants[node.name].shape
        elif node.op == "call_function":
            _check_literals(node, path)
            graph.ops.append(_op(node))
        elif node.op == "output":
            outs = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
            graph.outputs = [o.name for o in outs if o is not None]
        elif node.op == "get_attr":
            graph.constants[node.name] = _attr(owner, node.target)
            graph.shapes[node.name] = graph.constants[node.name].shape
        elif node.op == "call_module" and "activation_post_process" in str(node.target):
            raise InputError(f"{path}: the model holds observers ({node.target}): prepared but not converted (run convert_pt2e)")
        elif not (node.op == "call_module" and not node.users):  # e.g. an unused _guards_fn
            raise InputError(f"{path}: node {node.name!r} ({node.op} {node.target}) is not supported")
    if not subclasses and not any(op.type.startswith(QUANTIZE_NAMESPACES) for op in graph.ops):
        raise InputError(f"{path}: no quantize/dequantize op: a float model (quantize it with prepare_pt2e / convert_pt2e, or torchao's quantize_)")
    return graph


def _subclass_used_as_is(node: Any, value: Any, path: str) -> None:
    """A tensor subclass is read through its inner tensors only; an op that takes it whole (a
    subclass export did not flatten) is named in one line."""
    inner, _ = value.__tensor_flatten__()
    for user in node.users:
        if str(user.target) != _INNER or user.args[1] not in inner:
            kind = type(value).__name__
            raise InputError(f"{path}: parameter {node.name!r} is a {kind} (a tensor subclass) that op {user.target} reads whole; not supported")


def _attr(program: Any, target: str) -> np.ndarray:
    obj = program
    for part in target.split("."):
        obj = getattr(obj, part)
    return _array(obj)


def _array(tensor: Any) -> np.ndarray:
    """A read-only view of a CPU tensor's storage, not a copy: the program holds the weights
    already, and a second copy would double a large model's memory. (Nothing in qonvert writes into
    a source constant; the flag makes sure.)"""
    array = tensor.detach().cpu().numpy()
    array.flags.writeable = False
    return array


def _op(node: Any) -> SourceOp:
    import torch

    inputs: dict[str, list[str]] = {}
    attrs: dict[str, Any] = {}
    for key, arg in [*((str(i), a) for i, a in enumerate(node.args)), *node.kwargs.items()]:
        if isinstance(arg, torch.fx.Node):
            inputs[key] = [arg.name]
        elif (
            isinstance(arg, (list, tuple))
            and any(isinstance(a, torch.fx.Node) for a in arg)
            and all(a is None or isinstance(a, torch.fx.Node) for a in arg)
        ):
            inputs[key] = [a.name if a is not None else "" for a in arg]  # index's [None, idx]: "" for a None
        else:
            attrs[key] = _literal(arg)
    stack = node.meta.get("nn_module_stack") or {}
    where = ""
    if stack:  # the innermost module: its path, or for the top-level module its class
        path, kind = next(reversed(stack.values()))
        where = path or str(getattr(kind, "__name__", kind)).rsplit(".", 1)[-1]
    return SourceOp(str(node.target), inputs, {"out": _outputs(node)}, attrs, where=where)


def _outputs(node: Any) -> list[str]:
    """An op's output names: its own, or for a tuple result the getitem nodes that unpack it."""
    items = {u.args[1]: u.name for u in node.users if u.op == "call_function" and u.target is operator.getitem}
    if not items:
        return [node.name]
    return [items.get(i, f"{node.name}#{i}") for i in range(max(items) + 1)]


def _check_literals(node: Any, path: str) -> None:
    """Each literal argument of the call has the type its op's schema declares: a program file
    that torch.export.load accepts may still pass a string where an int goes (a corrupt or
    hand-edited file), which a mapper would meet as a bare ValueError."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return
    named = {a.name: a for a in schema.arguments}
    for argument, value in [*zip(schema.arguments, node.args, strict=False), *((named.get(k), v) for k, v in node.kwargs.items())]:
        if argument is not None and not _matches(argument.type, value, argument.name):
            shown = repr(value)[:60]
            raise InputError(f"{path}: op {node.name} ({node.target}): argument {argument.name!r} is {shown}, where the op takes {argument.type}")


def _matches(kind: Any, value: Any, name: str) -> bool:
    """Whether a literal (or an fx.Node, which stands for a tensor or symbolic value) fits a
    schema type; types qonvert does not read (Device, Layout, ...) pass."""
    import torch

    if isinstance(value, torch.fx.Node):
        return True
    what = kind.kind()
    number = isinstance(value, (int, float)) or isinstance(value, torch.SymInt | torch.SymFloat)
    if what == "OptionalType":
        return value is None or _matches(kind.getElementType(), value, name)
    if what == "ListType":
        return isinstance(value, (list, tuple)) and all(_matches(kind.getElementType(), v, name) for v in value)
    if what in ("IntType", "SymIntType"):  # a dtype is an int (ScalarType) in some schemas
        return isinstance(value, torch.dtype) if "dtype" in name else isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool)
    if what in ("FloatType", "NumberType", "TensorType"):  # add.Tensor(x, 2.0) takes a number
        return number
    if what == "BoolType":
        return isinstance(value, (bool, int))
    if what == "StringType":
        return isinstance(value, str)
    return True


def _literal(arg: Any) -> Any:
    import torch

    if isinstance(arg, torch.dtype):
        return dtype_name(arg)
    if isinstance(arg, (list, tuple)):
        return [_literal(a) for a in arg]
    if isinstance(arg, (torch.device, torch.layout, torch.memory_format)):
        return str(arg)
    return arg
