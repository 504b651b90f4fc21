"""PyTorch op mappers (PT2E ExportedPrograms); importing this package registers them all."""

from . import nn, quant, tensor  # noqa: F401
