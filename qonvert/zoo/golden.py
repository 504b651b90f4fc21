"""Golden per-model reports: a run is compared with them and what got worse is a regression."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SLOWER_FACTOR = 3.0  # conversion slower than golden by more than this (and 0.5 s) is a regression
EXACT_DROP = 1.0  # percentage points of exact outputs


def regressions(result: dict[str, Any], golden: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if golden.get("status") == "pass" and result.get("status") != "pass":
        found.append(f"status {golden['status']} -> {result.get('status')}")
    ours = {o["name"]: o for o in (result.get("verify") or {}).get("outputs", [])}
    for g in (golden.get("verify") or {}).get("outputs", []):
        o = ours.get(g["name"])
        if o is None:
            found.append(f"output {g['name']!r} is gone")
            continue
        if o["max_diff_lsb"] > g["max_diff_lsb"] + 1e-6:
            found.append(f"{g['name']}: max {g['max_diff_lsb']:.3g} -> {o['max_diff_lsb']:.3g} LSB")
        if o["pct_exact"] < g["pct_exact"] - EXACT_DROP:
            found.append(f"{g['name']}: exact {g['pct_exact']:.1f}% -> {o['pct_exact']:.1f}%")
    gf, f = golden.get("fusion"), result.get("fusion")
    if gf and f:
        if f["coverage"] < gf["coverage"] - 1e-9:
            found.append(f"integer kernels {gf['coverage']:.0%} -> {f['coverage']:.0%}")
        new_float = sorted(set(_ops(f["float_ops"])) - set(_ops(gf["float_ops"])))
        if new_float:
            found.append(f"new float ops: {', '.join(new_float[:5])}")
    gs, s = golden.get("convert_s"), result.get("convert_s")
    if gs and s and s > gs * SLOWER_FACTOR and s - gs > 0.5:
        found.append(f"conversion {gs:.2f} s -> {s:.2f} s")
    return found


def _ops(reasons: list[str]) -> list[str]:
    return [r.split(":", 1)[0] for r in reasons]


def load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save(directory: Path, result: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in result.items() if k not in ("regressions", "peak_rss_mb", "source")}
    (directory / f"{result['name']}.json").write_text(json.dumps(keep, indent=1, sort_keys=True) + "\n")
