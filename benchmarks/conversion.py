"""Whole-process conversion: wall time and peak RSS of `qonvert convert`, against tf2onnx on the
same .tflite files, and peak RSS against the model's bytes for the Paddle models (issue 12 parts
2 and 3). Every figure is of a fresh process: interpreter start, imports, conversion, exit.

    python benchmarks/conversion.py --python FRESH/.venv/bin/python [--models benchmarks/models]
        [--tf-venv /work/.venv-tf] [--repeats 7]

Measured as a user installs: FRESH is a clone with a virtual environment made by the README's first
command (`pip install -e ".[paddle]"`), run with the user's defaults (bytecode written on the first
run: the first conversion is timed apart, the rest run on what it wrote; no compile step of ours).
Every run, of either tool, writes a path that does not exist yet (replacing a 26 MB file costs
this file system about 40 ms more, for any tool). "interpreter" = the peak RSS of
`import qonvert.cli` alone; the memory target is peak <= interpreter + 2x the model's bytes.
small_cnn (a committed 12 KB fixture) shows the fixed cost of any conversion (the modules a
conversion loads, ONNX's C++ schema tables): the last column is the rest, over that floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], output: Path) -> float:
    output.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # a user's default
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {(done.stdout + done.stderr).strip()[-300:]}")
    return wall


def _timed(cmd: list[str], output: Path, repeats: int) -> tuple[float, float, float]:
    """(fastest wall s, median wall s, peak RSS MB): the wall times of `repeats` runs started
    directly, the peak RSS of one more through measure's launcher (whose own interpreter start
    would count in a wall time taken through it)."""
    walls = [_run(cmd, output) for _ in range(repeats)]
    output.unlink(missing_ok=True)
    _, _, peak, _ = run_measured(cmd)
    return min(walls), statistics.median(walls), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "benchmarks" / "models")
    parser.add_argument("--tf-venv", type=Path, default=Path("/work/.venv-tf"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="the fresh install's interpreter")
    args = parser.parse_args()
    python = str(args.python)
    where = subprocess.run([python, "-c", "import qonvert; print(qonvert.__file__)"], capture_output=True, text=True, check=True)
    package = Path(where.stdout.strip()).parent
    for cache in package.rglob("__pycache__"):
        shutil.rmtree(cache)  # as installed: the first run writes the bytecode
    small = ROOT / "fixtures" / "tflite" / "small_cnn_int8.tflite"
    first = _run([python, "-m", "qonvert", "convert", str(small), "-o", "/tmp/first.onnx"], Path("/tmp/first.onnx"))
    _, _, interpreter = _timed([python, "-c", "import qonvert.cli"], Path("/nonexistent"), 3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tflite = {
            "resnet50_224_int8": args.models / "tflite" / "resnet50_224_int8.tflite",
            "mobilenet_v2_224_int8": args.models / "tflite" / "mobilenet_v2_224_int8.tflite",
            "small_cnn_int8": ROOT / "fixtures" / "tflite" / "small_cnn_int8.tflite",  # the fixed cost
        }
        for name, src in tflite.items():
            if not src.is_file():
                continue
            size = src.stat().st_size / 1e6
            ours = _timed([python, "-m", "qonvert", "convert", str(src), "-o", f"{tmp}/q.onnx"], Path(tmp) / "q.onnx", args.repeats)
            tf2onnx = [str(args.tf_venv / "bin" / "python"), "-m", "tf2onnx.convert", "--tflite", str(src), "--output", f"{tmp}/t.onnx"]
            theirs = _timed([*tf2onnx, "--opset", "13"], Path(tmp) / "t.onnx", 3) if args.tf_venv.is_dir() else None
            rows.append((name, size, ours, theirs))
        for name in ("ptq_resnet50_legacy", "qat_resnet50_legacy"):
            model = args.models / name
            if not (model / "model.pdiparams").is_file():
                continue
            size = sum(p.stat().st_size for p in model.iterdir() if p.suffix in (".pdmodel", ".pdiparams")) / 1e6
            ours = _timed([python, "-m", "qonvert", "convert", str(model / "model"), "-o", f"{tmp}/p.onnx"], Path(tmp) / "p.onnx", args.repeats)
            rows.append((name, size, ours, None))
    print(f"{python}: first conversion after install (writes bytecode, small_cnn): {first:.2f} s")
    print(f"interpreter (import qonvert.cli): {interpreter:.0f} MB peak RSS; {args.repeats} conversions per row, tf2onnx 3")
    print(
        "| model | MB | qonvert wall s, best (median) | tf2onnx 1.17 wall s, best (median) | faster "
        "| peak RSS MB | (peak - interpreter) / model bytes | (peak - small_cnn's) / model bytes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    floor = next(r[2][2] for r in rows if r[0] == "small_cnn_int8")
    for name, size, (best, median, rss), theirs in rows:
        anchor = f"{theirs[0]:.2f} ({theirs[1]:.2f})" if theirs else "-"
        ratio = f"{theirs[0] / best:.1f}x" if theirs else "-"
        over = "- | -" if name == "small_cnn_int8" else f"{(rss - interpreter) / size:.2f}x | {(rss - floor) / size:.2f}x"
        print(f"| {name} | {size:.2f} | {best:.3f} ({median:.3f}) | {anchor} | {ratio} | {rss:.0f} | {over} |")


if __name__ == "__main__":
    main()
