"""The PyTorch frontend: PT2E-quantized ExportedPrograms (.pt2, or an ExportedProgram / exportable
module in memory) and TorchScript archives of eager- or FX-converted models, run by PyTorch
itself for verify.

Safety: a .pt2 loads through torch.export.load and a TorchScript archive through torch.jit.load
(no arbitrary unpickling); a pickled module (torch.save of a whole nn.Module) is refused unless
trust_pickle=True (--trust-pickle).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, cause
from ...opsets.qparams import QuantParams
from ...runtime.quiet import log_records_held, logged_cause, native_stderr_silenced
from ..frontend import Frontend, Options, Samples
from ..source import SourceGraph
from .prepared import convert_prepared, is_prepared, reference_remark

SUFFIXES = (".pt2", ".pt", ".pth")
# torch.jit.load repacks a quantized model's weights for the engine active at load time, and each
# engine rounds differently (x86's conv_transpose2d even departs from the float definition).
ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")


@contextlib.contextmanager
def engine(name: str | None) -> Iterator[None]:
    """PyTorch's quantized engine set to `name` (where given) for the duration, and its C++
    warnings (quantized tensors' deprecation, once per process) kept off the user's stderr."""
    torch = _torch()
    previous = torch.backends.quantized.engine
    if name is not None:
        if name not in torch.backends.quantized.supported_engines:
            raise InputError(f"quantized engine {name!r} is not available here: {', '.join(torch.backends.quantized.supported_engines)}")
        torch.backends.quantized.engine = name
    try:
        with native_stderr_silenced():
            yield
    finally:
        torch.backends.quantized.engine = previous


@dataclass(frozen=True)
class TorchOptions(Options):
    trust_pickle: bool = field(default=False, metadata={"help": "load a pickled nn.Module (runs code from the file: only files you trust)"})
    example_inputs: tuple[Any, ...] | None = field(default=None, metadata={"cli": False})  # to export an in-memory module
    # TorchScript archives record no input shapes: the CLI's --input-shape NAME=D,.. fills this.
    input_shapes: dict[str, list[int]] | None = field(default=None, metadata={"cli": False})
    engine: str | None = field(
        default=None,
        metadata={"help": "the quantized engine a TorchScript archive was made for and runs on (default: PyTorch's)", "choices": ENGINES},
    )


def _torch() -> Any:
    try:
        import torch
        import torch.ao.quantization.fx._decomposed
    except ImportError:
        raise InputError("PyTorch models need torch (pip install 'qonvert[torch]')") from None
    _import_torchao_quietly()
    return torch


def _import_torchao_quietly() -> None:
    """torchao registers the torchao.* ops a quantize_'d program holds; its import logs warnings
    about CUDA kernels a CPU wheel lacks (and torch about an enum it registers), which are no
    concern of the user's."""
    if "torchao" in sys.modules:
        return
    import importlib.util
    import logging

    if importlib.util.find_spec("torchao") is None:
        return
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        import torchao  # noqa: F401
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _archive_kind(path: Path) -> str:
    """'exported' (torch.export.save), 'torchscript' (torch.jit.save), 'pickle' (torch.save, a zip
    since PyTorch 1.6, or a legacy pickle), 'corrupt' (a damaged zip) or 'unknown'."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        with path.open("rb") as f:
            head = f.read(2)
        return "corrupt" if head == b"PK" else "pickle" if head[:1] == b"\x80" else "unknown"
    if any(n.endswith("archive_format") or "/models/" in n or n.startswith("models/") for n in names):
        return "exported"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "pickle"


class TorchFrontend(Frontend):
    name = "torch"
    runtime = "PyTorch"
    options_type = TorchOptions
    intermediates = True

    def detect(self, path: Any) -> bool:
        if isinstance(path, Path):
            return path.suffix in SUFFIXES and path.is_file()
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(path, (torch.nn.Module, torch.export.ExportedProgram))

    def program(self, source: Any, options: TorchOptions | None = None) -> Any:
        """The ExportedProgram of a .pt2 file, an ExportedProgram, or a module exported here."""
        torch = _torch()
        options = options or TorchOptions()
        if isinstance(source, torch.export.ExportedProgram):
            return source
        if isinstance(source, Path):
            if not source.is_file():
                raise InputError(f"{source}: no such file")
            kind = _archive_kind(source)
            if kind == "exported":
                # torch logs the cause with a traceback, then raises "check the warnings above"
                with log_records_held("torch.export") as logged:
                    try:
                        return torch.export.load(str(source))
                    except Exception as exc:  # torch raises many kinds on a bad archive
                        reason = logged_cause(logged) or exc
                        raise InputError(f"{source}: not a loadable ExportedProgram ({cause(reason)})") from None
            source = _unpickled(source, options)
        if isinstance(source, torch.nn.Module):
            examples = _module_examples(source, options, "exported")
            try:
                return torch.export.export(source, examples)
            except Exception as exc:
                raise InputError(f"torch.export failed on the module ({cause(exc)})") from None
        raise InputError(f"{type(source).__name__}: not a PyTorch model")

    def script(self, source: Any) -> Any:
        """The TorchScript module of a torch.jit.save archive or an in-memory ScriptModule, else None."""
        torch = _torch()
        if isinstance(source, torch.jit.ScriptModule):
            return source
        if isinstance(source, Path) and source.is_file() and _archive_kind(source) == "torchscript":
            try:
                return torch.jit.load(str(source), map_location="cpu").eval()
            except Exception as exc:
                raise InputError(f"{source}: not a loadable TorchScript archive ({cause(exc)})") from None
        return None

    def load(self, path: Any, options: Options) -> SourceGraph:
        from ..registry import is_fallback
        from .export import decompose_untranslated, read_exported, read_graph_module
        from .torchscript import input_names, read_torchscript

        assert isinstance(options, TorchOptions)
        torch = _torch()
        path = _converted(path, options)
        if isinstance(path, torch.nn.Module) and _eager_quantized(path):
            path = _traced(path, options)  # eager/FX-converted or an FX reference model: as its archive
        elif isinstance(path, torch.fx.GraphModule) and any(n.op == "call_function" for n in path.graph.nodes):
            return read_graph_module(path, type(path).__name__)  # convert_pt2e's output, as it is
        with engine(options.engine):
            script = self.script(path)
            if script is not None:
                where = str(path) if isinstance(path, Path) else "ScriptModule"
                return read_torchscript(script, _examples(script, options, where, input_names), where)
        program = decompose_untranslated(self.program(path, options), _translated)
        fallback = any(is_fallback("torch", str(n.target)) for n in program.graph.nodes if n.op == "call_function")
        return read_exported(program, str(path) if isinstance(path, Path) else type(path).__name__, promote=fallback)

    def qparams(self, source: SourceGraph) -> dict[str, QuantParams]:
        """Each quantize/dequantize op's parameters, by the tensor it (de)quantizes (PT2E), and
        every quantized tensor's own (TorchScript)."""
        from .ops.args import tensor_name
        from .ops.quant import qparams

        found = dict(source.quant)
        for op in source.ops:
            x = tensor_name(op, 0, "input")
            if op.type.startswith("quantized_decomposed.") and x is not None and x not in found:
                found[x] = qparams(op, lambda n: source.constants.get(n or ""), source.shapes.get(x))
        return found

    def run_reference(
        self, path: Any, feeds: Samples, extra: list[str], options: Options | None = None, kernels: str | None = None
    ) -> list[list[np.ndarray]]:
        if extra:
            raise InputError(f"{path}: PyTorch models have no state variables to follow")
        torch = _torch()
        outputs = []
        with engine(kernels or getattr(options, "engine", None)), torch.no_grad():
            module, names = self._runnable(path, options)
            for feed in feeds:
                result = module(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names])
                result = result if isinstance(result, (tuple, list)) else (result,)
                outputs.append([r.detach().numpy().copy() for r in result])
        return outputs

    def kernel_sets(self, path: Any, options: Options | None = None) -> tuple[str, ...]:
        """A model of quantized ops (a TorchScript archive, an eager- or FX-converted module) runs
        on each quantized engine here, the one it was converted with first; a PT2E program's
        quantize/dequantize ops compute in float on any."""
        torch = _torch()
        options = options if isinstance(options, TorchOptions) else TorchOptions()
        scripted = isinstance(path, Path) and path.is_file() and _archive_kind(path) == "torchscript"
        if not scripted and not (isinstance(path, torch.nn.Module) and _eager_quantized(path)):
            return ()
        first = options.engine or torch.backends.quantized.engine
        here = [e for e in ENGINES if e in torch.backends.quantized.supported_engines]
        return (first, *(e for e in here if e != first))

    def reference_remarks(self, path: Any, options: Options | None = None) -> list[str]:
        torch = _torch()
        if isinstance(path, Path) and path.is_file() and _archive_kind(path) == "pickle":
            path = _unpickled(path, options if isinstance(options, TorchOptions) else TorchOptions())
        return [reference_remark(path)] if isinstance(path, torch.nn.Module) and is_prepared(path) else []

    def _runnable(self, source: Any, options: Options | None = None) -> tuple[Any, list[str]]:
        """What runs the source, and its input names in order: an in-memory module runs as it is
        (the user's own object; an eager/FX-converted one traced as load traced it, so per-layer
        names match), a file or ExportedProgram as its unlifted module."""
        torch = _torch()
        options = options if isinstance(options, TorchOptions) else TorchOptions()
        source = _converted(source, options)  # as load read it
        if isinstance(source, torch.nn.Module) and _eager_quantized(source) and (options.example_inputs or options.input_shapes):
            source = _traced(source, options)
        script = self.script(source)
        if script is not None:
            from .torchscript import input_names

            return script, [re.sub(r"\.\d+$", "", n) for n in input_names(script)]  # as the reader renames them
        if isinstance(source, torch.nn.Module):
            graph = getattr(source, "graph", None)
            if graph is not None:
                return source, [n.name for n in graph.nodes if n.op == "placeholder"]
            return source, list(inspect.signature(source.forward).parameters)  # as torch.export names them
        program = self.program(source)
        return program.module(), list(program.graph_signature.user_inputs)

    def run_intermediates(self, path: Any, feeds: Samples, options: Options | None = None, kernels: str | None = None) -> list[dict[str, np.ndarray]]:
        """Every node's value, by node name, through torch.fx's interpreter (TorchScript: ours)."""
        torch = _torch()
        with engine(kernels or getattr(options, "engine", None)):
            module, names = self._runnable(path, options)
            if isinstance(module, torch.jit.ScriptModule):
                inputs = [tuple(torch.from_numpy(np.ascontiguousarray(f[n])) for n in names) for f in feeds]
                return _script_intermediates(module, inputs, str(path))
        if not isinstance(module, torch.fx.GraphModule):
            raise InputError(f"{type(path).__name__}: per-layer needs a GraphModule or an ExportedProgram")
        values: dict[str, np.ndarray] = {}

        interpreter: Any = torch.fx.Interpreter

        class Recorder(interpreter):  # type: ignore[misc,valid-type]
            def run_node(self, node: Any) -> Any:
                result = super().run_node(node)
                if type(result) is torch.Tensor or type(result) is torch.nn.Parameter:  # not a tensor subclass (torchao's weights)
                    values[node.name] = result.detach().numpy().copy()
                return result

        out = []
        with torch.no_grad():
            for feed in feeds:
                values = {}
                Recorder(module).run(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names])
                out.append(values)
        return out


