"""PyTorch frontend: PT2E-quantized ExportedPrograms (.pt2 files, or in memory) and TorchScript
archives of eager- or FX-converted models, read through torch."""

from __future__ import annotations

from . import ops  # noqa: F401  (registers the mappers)
