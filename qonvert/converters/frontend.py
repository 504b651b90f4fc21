"""The one interface a framework implements, in its own package (converters/<framework>/frontend.py).

A frontend detects its models, reads one into a SourceGraph (with its own typed options), says
which quantization it parsed (inspect), and runs the model on the framework's own runtime for
verify. Everything framework-specific that the rest of qonvert needs goes through here; the
frontends are listed in one table, `converters.FRONTENDS`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ..opsets import versions
from ..opsets.qparams import QuantParams
from .source import SourceGraph

Samples = list[dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Options:
    """A frontend's conversion options: a frozen dataclass per framework. Each field's metadata
    may carry "help" (and "choices"); the CLI makes a flag of every field from them, except those
    whose metadata says "cli": False (Python-only values: example inputs, shapes by name)."""


class Frontend(ABC):
    name: ClassVar[str]
    options_type: ClassVar[type[Options]] = Options
    # Source ops the reader rewrites into others before mapping (listed in the support matrix).
    rewritten_ops: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether `path` (a file, directory or path prefix) is a model of this framework."""

    @abstractmethod
    def load(self, path: Any, options: Options) -> SourceGraph:
        """The model as a SourceGraph: `path` is what `detect` took (a Path; for PyTorch, also an
        in-memory module)."""

    def options(self, **given: Any) -> Options:
        """The typed options from keywords; one naming the wrong framework is an error."""
        fields = {f.name for f in dataclasses.fields(self.options_type)}
        unknown = sorted(set(given) - fields)
        if unknown:
            takes = ", ".join(sorted(fields)) or "none"
            raise InputError(f"option {unknown[0]!r} does not apply to {self.name} models (options: {takes})")
        return self.options_type(**given)

    def qparams(self, source: SourceGraph) -> dict[str, QuantParams]:
        """Every quantized tensor's parameters as the reader parsed them, in ONNX terms."""
        return dict(source.quant)

    def min_opset(self, source: SourceGraph) -> int:
        """The opset the source's quantization needs (int16 and int4 need 21), its control flow's
        subgraphs included."""
        graphs = [source, *source.subgraphs.values()]
        return max([versions.MIN_OPSET, *(qp.min_opset for g in graphs for qp in g.quant.values())])

    # -- the reference runtime (verify) ---------------------------------------------
    runtime: ClassVar[str]  # what runs the source model, for messages
    intermediates: ClassVar[bool] = False  # run_intermediates gives every tensor's value

    @abstractmethod
    def run_reference(
        self, path: Path, feeds: Samples, extra: list[str], options: Options | None = None, kernels: str | None = None
    ) -> list[list[np.ndarray]]:
        """The framework's outputs, then the `extra` tensors by name, one list per feed; feeds
        run in order as one stream (a stateful model carries its state). `options`: the ones the
        model was converted with, where running it depends on them (PyTorch's engine). `kernels`:
        one of kernel_sets (None: the first)."""

    def kernel_sets(self, path: Any, options: Options | None = None) -> tuple[str, ...]:
        """The runtime's kernel sets this source can run on, the one verify compares against
        first; each rounds its own way, and their spread is the source's own (source_spread)."""
        return ()

    def run_kernel_sets(
        self, path: Any, feeds: Samples, extra: list[str], options: Options | None, sets: tuple[str, ...]
    ) -> dict[str, list[list[np.ndarray]] | InputError]:
        """run_reference on each kernel set, by name; a set that cannot run the model gives its
        error instead (a frontend whose runs share a costly start overrides this)."""
        runs: dict[str, list[list[np.ndarray]] | InputError] = {}
        for kernels in sets:
            try:
                runs[kernels] = self.run_reference(path, feeds, extra, options, kernels)
            except InputError as exc:
                runs[kernels] = exc
        return runs

    def reference_remarks(self, path: Path, options: Options | None = None) -> list[str]:
        """What the report should say about the reference it ran, where that is not plain."""
        return []

    def run_intermediates(
        self, path: Path, feeds: Samples, options: Options | None = None, kernels: str | None = None
    ) -> list[dict[str, np.ndarray]]:
        """Every tensor the runtime computes, by source name, one dict per feed, on the same
        kernels as run_reference (`kernels`: one of kernel_sets, None: the first)."""
        raise InputError(f"{path}: {self.runtime} does not give intermediate tensors")