def _translated(target: str) -> bool:
    """Whether the reader or a mapper (own or torchlib's) takes an op of an exported graph."""
    from ..registry import lookup
    from .export import READER_OPS

    return target in READER_OPS or lookup("torch", target) is not None


def _module_examples(module: Any, options: TorchOptions, purpose: str) -> tuple[Any, ...]:
    """A module's example inputs: the ones given, or zeros of --input-shape by forward's names."""
    torch = _torch()
    if options.example_inputs is not None:
        return tuple(options.example_inputs)
    names = list(inspect.signature(module.forward).parameters)
    shapes = options.input_shapes or {}
    if shapes and all(n in shapes for n in names):
        return tuple(torch.zeros(shapes[n]) for n in names)
    given = ", ".join(f"{n}=D,D,.." for n in names)
    raise InputError(f"{type(module).__name__}: a PyTorch module needs example_inputs=(x, ...) (CLI: --input-shape {given}) to be {purpose}")


def _converted(source: Any, options: TorchOptions) -> Any:
    """A pickle as its module (where trusted), and a prepared module (QAT or calibrated) as
    PyTorch's own convert of it; anything else as it is."""
    torch = _torch()
    if isinstance(source, Path) and source.is_file() and _archive_kind(source) == "pickle":
        source = _unpickled(source, options)
    if isinstance(source, torch.nn.Module) and is_prepared(source):
        source = convert_prepared(source)
    return source


