"""TFLite frontend: .tflite flatbuffers read without TensorFlow."""

from __future__ import annotations

from pathlib import Path

from ..source import SourceGraph
from . import ops  # noqa: F401  (registers the mappers)
from .layout import NCHW
from .model import is_tflite, read_tflite

__all__ = ["is_tflite", "load"]


def load(path: Path, nchw_io: bool = False) -> SourceGraph:
    """nchw_io: 4-D graph inputs/outputs are NCHW in ONNX (no edge transposes)."""
    graph = read_tflite(path)
    if nchw_io:
        for name in [t.name for t in graph.inputs] + graph.outputs:
            if len(graph.shapes.get(name, ())) == 4:
                graph.io_perms[name] = NCHW
    return graph
