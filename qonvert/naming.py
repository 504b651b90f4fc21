"""The one rule for making a name unique: `base`, else `base_1`, `base_2`, ..."""

from __future__ import annotations

from collections.abc import Container


def unique_name(base: str, taken: Container[str | None], sep: str = "_") -> str:
    """`base`, or `base{sep}N` for the first N >= 1 that `taken` does not hold (the caller records it)."""
    name, i = base, 1
    while name in taken:
        name, i = f"{base}{sep}{i}", i + 1
    return name
