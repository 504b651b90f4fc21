"""Regenerate the README's support matrix from the op registries: python tools/update_readme.py"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def generated(text: str) -> str:
    from qonvert.converters import FRONTENDS
    from qonvert.converters.registry import support_matrix

    # Ops a reader rewrites into others before mapping (Paddle's legacy fake-quant ops).
    extra = {
        name: "\n| quant (rewritten) | " + ", ".join(f"`{n}`" for n in f.rewritten_ops) + " |" for name, f in FRONTENDS.items() if f.rewritten_ops
    }

    def block(m: re.Match[str]) -> str:
        return f"{m.group(1)}\n{support_matrix(m.group(2))}{extra.get(m.group(2), '')}\n{m.group(3)}"

    # a block: its marker, the lines between (none is a marker), the end marker
    return re.sub(r"(<!-- support:(\w+) -->)\n(?:(?!<!-- ).*\n)*(<!-- /support -->)", block, text)


if __name__ == "__main__":
    text = README.read_text()
    new = generated(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
