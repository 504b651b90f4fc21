"""The generated `tflite` flatbuffer schema package, each class's module imported on first use.

The package's __init__ imports all of its ~190 generated modules (about 30 ms, against a 0.4 s
target for a whole conversion), where a model reads a dozen. Unless the real package is already
imported, `tflite` is a package module without that __init__ whose attributes import their own
module when first read, so `tflite.Model`, `tflite.BuiltinOperator` and the generated code's own
`from tflite.Tensor import Tensor` all work as with the real package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


def schema_package() -> ModuleType:
    if "tflite" in sys.modules:
        return sys.modules["tflite"]
    spec = importlib.util.find_spec("tflite")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the tflite schema package is not installed (pip install tflite)", name="tflite")
    package = ModuleType("tflite", "TFLite's flatbuffer schema, each class imported on first use (qonvert)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "tflite"

    def class_of(name: str) -> Any:  # PEP 562: called only for attributes not yet set
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            module = importlib.import_module(f"tflite.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'tflite' has no attribute {name!r}") from None
        value = getattr(module, name)
        setattr(package, name, value)  # over the submodule the import system set there
        return value

    package.__getattr__ = class_of  # type: ignore[method-assign]
    sys.modules["tflite"] = package
    return package
