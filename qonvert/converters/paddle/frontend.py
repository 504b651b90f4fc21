"""The Paddle frontend: PIR (.json) and ProgramDesc (.pdmodel) programs, run by Paddle's executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...opsets import versions
from ...opsets.qparams import QuantParams, dtype_opset
from ..frontend import Frontend, Options, Samples
from ..source import SourceGraph
from . import find_program, load
from .quant import BITS_TO_DTYPE, FAKE_DQ, FAKE_Q, FAKE_QDQ, OBSERVER_MODES, bits_of, parsed_params


@dataclass(frozen=True)
class PaddleOptions(Options):
    observers: str = field(
        default="skip",
        metadata={
            "help": "only_observer Q/DQ pairs: skip (identity, as Paddle runs them) or quantize (real int8 points, more fused kernels)",
            "choices": OBSERVER_MODES,
        },
    )

    def __post_init__(self) -> None:
        if self.observers not in OBSERVER_MODES:
            raise InputError(f"observers mode {self.observers!r}: expected one of {', '.join(OBSERVER_MODES)}")


class PaddleFrontend(Frontend):
    name = "paddle"
    runtime = "Paddle's static executor"
    options_type = PaddleOptions
    rewritten_ops = tuple(sorted(FAKE_QDQ | FAKE_Q | FAKE_DQ))  # into quantize/dequantize_linear
    intermediates = True  # the static executor fetches any variable of the program

    def detect(self, path: Path) -> bool:
        return isinstance(path, Path) and find_program(path) is not None

    def load(self, path: Path, options: Options) -> SourceGraph:
        assert isinstance(options, PaddleOptions)
        return load(path, options.observers)

    def qparams(self, source: SourceGraph) -> dict[str, QuantParams]:
        return parsed_params(source)

    def min_opset(self, source: SourceGraph) -> int:
        bits = {bits_of(op) for op in source.all_ops() if op.type in ("quantize_linear", "dequantize_linear")}  # sub-blocks too
        return max([versions.MIN_OPSET, *(dtype_opset(BITS_TO_DTYPE[b]) for b in bits)])

    def run_reference(
        self, path: Path, feeds: Samples, extra: list[str], options: Options | None = None, kernels: str | None = None
    ) -> list[list[np.ndarray]]:
        from ...runtime.reference.paddle import run_reference

        if extra:
            raise InputError(f"{path}: Paddle models have no state variables to follow")
        return run_reference(_program(path), feeds, kernels or "executor")

    def run_kernel_sets(
        self, path: Any, feeds: Samples, extra: list[str], options: Options | None, sets: tuple[str, ...]
    ) -> dict[str, list[list[np.ndarray]] | InputError]:
        from ...runtime.reference.paddle import run_kernel_sets

        if extra:
            raise InputError(f"{path}: Paddle models have no state variables to follow")
        return run_kernel_sets(_program(path), feeds, sets)  # one child process for all

    def kernel_sets(self, path: Any, options: Options | None = None) -> tuple[str, ...]:
        from ...runtime.reference.paddle import KERNEL_SETS

        return KERNEL_SETS

    def run_intermediates(
        self, path: Path, feeds: Samples, options: Options | None = None, kernels: str | None = None
    ) -> list[dict[str, np.ndarray]]:
        from ...runtime.reference.paddle import run_intermediates

        if kernels not in (None, "executor"):
            raise InputError(f"{path}: per layer runs on Paddle's executor only (its predictor rewrites the program first)")
        return run_intermediates(_program(path), feeds)


def _program(path: Path) -> Path:
    program = find_program(path)
    if program is None:
        raise InputError(f"{path}: no Paddle program (.json or .pdmodel) found")
    return program
