"""qonvert: quantized Paddle / TFLite / PyTorch models -> one canonical QDQ ONNX form, verified on ORT.

Public API: :func:`convert`, :func:`verify`, :func:`inspect`; :func:`initial_state` for
streaming models. Errors: :class:`InputError` (the user's file or options) and
:class:`InternalError` (a bug in qonvert), both :class:`QonvertError`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import _lazy_imports

_lazy_imports.install()  # before anything imports onnx_ir

from .api import ConvertResult, VerifyReport, convert, initial_state, inspect, verify  # noqa: E402
from .errors import InputError, InternalError, QonvertError  # noqa: E402

__all__ = [
    "ConvertResult",
    "InputError",
    "InternalError",
    "QonvertError",
    "VerifyReport",
    "__version__",
    "convert",
    "initial_state",
    "inspect",
    "verify",
]
