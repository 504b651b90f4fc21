"""The zoo manifest (TOML): one [[models]] table per entry.

[[models]]
name = "mobilenet_v2_int8"              # required, unique
source = "tflite/mobilenet_v2_int8.tflite"  # required, relative to the manifest
framework = "tflite"                    # optional: detected from the file otherwise
options = { nchw_io = false }           # the frontend's options (observers, nchw_io, engine, input_shapes, ...) and opset
target = "litert-exact"                 # optional: convert to this target's form (verify then takes its defaults)
inputs = "inputs.npz"                   # optional recorded inputs (or reference = "ref.npz")
input_shapes = { x = [1, 3, 64, 64] }   # shapes for dynamic inputs
output_kinds = { landmarks = "regression" }  # what an output is, where its shape does not say it
samples = 20
make = "python make.py"                 # optional: run (in the manifest's folder) before converting
timeout_s = 600
memory_mb = 8192                        # address space the entry may add (RLIMIT_AS on its worker)
[models.expect]                         # what passing means for this entry
max_lsb = 1.0
min_exact = 60.0                        # % of outputs exact
top1 = 1.0
min_coverage = 1.0                      # fraction of quantized Conv/MatMul/Gemm as integer kernels
max_float_ops = 0
min_levels = 2                          # levels every reference output spans (default 2: not constant)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..errors import InputError
from ..targets import TARGET_NAMES


def _option_types() -> dict[str, type]:
    """Every frontend's options (converters.FRONTENDS) that TOML can hold, with their types."""
    import dataclasses
    import typing

    from ..converters import FRONTENDS

    types: dict[str, type] = {"opset": int}
    for frontend in FRONTENDS.values():
        hints = typing.get_type_hints(frontend.options_type)
        for fld in dataclasses.fields(frontend.options_type):
            kinds = [k for k in typing.get_args(hints[fld.name]) or (hints[fld.name],) if k is not type(None)]
            kind = typing.get_origin(kinds[0]) or kinds[0]
            if kind in (bool, str, int, float, dict):
                types[fld.name] = kind
    return types


_EXPECT = {"max_lsb": float, "min_exact": float, "top1": float, "min_coverage": float, "max_float_ops": int, "min_levels": int}
_KEYS = {
    *("name", "source", "framework", "options", "inputs", "reference", "input_shapes", "output_kinds"),
    *("samples", "make", "timeout_s", "memory_mb", "expect", "target"),
}


@dataclass
class ZooEntry:
    name: str
    source: Path
    framework: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    inputs: Path | None = None
    reference: Path | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    samples: int = 20
    output_kinds: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    make: str | None = None
    timeout_s: float = 600.0
    memory_mb: int = 8192
    expect: dict[str, float] = field(default_factory=lambda: {"max_lsb": 1.0})
    root: Path = Path(".")  # the manifest's folder: `make` runs there


def load_manifest(path: Path) -> list[ZooEntry]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise InputError(f"{path}: expected one or more [[models]] tables")
    entries: list[ZooEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(models):
        entry = _entry(path, i, raw)
        if entry.name in seen:
            raise InputError(f"{path}: entry {entry.name!r}: the name is used twice")
        seen.add(entry.name)
        entries.append(entry)
    return entries


def _entry(path: Path, index: int, raw: Any) -> ZooEntry:
    where = f"{path}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: key 'name' is required (a non-empty string)")
    where = f"{path}: entry {name!r}"
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    source = raw.get("source")
    if not isinstance(source, str) or not source:
        raise InputError(f"{where}: key 'source' is required (a path)")
    root = path.parent.resolve()
    entry = ZooEntry(name=name, source=root / source, root=root)
    entry.framework = _typed(where, raw, "framework", str, None)
    entry.options = _table(where, raw.get("options", {}), "options", _option_types())
    for key in ("inputs", "reference"):
        value = _typed(where, raw, key, str, None)
        setattr(entry, key, root / value if value else None)
    shapes = raw.get("input_shapes", {})
    if not isinstance(shapes, dict) or not all(isinstance(v, list) and all(isinstance(d, int) and d > 0 for d in v) for v in shapes.values()):
        raise InputError(f"{where}: key 'input_shapes' must map input names to lists of positive integers")
    entry.input_shapes = shapes
    kinds = raw.get("output_kinds", {})
    if not isinstance(kinds, dict) or not all(isinstance(v, str) for v in kinds.values()):
        raise InputError(f"{where}: key 'output_kinds' must map output names to kinds (classifier, sequence, map, regression)")
    entry.output_kinds = kinds
    entry.target = _typed(where, raw, "target", str, None)
    if entry.target is not None and entry.target not in TARGET_NAMES:
        raise InputError(f"{where}: target {entry.target!r}: expected one of {', '.join(TARGET_NAMES)}")
    entry.samples = _typed(where, raw, "samples", int, 20)
    entry.make = _typed(where, raw, "make", str, None)
    entry.timeout_s = float(_typed(where, raw, "timeout_s", (int, float), 600))
    entry.memory_mb = _typed(where, raw, "memory_mb", int, 8192)
    if entry.samples < 1 or entry.timeout_s <= 0 or entry.memory_mb < 64:
        raise InputError(f"{where}: samples, timeout_s and memory_mb must be positive (memory_mb >= 64)")
    entry.expect = {"max_lsb": 1.0, "min_levels": 2, **_table(where, raw.get("expect", {}), "expect", _EXPECT)}
    return entry


def _typed(where: str, raw: dict[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = raw.get(key, default)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise InputError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def _table(where: str, value: Any, key: str, allowed: dict[str, type]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: key {key!r} must be a table")
    out = {}
    for k, v in value.items():
        if k not in allowed:
            raise InputError(f"{where}: unknown key '{key}.{k}' (known: {', '.join(allowed)})")
        kind = allowed[k]
        ok = (isinstance(v, kind) and not (isinstance(v, bool) and kind is not bool)) or (
            kind is float and isinstance(v, int) and not isinstance(v, bool)
        )
        if not ok:
            raise InputError(f"{where}: key '{key}.{k}' must be {kind.__name__}")
        out[k] = v
    return out
