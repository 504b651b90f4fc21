"""What a conversion imports: SymPy (0.2-0.3 s, half of qonvert's import time, pulled in by
onnx_ir 1.1) stays unloaded through a whole conversion, and is the real module for whoever uses it;
of the tflite schema package, only the classes a conversion reads are imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tflite" / "mobilenet_v2_int8.tflite"


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_conversion_never_loads_sympy(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    code = (
        "import sys, qonvert.cli\n"
        f"assert qonvert.cli.main(['convert', {str(FIXTURE)!r}, '-o', {str(out)!r}]) == 0\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sympy.'))\n"
        "print(len(loaded), loaded[:3])\n"
    )
    assert _run(code).splitlines()[-1] == "0 []"
    assert out.stat().st_size > 1000


def test_sympy_loads_on_first_use() -> None:
    """onnx_ir's symbolic dimension arithmetic and SymPy's own users see the real module."""
    code = (
        "import qonvert, onnx_ir as ir, sys\n"
        "assert 'sympy.polys' not in sys.modules\n"
        "d = ir.SymbolicDim('N + 1') * 2\n"
        "import sympy\n"
        "from sympy import Max\n"
        "print(d, Max(1, 2), 'sympy.polys' in sys.modules)\n"
    )
    assert _run(code) == "2*N + 2 2 True"


def test_torch_after_qonvert() -> None:
    """torch imports SymPy's submodules at its own import: the deferred module must be whole."""
    code = "import qonvert, torch, torch.fx.experimental.symbolic_shapes as s, sympy\nprint(type(sympy.Integer(3)).__name__)\n"
    assert _run(code) == "Integer"


def test_tflite_schema_modules_load_as_read(tmp_path: Path) -> None:
    """A .tflite conversion imports the schema classes it reads, not the package's ~190 modules; a
    later `import tflite` sees the whole schema through the same module."""
    out = tmp_path / "m.onnx"
    code = (
        "import sys, qonvert.cli\n"
        f"assert qonvert.cli.main(['convert', {str(FIXTURE)!r}, '-o', {str(out)!r}]) == 0\n"
        "print(len([m for m in sys.modules if m.startswith('tflite.')]))\n"
        "import tflite\n"
        "print(tflite.BuiltinOperator.CONV_2D, tflite.Model.__name__, tflite.Conv3DOptions.__name__)\n"
        "try:\n    tflite.NoSuchClass\nexcept AttributeError:\n    print('AttributeError')\n"
    )
    count, names, missing = _run(code).splitlines()[-3:]
    assert 5 < int(count) < 60
    assert names == "3 Model Conv3DOptions" and missing == "AttributeError"
