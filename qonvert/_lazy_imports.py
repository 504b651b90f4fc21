"""SymPy, imported on first use instead of with onnx_ir.

onnx_ir 1.1 imports SymPy at module level (0.2-0.3 s, half of qonvert's import time) for symbolic
dimension expressions, which a conversion never builds. Until the upstream change
(docs/onnx_ir-lazy-sympy.patch) lands, the two modules that touch SymPy at import time load
lazily: the module object is made at once and executed on first attribute access, so whoever
does use SymPy (onnx_ir's symbolic dims, torch) gets the real module, unchanged. (Before Python
3.12.3 a LazyLoader's first access from two threads at once could run the module twice; no
conversion touches these modules (tests/test_imports.py), and torch loads SymPy fully while being
imported.)
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

# _symbolic_shapes builds a table of sympy.Max/Min/... at import, so it must be lazy too.
LAZY_MODULES = ("sympy", "onnx_ir._symbolic_shapes")


class _LazyFinder:
    """A meta path finder (importlib.abc's protocol; the abc module itself costs 9 ms to import):
    finds the named modules as the path finder would, with a lazy loader; once each."""

    def __init__(self, names: Sequence[str]) -> None:
        self.pending = set(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # not a plain source module: let it import as usual
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def install() -> None:
    """Defer the modules not yet imported (a caller that imported onnx_ir first keeps its SymPy)."""
    names = [n for n in LAZY_MODULES if n not in sys.modules]
    if names and not any(isinstance(f, _LazyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LazyFinder(names))
