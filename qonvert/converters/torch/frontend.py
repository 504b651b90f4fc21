"""The PyTorch frontend: PT2E-quantized ExportedPrograms (.pt2, or an ExportedProgram / exportable
module in memory), run by PyTorch itself for verify.

Safety: a .pt2 loads through torch.export.load (no arbitrary unpickling); a pickled module
(torch.save of a whole nn.Module) is refused unless trust_pickle=True (--trust-pickle).
"""

from __future__ import annotations

import inspect
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import QonvertError
from ...opsets.qparams import QuantParams
from ..frontend import Frontend, Options, Samples
from ..source import SourceGraph

SUFFIXES = (".pt2", ".pt", ".pth")


@dataclass(frozen=True)
class TorchOptions(Options):
    trust_pickle: bool = field(default=False, metadata={"help": "load a pickled nn.Module (runs code from the file: only files you trust)"})
    example_inputs: tuple[Any, ...] | None = field(default=None, metadata={"cli": False})  # to export an in-memory module


def _torch() -> Any:
    try:
        import torch
        import torch.ao.quantization.fx._decomposed
    except ImportError:
        raise QonvertError("PyTorch models need torch (pip install 'qonvert[torch]')") from None
    return torch


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
                raise QonvertError(f"{source}: no such file")
            kind = _archive_kind(source)
            if kind == "exported":
                try:
                    return torch.export.load(str(source))
                except Exception as exc:  # torch raises many kinds on a bad archive
                    raise QonvertError(f"{source}: not a loadable ExportedProgram ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
            if kind in ("corrupt", "unknown"):
                raise QonvertError(f"{source}: {'a truncated or corrupt archive' if kind == 'corrupt' else 'not a PyTorch file'}")
            if kind == "torchscript":
                raise QonvertError(f"{source}: a TorchScript archive; only PT2E ExportedPrograms (.pt2) are supported yet")
            if not options.trust_pickle:
                raise QonvertError(f"{source}: a pickled PyTorch object; loading it runs code from the file: pass --trust-pickle if you trust it")
            try:
                source = torch.load(str(source), weights_only=False)
            except Exception as exc:
                raise QonvertError(f"{source}: cannot unpickle ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
            if not isinstance(source, torch.nn.Module):
                raise QonvertError(f"the pickle holds a {type(source).__name__}, not an nn.Module")
        if isinstance(source, torch.nn.Module):
            if options.example_inputs is None:
                raise QonvertError("an in-memory PyTorch module needs example_inputs=(x, ...) to be exported")
            try:
                return torch.export.export(source, tuple(options.example_inputs))
            except Exception as exc:
                raise QonvertError(f"torch.export failed on the module ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        raise QonvertError(f"{type(source).__name__}: not a PyTorch model")

    def load(self, path: Any, options: Options) -> SourceGraph:
        from .export import read_exported, read_graph_module

        assert isinstance(options, TorchOptions)
        torch = _torch()
        if isinstance(path, torch.fx.GraphModule) and any(n.op == "call_function" for n in path.graph.nodes):
            return read_graph_module(path, type(path).__name__)  # convert_pt2e's output, as it is
        return read_exported(self.program(path, options), str(path) if isinstance(path, Path) else type(path).__name__)

    def quant_params(self, source: SourceGraph) -> dict[str, QuantParams]:
        """Each quantize/dequantize op's parameters, by the tensor it (de)quantizes."""
        from .ops.args import tensor_name
        from .ops.quant import qparams

        found = {}
        for op in source.ops:
            x = tensor_name(op, 0, "input")
            if op.type.startswith("quantized_decomposed.") and x is not None and x not in found:
                found[x] = qparams(op, lambda n: source.constants.get(n or ""), source.shapes.get(x))
        return found

    def run_reference(self, path: Any, feeds: Samples, extra: list[str]) -> list[list[np.ndarray]]:
        if extra:
            raise QonvertError(f"{path}: PyTorch models have no state variables to follow")
        module, names = self._runnable(path)
        torch = _torch()
        outputs = []
        with torch.no_grad():
            for feed in feeds:
                result = module(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names])
                result = result if isinstance(result, (tuple, list)) else (result,)
                outputs.append([r.detach().numpy().copy() for r in result])
        return outputs

    def _runnable(self, source: Any) -> tuple[Any, list[str]]:
        """What runs the source, and its input names in order: an in-memory module runs as it is
        (the user's own object), a file or ExportedProgram as its unlifted module."""
        torch = _torch()
        if isinstance(source, torch.nn.Module):
            graph = getattr(source, "graph", None)
            if graph is not None:
                return source, [n.name for n in graph.nodes if n.op == "placeholder"]
            return source, list(inspect.signature(source.forward).parameters)  # as torch.export names them
        program = self.program(source)
        return program.module(), list(program.graph_signature.user_inputs)

    def run_intermediates(self, path: Any, feeds: Samples) -> list[dict[str, np.ndarray]]:
        """Every node's value, by node name, through torch.fx's interpreter."""
        torch = _torch()
        module, names = self._runnable(path)
        if not isinstance(module, torch.fx.GraphModule):
            raise QonvertError(f"{type(path).__name__}: per-layer needs a GraphModule or an ExportedProgram")
        values: dict[str, np.ndarray] = {}

        interpreter: Any = torch.fx.Interpreter

        class Recorder(interpreter):  # type: ignore[misc,valid-type]
            def run_node(self, node: Any) -> Any:
                result = super().run_node(node)
                if isinstance(result, torch.Tensor):
                    values[node.name] = result.detach().numpy().copy()
                return result

        out = []
        with torch.no_grad():
            for feed in feeds:
                values = {}
                Recorder(module).run(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names])
                out.append(values)
        return out
