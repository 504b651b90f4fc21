"""The TFLite frontend: .tflite flatbuffers, run by the LiteRT interpreter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    options_type = TFLiteOptions
    intermediates = True

    def detect(self, path: Path) -> bool:
        return isinstance(path, Path) and (path.suffix == ".tflite" or is_tflite(path))

    def load(self, path: Path, options: Options) -> SourceGraph:
        assert isinstance(options, TFLiteOptions)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        return load(path, options.nchw_io)

    def kernel_sets(self, path: Any, options: Options | None = None) -> tuple[str, ...]:
        from ...runtime.reference.litert import KERNEL_SETS

        return tuple(KERNEL_SETS)

    def run_reference(
        self, path: Path, feeds: Samples, extra: list[str], options: Options | None = None, kernels: str | None = None
    ) -> list[list[np.ndarray]]:
        from ...runtime.reference.litert import run_reference

        return run_reference(path, feeds, extra, kernels or "xnnpack")

    def run_intermediates(
        self, path: Path, feeds: Samples, options: Options | None = None, kernels: str | None = None
    ) -> list[dict[str, np.ndarray]]:
        from ...runtime.reference.litert import run_intermediates

        return run_intermediates(path, feeds, kernels or "xnnpack")
