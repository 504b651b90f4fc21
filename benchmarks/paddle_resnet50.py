"""ResNet-50 (paddle.vision, 25.6M parameters) quantized by Paddle 3.3.1, converted by qonvert and by
the Paddle2ONNX anchors; one table: conversion time, peak RSS, fidelity against Paddle's own
outputs, ORT CPU fusion, ORT CPU latency against the fp32 model.

    python benchmarks/paddle_resnet50.py [--models DIR] [--runs N] [--rounds R]
        [--p2o-210 VENV] [--p2o-131 VENV]     # virtual envs with paddle2onnx 2.1.0 / 1.3.1

Models are made (once) into DIR by fixtures/paddle/make_fixtures.py: `ptq_resnet50_legacy`
(static PTQ, onnx_format=True, with its fp32 model in fp32/) and `qat_resnet50_legacy`
(QAT, per-channel weights). Set the anchors up with benchmarks/setup_anchors.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures" / "paddle"))

import make_fixtures  # noqa: E402
from measure import interleaved_latency, run_measured  # noqa: E402

from qonvert.api import verify  # noqa: E402
from qonvert.runtime.ort import fusion_report, session  # noqa: E402

_QONVERT_CHILD = """
import sys, time, json
t0 = time.perf_counter()
import qonvert
t1 = time.perf_counter()
speed = {"speed": True, "calibration": sys.argv[4]} if len(sys.argv) > 4 else {}
qonvert.convert(sys.argv[1], sys.argv[2], observers=sys.argv[3], **speed)
print(json.dumps({"import_s": t1 - t0, "convert_s": time.perf_counter() - t1}))
"""
# The memory anchors, in the same run: the interpreter with qonvert imported, and with it an ORT
# session of a one-op model run once (what any form that runs ORT, the calibration, starts from).
_INTERPRETER = "import qonvert.cli"
_INTERPRETER_ORT = """
import numpy as np, onnx.helper as h, qonvert.cli
from qonvert.runtime.ort import run, session
x = h.make_tensor_value_info("x", 1, [1, 3, 224, 224])
graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x], [h.make_tensor_value_info("y", 1, None)])
run(session(h.make_model(graph, opset_imports=[h.make_opsetid("", 13)]), "cpu", arena=False), {"x": np.zeros((1, 3, 224, 224), np.float32)})
"""


@dataclass
class Row:
    model: str
    tool: str
    ok: bool
    wall_s: float = 0.0
    convert_s: float | None = None  # in-process conversion, interpreter start and imports excluded
    peak_rss_mb: float = 0.0
    model_mb: float = 0.0  # the source program + parameters
    error: str = ""
    max_lsb: float | None = None
    exact_pct: float | None = None
    cosine: float | None = None
    top1: float | None = None
    fused: str = ""
    onnx_path: str = ""  # timed at the end, all rows interleaved
    latency_ms: float | None = None
    spread: str = ""  # lowest-highest of the per-round medians
    speedup: float | None = None
    saturated: str = ""  # speed form: elements past 127 steps (where the source saturates)


def measure(row: Row, model_dir: Path, onnx_path: Path) -> Row:
    try:
        report = verify(model_dir, str(onnx_path), reference=model_dir / "reference.npz", fusion=False)
        out = report.outputs[0]
        row.max_lsb, row.exact_pct, row.cosine, row.top1 = out.max_diff_lsb, out.pct_exact, out.cosine, out.top1_agreement
        row.saturated = next((r.split("(")[1].split(")")[0] for r in report.remarks if r.startswith("speed form:")), "")
        fusion = fusion_report(onnx.load(str(onnx_path)))
        row.fused = f"{fusion.fused}/{fusion.quantized_in_source}"
        session(onnx.load(str(onnx_path)), "cpu")  # loads and runs on ORT CPU
        row.onnx_path = str(onnx_path)
    except Exception as exc:  # an anchor's output ORT cannot load or run: show it
        row.ok, row.error = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return row


def qonvert_row(model: str, model_dir: Path, out: Path, observers: str, calibration: Path | None = None) -> tuple[Row, bool]:
    cmd = [sys.executable, "-c", _QONVERT_CHILD, str(model_dir), str(out), observers] + ([str(calibration)] if calibration else [])
    code, wall, rss, text = run_measured(cmd)
    tool = f"qonvert (`--observers {observers}`)" if "ptq" in model else "qonvert"
    row = Row(model, tool + (" `--speed --calibration`" if calibration else ""), code == 0, wall, peak_rss_mb=rss)
    if code == 0:
        row.convert_s = json.loads(text.strip().splitlines()[-1])["convert_s"]
    else:
        row.error = text.strip().splitlines()[-1][:160] if text.strip() else f"exit {code}"
    return row, code == 0


def paddle2onnx_row(model: str, model_dir: Path, out: Path, venv: Path, version: str) -> tuple[Row, bool]:
    cmd = [str(venv / "bin" / "paddle2onnx"), "--model_dir", str(model_dir), "--model_filename", "model.pdmodel"]
    cmd += ["--params_filename", "model.pdiparams", "--save_file", str(out), "--opset_version", "13"]
    if version == "1.3.1":
        cmd += ["--deploy_backend", "onnxruntime"]
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="3")
    code, wall, rss, text = run_measured(cmd, env)
    ok = code == 0 and out.is_file()
    last = [line for line in text.strip().splitlines() if line.strip()][-1:] or [f"exit {code}"]
    row = Row(model, f"Paddle2ONNX {version}", ok, wall, peak_rss_mb=rss, error="" if ok else f"exit {code}: {last[0][:140]}")
    return row, ok


def model_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix in (".pdmodel", ".pdiparams"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=ROOT / "benchmarks" / "models")
    ap.add_argument("--runs", type=int, default=20, help="runs per model per round")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of interleaved timing")
    ap.add_argument("--p2o-210", type=Path, default=ROOT / "benchmarks" / ".venv-p2o-2.1.0")
    ap.add_argument("--p2o-131", type=Path, default=ROOT / "benchmarks" / ".venv-p2o-1.3.1")
    ap.add_argument("--only", nargs="+", default=["ptq_resnet50_legacy", "qat_resnet50_legacy"], help="these models only")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="qonvert-bench-"))
    # Calibration for the speed form: 16 inputs of the recorded inputs' distribution, other seed.
    calibration = work / "calibration.npz"
    np.savez(calibration, x=np.random.default_rng(7).standard_normal((16, 3, 224, 224)).astype(np.float32))
    for model in args.only:
        model_dir = args.models / model
        if not (model_dir / "reference.npz").is_file():
            print(f"making {model} with paddlepaddle (minutes) ...", flush=True)
            make_fixtures.make(model, model_dir)
        if (model_dir / "fp32").is_dir():
            fp32_onnx = work / f"{model}_fp32.onnx"
            cmd = [sys.executable, "-m", "qonvert", "convert", str(model_dir / "fp32"), "-o", str(fp32_onnx)]
            subprocess.run(cmd, check=True, capture_output=True)
            rows.append(Row(model, "fp32 (qonvert of the float model)", True, onnx_path=str(fp32_onnx)))
        observer_modes = ("skip", "quantize") if "ptq" in model else ("skip",)
        for observers in observer_modes:
            for speed in (None, calibration):
                out = work / f"{model}_qonvert_{observers}{'_speed' if speed else ''}.onnx"
                row, ok = qonvert_row(model, model_dir, out, observers, speed)
                rows.append(measure(row, model_dir, out) if ok else row)
        for version, venv in (("2.1.0", args.p2o_210), ("1.3.1", args.p2o_131)):
            if not (venv / "bin" / "paddle2onnx").is_file():
                rows.append(Row(model, f"Paddle2ONNX {version}", False, error=f"not installed in {venv} (benchmarks/setup_anchors.sh)"))
                continue
            out = work / f"{model}_p2o_{version}.onnx"
            row, ok = paddle2onnx_row(model, model_dir, out, venv, version)
            rows.append(measure(row, model_dir, out) if ok else row)
        for r in rows:
            r.model_mb = r.model_mb or model_bytes(model_dir) / 1e6
        print(f"{model}: {model_bytes(model_dir) / 1e6:.1f} MB of program + parameters", flush=True)
    codes = {"interpreter": _INTERPRETER, "with ORT": _INTERPRETER_ORT}
    anchors = {name: min(run_measured([sys.executable, "-c", code])[2] for _ in range(3)) for name, code in codes.items()}
    print(f"peak RSS: interpreter (import qonvert.cli) {anchors['interpreter']:.0f} MB, with an ORT session run {anchors['with ORT']:.0f} MB")
    for model in args.only:
        twice = 2 * model_bytes(args.models / model) / 1e6
        print(f"{model}: bar interpreter + 2x model {anchors['interpreter'] + twice:.0f} MB; with ORT {anchors['with ORT'] + twice:.0f} MB")
    timed = {f"{i}": r.onnx_path for i, r in enumerate(rows) if r.onnx_path}
    print(f"timing {len(timed)} models interleaved: {args.rounds} rounds x {args.runs} runs ...", flush=True)
    latency = interleaved_latency(timed, args.rounds, args.runs)
    fp32_ms = next(latency[k][0] for k, p in timed.items() if rows[int(k)].tool.startswith("fp32"))
    for key, (median, low, high) in latency.items():
        row = rows[int(key)]
        row.latency_ms, row.spread, row.speedup = median, f"{low:.1f}-{high:.1f}", fp32_ms / median
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_table(rows: list[Row]) -> None:
    head = "| model | tool | converts | wall s | convert s | peak RSS MB (x model) | max LSB | exact % | cosine | top-1 | past 127 "
    head += "| fused | ORT ms (spread) | vs fp32 |"
    print(head)
    print("|" + "---|" * 14)
    for r in rows:
        conv = "yes" if r.ok else f"NO: {r.error}"
        rss = f"{r.peak_rss_mb:.0f} ({r.peak_rss_mb / r.model_mb:.1f}x)" if r.peak_rss_mb else "-"
        print(
            f"| {r.model} | {r.tool} | {conv} | {_f(r.wall_s or None, '.2f')} | {_f(r.convert_s, '.2f')} | {rss} "
            f"| {_f(r.max_lsb, '.2f')} | {_f(r.exact_pct, '.1f')} | {_f(r.cosine, '.4f')} | {_f(r.top1, '.2f')} | {r.saturated or '-'} "
            f"| {r.fused or '-'} | {_f(r.latency_ms, '.1f')} ({r.spread or '-'}) | {_f(r.speedup, '.2f')}x |"
        )


if __name__ == "__main__":
    main()
