"""Regenerate the README's support matrix from the op registries: python tools/update_readme.py"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def generated(text: str) -> str:
    import qonvert.converters.paddle
    import qonvert.converters.tflite  # noqa: F401
    from qonvert.converters.paddle.quant import FAKE_DQ, FAKE_Q, FAKE_QDQ
    from qonvert.converters.registry import support_matrix

    # The legacy fake-quant ops are rewritten into quantize/dequantize_linear before mapping.
    extra = {"paddle": "\n| quant (rewritten) | " + ", ".join(f"`{n}`" for n in sorted(FAKE_QDQ | FAKE_Q | FAKE_DQ)) + " |"}

    def block(m: re.Match[str]) -> str:
        return f"{m.group(1)}\n{support_matrix(m.group(2))}{extra.get(m.group(2), '')}\n{m.group(3)}"

    return re.sub(r"(<!-- support:(\w+) -->)\n(?:.*?\n)?(<!-- /support -->)", block, text, flags=re.S)


if __name__ == "__main__":
    text = README.read_text()
    new = generated(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
