"""MobileNetV2 and ResNet-50 (keras.applications, 224x224, random weights, BatchNorm statistics
re-estimated) made int8 by TFLiteConverter, converted by qonvert and by tf2onnx 1.17; one table:
conversion wall time and peak RSS, fidelity against LiteRT, ORT CPU fusion and latency against
the fp32 model (the fp32 .tflite converted by tf2onnx).

    python benchmarks/tflite_models.py --models DIR --tf-venv VENV [--runs N]

DIR holds <name>_int8.tflite and <name>_fp32.tflite, made by
    VENV/bin/python -c "import sys; sys.path.insert(0, 'fixtures/tflite'); import make_fixtures as m; \\
        from pathlib import Path; [m.make(n, Path('DIR')) for n in ('mobilenet_v2_224', 'resnet50_224')]"
VENV is the fixture environment (fixtures/tflite/setup_venv.sh), where tf2onnx is installed as a user would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import interleaved_latency, run_measured

from qonvert.api import verify
from qonvert.runtime.ort import fusion_report

MODELS = ("mobilenet_v2_224", "resnet50_224")


def convert(tool: str, src: Path, dst: Path, venv: Path) -> tuple[int, float, float, str]:
    if tool == "qonvert":
        return run_measured([sys.executable, "-m", "qonvert", "convert", str(src), "-o", str(dst)])
    return run_measured([str(venv / "bin" / "python"), "-m", "tf2onnx.convert", "--tflite", str(src), "--output", str(dst), "--opset", "13"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--tf-venv", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20, help="runs per model per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of interleaved timing")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="conversions per tool; the table shows the fastest")
    args = parser.parse_args()
    rows = []
    timed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            src = args.models / f"{name}_int8.tflite"
            fp32 = Path(tmp) / f"{name}_fp32.onnx"
            code, _, _, text = convert("tf2onnx", args.models / f"{name}_fp32.tflite", fp32, args.tf_venv)
            if code:
                raise SystemExit(f"tf2onnx failed on the fp32 model: {text[-300:]}")
            timed[f"{name}/fp32"] = str(fp32)
            reference = Path(tmp) / f"{name}_reference.npz"
            for tool in ("qonvert", "tf2onnx"):
                out = Path(tmp) / f"{name}_{tool}.onnx"
                # best of N wall times: the machine's other load only ever adds
                runs = [convert(tool, src, out, args.tf_venv) for _ in range(args.repeats)]
                code, text = runs[-1][0], runs[-1][3]
                wall, rss = min(r[1] for r in runs), max(r[2] for r in runs)
                row = {"model": name, "tool": tool, "wall_s": wall, "rss_mb": rss}
                if code:
                    row["error"] = text.strip().splitlines()[-1][:100]
                    rows.append(row)
                    continue
                have_ref = reference.is_file()
                rep = verify(
                    src,
                    str(out),
                    reference=reference if have_ref else None,  # verify's own sampler the first time, recorded
                    samples=args.samples,
                    save_reference=None if have_ref else reference,
                    fusion=False,
                    per_layer=tool == "qonvert",  # needs our tensor names and layouts
                )
                o = rep.outputs[0]
                fusion = fusion_report(onnx.load(str(out)))
                timed[f"{name}/{tool}"] = str(out)
                row.update(
                    max_lsb=o.max_diff_lsb,
                    exact=o.pct_exact,
                    top1=o.top1_agreement,
                    fused=f"{fusion.fused}/{fusion.quantized_in_source}",
                    per_op="-" if rep.layers is None else f"{max(x.max_steps for x in rep.layers)} step",
                )
                rows.append(row)
                print(row, file=sys.stderr)
        print(f"timing {len(timed)} models interleaved: {args.rounds} rounds x {args.runs} runs ...", file=sys.stderr)
        latency = interleaved_latency(timed, args.rounds, args.runs)
    for r in rows:
        if "error" not in r:
            (ms, low, high), fp32 = latency[f"{r['model']}/{r['tool']}"], latency[f"{r['model']}/fp32"][0]
            r.update(ms=ms, spread=f"{low:.1f}-{high:.1f}", fp32_ms=fp32, speedup=fp32 / ms)
    print(
        "| model | converter | convert wall | peak RSS | max diff vs LiteRT | exact | top-1 | worst op fed LiteRT's inputs "
        "| fused Conv/MatMul/Gemm | ORT CPU ms (spread) | vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['tool']} | failed: {r['error']} |")
            continue
        print(
            f"| {r['model']} | {r['tool']} | {r['wall_s']:.2f} s | {r['rss_mb']:.0f} MB | {r['max_lsb']:.2f} LSB | {r['exact']:.1f}% | "
            f"{r['top1']:.2f} | {r['per_op']} | {r['fused']} | {r['ms']:.1f} ({r['spread']}; fp32 {r['fp32_ms']:.1f}) | {r['speedup']:.2f}x |"
        )


if __name__ == "__main__":
    main()
