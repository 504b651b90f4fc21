"""Regenerates docs/report.png, the README's picture of a real report: runs the headless-Chromium
test of the HTML report (tests/test_html_report.py: MTCNN's ONet with its trained weights,
FX-quantized for x86, verified per layer on face crops by the spread bar), which saves its
screenshot to test-artifacts/, and copies it here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    test = "tests/test_html_report.py::test_page_renders_in_headless_chromium"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, check=True)
    shutil.copyfile(ROOT / "test-artifacts" / "report.png", ROOT / "docs" / "report.png")
    print("wrote docs/report.png")
