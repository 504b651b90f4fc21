"""The TFLite frontend: .tflite flatbuffers, run by the LiteRT interpreter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..frontend import Frontend, Options, Samples
from ..source import SourceGraph
from . import is_tflite, load


@dataclass(frozen=True)
class TFLiteOptions(Options):
    nchw_io: bool = field(default=False, metadata={"help": "4-D inputs/outputs NCHW in ONNX (default: NHWC as the source)"})


class TFLiteFrontend(Frontend):
    name = "tflite"
    runtime = "LiteRT"
    kernel_sets = ("xnnpack", "builtin", "reference")  # runtime/reference/litert.py KERNEL_SETS
    options_type = TFLiteOptions
    intermediates = True

    def detect(self, path: Path) -> bool:
        return isinstance(path, Path) and (path.suffix == ".tflite" or is_tflite(path))

    def load(self, path: Path, options: Options) -> SourceGraph:
        assert isinstance(options, TFLiteOptions)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        return load(path, options.nchw_io)

    def run_reference(
        self, path: Path, feeds: Samples, extra: list[str], options: Options | None = None, kernels: str | None = None
    ) -> list[list[np.ndarray]]:
        from ...runtime.reference.litert import run_reference

        return run_reference(path, feeds, extra, kernels or self.kernel_sets[0])

    def run_intermediates(
        self, path: Path, feeds: Samples, options: Options | None = None, kernels: str | None = None
    ) -> list[dict[str, np.ndarray]]:
        from ...runtime.reference.litert import run_intermediates

        return run_intermediates(path, feeds, kernels or self.kernel_sets[0])
