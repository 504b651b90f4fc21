"""The PyTorch anchors: the fixture architectures (fixtures/torch/make_fixtures.py) made at a real
input size and quantized by PT2E, converted by qonvert and by torch.onnx.export (dynamo=False, the
TorchScript exporter, and dynamo=True); one table: which routes convert, conversion wall time and
peak RSS, fidelity against PyTorch run live, ORT CPU integer kernels, and latency against the fp32
model (the same calibrated float model exported by torch.onnx).

    python benchmarks/torch_models.py [--size 224] [--runs N]   # dynamo=True needs onnxscript (pip install onnxscript)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured

from qonvert.api import random_inputs, verify
from qonvert.runtime import refio
from qonvert.runtime.ort import fusion_report, session

HERE = Path(__file__).resolve().parent

CASES = [(m, r) for m in ("resnet", "mobilenet", "transformer") for r in ("x86", "xnnpack_pc")]

# torch.onnx in a child process, as a user runs it: the ExportedProgram (dynamo) or its module (TorchScript exporter).
_TORCH_ONNX = """
import sys, warnings, torch
import torch.ao.quantization.fx._decomposed
warnings.filterwarnings("ignore")
src, dst, dynamo = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
program = torch.export.load(src)
inputs = program.graph_signature.user_inputs
example = tuple(torch.zeros(tuple(n.meta["val"].shape)) for n in program.graph.nodes if n.op == "placeholder" and n.name in inputs)
if dynamo:
    torch.onnx.export(program, example, dst, dynamo=True)
else:
    torch.onnx.export(program.module(), example, dst, dynamo=False, input_names=["x"])
"""

_FLOAT = """
import sys, torch, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[3])
import make_fixtures
make_fixtures.resize(int(sys.argv[4]))
model, shape = make_fixtures.calibrated_float(sys.argv[1])
torch.onnx.export(model, (torch.zeros(*shape),), sys.argv[2], dynamo=False, input_names=["x"])
"""
_PT2E = """
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[4])
from pathlib import Path
import make_fixtures
make_fixtures.resize(int(sys.argv[3]))
make_fixtures.make(sys.argv[1], sys.argv[2], Path(sys.argv[5]))
"""


def latency_ms(path: Path, runs: int) -> float:
    sess = session(onnx.load(str(path)), "cpu")
    feed = {
        i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in sess.get_inputs()
    }
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def convert(tool: str, src: Path, dst: Path) -> tuple[int, float, float, str]:
    if tool == "qonvert":
        return run_measured([sys.executable, "-m", "qonvert", "convert", str(src), "-o", str(dst)])
    return run_measured([sys.executable, "-c", _TORCH_ONNX, str(src), str(dst), "1" if tool == "torch.onnx dynamo" else "0"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--size", type=int, default=224, help="image side for the CNNs (sequence length 8 x size/4 for the transformer)")
    args = parser.parse_args()
    rows = []
    scripts = str(HERE.parent / "fixtures" / "torch")
    with tempfile.TemporaryDirectory() as tmp:
        for model, route in CASES:
            src = Path(tmp) / f"{model}_{route}.pt2"
            code, _, _, text = run_measured([sys.executable, "-c", _PT2E, model, route, str(args.size), scripts, tmp])
            if code:
                raise SystemExit(f"making {src.name} failed: {text[-300:]}")
            fp32 = Path(tmp) / f"{model}_fp32.onnx"
            if not fp32.exists():
                code, _, _, text = run_measured([sys.executable, "-c", _FLOAT, model, str(fp32), scripts, str(args.size)])
                if code:
                    raise SystemExit(f"the fp32 export failed: {text[-300:]}")
            fp32_ms = latency_ms(fp32, args.runs)
            inputs = Path(tmp) / f"{model}_{route}_inputs.npz"
            for tool in ("qonvert", "torch.onnx TorchScript", "torch.onnx dynamo"):
                out = Path(tmp) / f"{model}_{route}_{tool.replace(' ', '_')}.onnx"
                code, wall, rss, text = convert(tool, src, out)
                row = {"model": f"{model} {route}", "tool": tool, "wall_s": wall, "rss_mb": rss, "fp32_ms": fp32_ms}
                if code or not out.exists():
                    lines = [line for line in text.strip().splitlines() if line.strip()]
                    row["error"] = (lines[-1] if lines else f"exit {code}")[:110]
                    rows.append(row)
                    print(row, file=sys.stderr)
                    continue
                if not inputs.exists():
                    refio.save(inputs, random_inputs(onnx.load(str(out)), args.samples), None, [])
                try:
                    rep = verify(src, str(out), inputs=inputs, fusion=False)
                except Exception as exc:  # a converter's output ORT cannot run is a finding too
                    row["error"] = f"converts, ORT/verify fails: {str(exc).splitlines()[0][:90]}"
                    rows.append(row)
                    continue
                o = max(rep.outputs, key=lambda x: x.max_diff_lsb)
                fusion = fusion_report(onnx.load(str(out)))
                ms = latency_ms(out, args.runs)
                row.update(max_lsb=o.max_diff_lsb, exact=o.pct_exact, top1=o.top1_agreement, fused=fusion.fused, ms=ms, speedup=fp32_ms / ms)
                rows.append(row)
                print(row, file=sys.stderr)
    print(
        "| model (PT2E quantizer) | converter | convert wall | peak RSS | max diff vs PyTorch | exact | top-1 "
        "| ORT integer kernels | ORT CPU ms | vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['tool']} | failed ({r['wall_s']:.1f} s): {r['error']} |")
            continue
        top1 = "-" if r["top1"] is None else f"{r['top1']:.2f}"
        print(
            f"| {r['model']} | {r['tool']} | {r['wall_s']:.2f} s | {r['rss_mb']:.0f} MB | {r['max_lsb']:.2f} LSB | {r['exact']:.1f}% | {top1} "
            f"| {r['fused']} | {r['ms']:.2f} (fp32 {r['fp32_ms']:.2f}) | {r['speedup']:.2f}x |"
        )


if __name__ == "__main__":
    main()
