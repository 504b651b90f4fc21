"""The README's support matrix is the op registry's (regenerate: python tools/update_readme.py)."""

from __future__ import annotations

import importlib.util
import re

from .conftest import ROOT


def test_support_matrix_matches_registry() -> None:
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "tools" / "update_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert all(f"<!-- support:{name} -->" in text for name in ("paddle", "tflite", "torch"))
    assert module.generated(text) == text, "README support matrix is stale: python tools/update_readme.py"


def test_code_cites_sections_the_design_has() -> None:
    """The code cites docs/design.md by section name: each cited section is a heading there."""
    headings = {line.lstrip("#").strip() for line in (ROOT / "docs" / "design.md").read_text().splitlines() if line.startswith("#")}
    cited = {
        name
        for path in (ROOT / "qonvert").rglob("*.py")
        for match in re.finditer(r"docs/design\.md[^\"]*((?:\"[^\"]+\"(?:,| and | or )?\s*)+)", path.read_text())
        for name in re.findall(r"\"([^\"]+)\"", match.group(1))
    }
    assert len(cited) >= 5 and cited <= headings, cited - headings
