"""qonvert: quantized Paddle / TFLite / PyTorch models -> one canonical QDQ ONNX form, verified on ORT.

Public API: :func:`convert`, :func:`verify`, :func:`inspect`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import ConvertResult, VerifyReport, convert, inspect, verify
from .errors import QonvertError

__all__ = ["ConvertResult", "QonvertError", "VerifyReport", "__version__", "convert", "inspect", "verify"]
