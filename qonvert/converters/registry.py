"""One registry of op mappers, keyed by (framework, source op name).

A mapper is a pure function ``(ctx, op) -> Value | sequence of Values`` that builds through
``ctx``; the dispatcher binds what it returns to the op's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from .context import ConversionContext
    from .source import SourceOp

Mapper: TypeAlias = "Callable[[ConversionContext, SourceOp], Any]"

_REGISTRY: dict[tuple[str, str], Callable[..., Any]] = {}
_OPSETS: dict[tuple[str, str], int] = {}  # the opset a mapper's ONNX ops need, where above 13


def register(framework: str, *op_names: str, opset: int = 13) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a mapper for one or more source op names (aliases across format versions);
    `opset`: the lowest opset that has the ONNX ops it emits (HardSwish 14, LayerNormalization 17)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in op_names:
            key = (framework, name)
            if key in _REGISTRY:
                raise RuntimeError(f"duplicate mapper for {framework} op {name!r}")
            _REGISTRY[key] = fn
            _OPSETS[key] = opset
        return fn

    return wrap


def required_opset(framework: str, op_names: set[str]) -> int:
    """The opset a graph of these source ops needs: the conversion picks it before mapping."""
    return max([13, *(_OPSETS.get((framework, n), 13) for n in op_names)])


def lookup(framework: str, op_name: str) -> Callable[..., Any] | None:
    return _REGISTRY.get((framework, op_name))


def supported_ops(framework: str) -> list[str]:
    return sorted(name for fw, name in _REGISTRY if fw == framework)


def mappers(framework: str) -> dict[str, Callable[..., Any]]:
    return {name: fn for (fw, name), fn in _REGISTRY.items() if fw == framework}


def as_outputs(result: Any) -> Sequence[Any]:
    if result is None:
        return ()
    if isinstance(result, (list, tuple)):
        return result
    return (result,)


def support_matrix(framework: str) -> str:
    """A markdown table of the supported source ops, one row per mapper (aliases together),
    with the module (op family) that holds it. The README's matrix is this text."""
    groups: dict[Callable[..., Any], list[str]] = {}
    for name, fn in sorted(mappers(framework).items()):
        groups.setdefault(fn, []).append(name)
    rows = sorted((fn.__module__.rsplit(".", 1)[-1], ", ".join(f"`{n}`" for n in names)) for fn, names in groups.items())
    lines = ["| family | source ops |", "|---|---|"]
    lines += [f"| {family} | {names} |" for family, names in rows]
    return "\n".join(lines)
