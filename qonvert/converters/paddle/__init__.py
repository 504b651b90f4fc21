"""Paddle frontend: PIR (.json) and ProgramDesc (.pdmodel) programs with .pdiparams."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ..source import SourceGraph
from . import ops  # noqa: F401  (registers the mappers)
from .legacy import read_legacy
from .pir import read_pir
from .quant import normalise_fake_ops, resolve_observers

PROGRAM_SUFFIXES = (".json", ".pdmodel")


def find_program(path: Path) -> Path | None:
    """A program file from a file, a directory holding one, or a path prefix."""
    if path.is_file() and path.suffix in PROGRAM_SUFFIXES:
        return path
    if path.is_file() and path.suffix == ".pdiparams":
        path = path.with_suffix("")
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in PROGRAM_SUFFIXES and p.is_file())
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputError(f"{path}: several Paddle programs ({names}); name one")
        return found[0] if found else None
    for suffix in PROGRAM_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def load(path: Path, observers: str = "skip") -> SourceGraph:
    program = find_program(path)
    if program is None:
        raise InputError(f"{path}: no Paddle program (.json or .pdmodel) found")
    params = program.with_suffix(".pdiparams")
    reader = read_pir if program.suffix == ".json" else read_legacy
    graph = reader(program, params if params.is_file() else None)
    graph.make_ssa()
    normalise_fake_ops(graph)
    resolve_observers(graph, observers)
    return graph
