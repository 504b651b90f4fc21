"""PyTorch op mappers (PT2E ExportedPrograms and TorchScript archives); importing this package
registers them all."""

from . import nn, quant, quantized, recurrent, tensor, torchao, torchlib  # noqa: F401