def _unpickled(path: Path, options: TorchOptions) -> Any:
    """The nn.Module a torch.save pickle holds, where the user trusts the file."""
    torch = _torch()
    kind = _archive_kind(path)
    if kind in ("corrupt", "unknown"):
        raise InputError(f"{path}: {'a truncated or corrupt archive' if kind == 'corrupt' else 'not a PyTorch file'}")
    if not options.trust_pickle:
        raise InputError(f"{path}: a pickled PyTorch object; loading it runs code from the file: pass --trust-pickle if you trust it")
    try:
        module = torch.load(str(path), weights_only=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot unpickle ({cause(exc)})") from None
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{path}: the pickle holds a {type(module).__name__}, not an nn.Module")
    try:
        list(module.named_modules())
    except Exception as exc:  # PyTorch's quantized modules do not survive torch.save / torch.load
        detail = f"{cause(exc)}"
        raise InputError(f"{path}: the unpickled module is broken ({detail}); save it with torch.jit.save or torch.export.save instead") from None
    return module


def _examples(script: Any, options: TorchOptions, where: str, input_names: Callable[[Any], list[str]]) -> tuple[Any, ...]:
    """Example inputs for a TorchScript run: the ones given, or zeros of the --input-shape shapes."""
    torch = _torch()
    if options.example_inputs is not None:
        return tuple(options.example_inputs)
    names = [re.sub(r"\.\d+$", "", n) for n in input_names(script)]
    shapes = options.input_shapes or {}
    missing = [n for n in names if n not in shapes]
    if missing:
        given = ", ".join(f"{n}=D,D,.." for n in missing)
        raise InputError(f"{where}: a TorchScript archive records no input shapes: pass --input-shape {given} (or example_inputs)")
    return tuple(torch.zeros(shapes[n]) for n in names)


def _script_intermediates(module: Any, inputs: list[tuple[Any, ...]], where: str) -> list[dict[str, np.ndarray]]:
    """Every tensor of each run, by name; a quantized one as its integer codes."""
    from .torchscript import interpret

    torch = _torch()
    out: list[dict[str, np.ndarray]] = []

    def keep(node: Any, ins: list[str], outs: list[str], call_args: list[Any], results: list[Any]) -> None:
        for name, value in zip(outs, results, strict=True):
            if isinstance(value, torch.Tensor):
                out[-1][name] = (value.int_repr() if value.is_quantized else value).detach().numpy().copy()

    with torch.no_grad():
        for args in inputs:
            out.append({})
            interpret(module, args, where, keep)
    return out


def _eager_quantized(module: Any) -> bool:
    """An eager- or FX-converted module (quantized kernels, packed weights) or an FX reference
    model (torch.quantize_per_tensor calls): what torch.export cannot take, and tracing can."""
    torch = _torch()
    if isinstance(module, torch.jit.ScriptModule):
        return False  # already TorchScript (its .graph is TorchScript's, not an fx graph)
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules()):
        return True
    graph = getattr(module, "graph", None)
    targets = (torch.quantize_per_tensor, torch.quantize_per_channel)
    return graph is not None and any(n.op == "call_function" and n.target in targets for n in graph.nodes)


def _traced(module: Any, options: TorchOptions) -> Any:
    torch = _torch()
    try:
        with torch.no_grad():
            return torch.jit.trace(module.eval(), _module_examples(module, options, "traced"))
    except Exception as exc:
        raise InputError(f"torch.jit.trace failed on the module ({cause(exc)})") from None
