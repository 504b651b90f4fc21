"""One registry of op mappers, keyed by (framework, source op name).

A mapper is a pure function ``(ctx, op) -> Value | sequence of Values`` that builds through
``ctx``; the dispatcher binds what it returns to the op's outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from ..opsets import versions

if TYPE_CHECKING:
    from .context import ConversionContext, MapperResult
    from .source import SourceOp

Mapper: TypeAlias = "Callable[[ConversionContext, SourceOp], MapperResult]"

_REGISTRY: dict[tuple[str, str], Mapper] = {}
_OPSETS: dict[tuple[str, str], int] = {}  # the opset a mapper's ONNX ops need, where above 13
# A framework's fallback: a resolver giving a mapper for op names no registered mapper owns
# (PyTorch: torchlib's aten table), and the opset its ops need.
_FALLBACKS: dict[str, tuple[Callable[[str], Mapper | None], int]] = {}
_FALLBACK_LISTINGS: dict[str, tuple[str, Callable[[], list[str]]]] = {}  # (what it is, the ops it takes)


def register(framework: str, *op_names: str, opset: int = versions.MIN_OPSET) -> Callable[[Mapper], Mapper]:
    """Register a mapper for one or more source op names (aliases across format versions);
    `opset`: the lowest opset that has the ONNX ops it emits, from the table (versions.first_opset)."""

    def wrap(fn: Mapper) -> Mapper:
        for name in op_names:
            key = (framework, name)
            if key in _REGISTRY:
                raise RuntimeError(f"duplicate mapper for {framework} op {name!r}")
            _REGISTRY[key] = fn
            _OPSETS[key] = opset
        return fn

    return wrap


def register_fallback(framework: str, resolver: Callable[[str], Mapper | None], opset: int, about: str, listing: Callable[[], list[str]]) -> None:
    """Mappers for the ops of `framework` that no registered mapper owns, resolved by name;
    `about` and `listing` (every op name it takes) go into the support matrix."""
    _FALLBACKS[framework] = (resolver, opset)
    _FALLBACK_LISTINGS[framework] = (about, listing)


def required_opset(framework: str, op_names: set[str]) -> int:
    """The opset a graph of these source ops needs: the conversion picks it before mapping."""
    return max([versions.MIN_OPSET, *(_opset(framework, n) for n in op_names)])


def _opset(framework: str, op_name: str) -> int:
    if (framework, op_name) in _OPSETS:
        return _OPSETS[(framework, op_name)]
    fallback = _FALLBACKS.get(framework)
    return fallback[1] if fallback is not None and fallback[0](op_name) is not None else versions.MIN_OPSET


def lookup(framework: str, op_name: str) -> Mapper | None:
    """The mapper of an op: its own, else the framework's fallback's, else None."""
    mapper = _REGISTRY.get((framework, op_name))
    if mapper is None and framework in _FALLBACKS:
        mapper = _FALLBACKS[framework][0](op_name)
    return mapper


def is_fallback(framework: str, op_name: str) -> bool:
    return (framework, op_name) not in _REGISTRY and lookup(framework, op_name) is not None


def mappers(framework: str) -> dict[str, Mapper]:
    return {name: fn for (fw, name), fn in _REGISTRY.items() if fw == framework}


def support_matrix(framework: str) -> str:
    """A markdown table of the supported source ops, one row per mapper (aliases together),
    with the module (op family) that holds it. The README's matrix is this text."""
    groups: dict[Mapper, list[str]] = {}
    for name, fn in sorted(mappers(framework).items()):
        groups.setdefault(fn, []).append(name)
    rows = sorted((fn.__module__.rsplit(".", 1)[-1], ", ".join(f"`{n}`" for n in names)) for fn, names in groups.items())
    lines = ["| family | source ops |", "|---|---|"]
    lines += [f"| {family} | {names} |" for family, names in rows]
    if framework in _FALLBACK_LISTINGS:
        about, listing = _FALLBACK_LISTINGS[framework]
        taken = [name for name in listing() if name not in _names(groups)]
        lines.append(f"| {about} | {len(taken)} more ops: {', '.join(f'`{n}`' for n in taken)} |")
    return "\n".join(lines)


def _names(groups: dict[Mapper, list[str]]) -> set[str]:
    return {name for names in groups.values() for name in names}
