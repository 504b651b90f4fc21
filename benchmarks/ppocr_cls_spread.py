"""Where PP-OCR cls's end-to-end differences come from (issue 20 part 4): qonvert's ONNX against
Paddle's static executor, beside Paddle's own inference predictor (oneDNN on, and off) against the
same executor, on rendered text lines (half of them upside down: the classifier's two classes).

    python benchmarks/ppocr_cls_spread.py [--count 20]

Per pair: max |diff| of the class probabilities, the share of outputs more than 0.01 apart, top-1
agreement. Then the per-layer check (each quantized tensor computed from Paddle's own inputs) and
the same ONNX with ORT's QDQ fusion off (float kernels): if every op is within 1 step and the float
kernels land where the integer ones do, the end-to-end figure is those steps carried through the
layers after them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "3")

import numpy as np

import qonvert
from qonvert.converters import frontend
from qonvert.runtime.ort import run, session

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "fixtures" / "paddle" / "real" / "ppocr_cls_qdq"
WORDS = "invoice total amount paid receipt date 2024 tax number street city phone order item price qty".split()


def text_lines(count: int, seed: int = 0) -> np.ndarray:
    """PP-OCR cls inputs: a line of dark text on a light ground, 48 high, padded to 192 wide,
    normalised to [-1, 1]; every other one turned 180 degrees."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.zeros((count, 3, 48, 192), np.float32)
    for i in range(count):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        font = ImageFont.load_default(size=int(rng.integers(22, 34)))
        width = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=font)) + 12
        image = Image.new("RGB", (width, 48), tuple(int(v) for v in rng.integers(200, 256, 3)))
        ImageDraw.Draw(image).text((6, int(rng.integers(2, 10))), text, fill=tuple(int(v) for v in rng.integers(0, 60, 3)), font=font)
        if i % 2:
            image = image.rotate(180)
        w = min(192, int(np.ceil(48 * image.width / image.height)))
        pixels = np.asarray(image.resize((w, 48), Image.BILINEAR), np.float32) / 255.0
        out[i, :, :, :w] = ((pixels - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def flip_margins(result: qonvert.ConvertResult, feeds: list[dict[str, np.ndarray]]) -> tuple[list[float], int]:
    """Per layer, each quantized tensor computed by ORT from Paddle's own inputs: for every code
    that differs from Paddle's, how far Paddle's own real value (x * 127 / scale, before its
    rounding) lies from a rounding boundary; and how many of those codes ORT's integer kernels and
    its float kernels (optimizations off) give differently."""
    import paddle
    from paddle.pir_utils import OldIrGuard

    from qonvert.converters import load_source
    from qonvert.runtime import layers

    source = load_source(MODEL)
    quantize = {op.outputs["Y"][0]: op for op in source.ops if op.type == "quantize_linear"}
    with OldIrGuard():  # the model is a ProgramDesc one
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(str(MODEL / "model"), exe)
        before = sorted({op.inputs["X"][0] for op in quantize.values()})
        fetch = [program.global_block().var(n) for n in before]
        front = frontend(MODEL)
        reference = front.run_intermediates(MODEL, feeds, front.options())
        cut, cuts = layers._cut(result.model, set(reference[0]))
        integer, floating = session(cut, "cpu"), session(cut, "cpu", level="disabled")
        margins, kernels_differ = [], 0
        for feed, ref in zip(feeds, reference, strict=True):
            reals = dict(zip(before, exe.run(program, feed=feed, fetch_list=fetch), strict=True))
            full = dict(feed) | {c.value: layers._to_onnx(ref[c.source], c) for c in cuts}
            full |= {twin: full[c.value] for c in cuts for twin in c.twins}
            given = {i.name: full[i.name] for i in integer.get_inputs()}
            for c, ours, also in zip(cuts, run(integer, given), run(floating, given), strict=True):
                flips = np.argwhere(ours.astype(np.int64) != full[c.value].astype(np.int64))
                kernels_differ += int((ours != also).sum())
                op = quantize.get(c.source)
                if op is None or not len(flips):
                    continue
                real = np.asarray(reals[op.inputs["X"][0]], np.float64)
                steps = (real.transpose(c.perm) if c.perm else real) * 127 / float(np.ravel(source.constants[op.inputs["Scale"][0]])[0])
                margins += [abs(steps[tuple(i)] - np.floor(steps[tuple(i)]) - 0.5) for i in flips]
        paddle.disable_static()
    return margins, kernels_differ


def compare(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float, float]:
    x, y = np.concatenate([v.ravel() for v in a]), np.concatenate([v.ravel() for v in b])
    top1 = np.mean([np.argmax(p) == np.argmax(q) for p, q in zip(a, b, strict=True)])
    return float(np.abs(x - y).max()), float(np.mean(np.abs(x - y) > 0.01) * 100), float(top1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    images = text_lines(args.count)
    feeds = [{"x": x[None]} for x in images]
    result = qonvert.convert(MODEL)
    source = frontend(MODEL)
    executor = [r[0] for r in source.run_reference(MODEL, feeds, [], source.options())]
    rows = {
        "qonvert ONNX (ORT CPU, QDQ fused)": [run(session(result.model, "cpu"), f)[0] for f in feeds],
        "qonvert ONNX (ORT CPU, optimizations off: float kernels)": [run(session(result.model, "cpu", level="disabled"), f)[0] for f in feeds],
        "Paddle predictor, oneDNN on": [r[0] for r in source.run_reference(MODEL, feeds, [], source.options(), "predictor-onednn")],
        "Paddle predictor, oneDNN off": [r[0] for r in source.run_reference(MODEL, feeds, [], source.options(), "predictor")],
    }
    print(f"PP-OCR mobile v2 cls, Paddle PTQ (onnx_format=True), {args.count} rendered text lines, each against Paddle's static executor:\n")
    print("| run | max abs diff (probability) | outputs > 0.01 apart | top-1 agreement |")
    print("|---|---|---|---|")
    for name, outputs in rows.items():
        worst, apart, top1 = compare(outputs, executor)
        print(f"| {name} | {worst:.4f} | {apart:.0f}% | {top1:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "lines.npz"
        np.savez(inputs, **{f"input/x/{i}": f["x"] for i, f in enumerate(feeds)})
        report = qonvert.verify(MODEL, result.model, inputs=inputs, per_layer=True, fusion=False)
    layers = report.layers or []
    exact = np.mean([layer.pct_exact for layer in layers])
    worst = max(layer.max_steps for layer in layers)
    print(f"\nper layer (each quantized tensor from Paddle's own inputs): {len(layers)} tensors, worst {worst} step, mean {exact:.3f}% exact")
    margins, kernels_differ = flip_margins(result, feeds)
    margin = max(margins, default=0.0)
    print(f"codes that differ from Paddle's: {len(margins)}; Paddle's own real value within {margin:.4f} of a step of a rounding boundary")
    print(f"at every one of them, and everywhere else: ORT's integer and float kernels differ at {kernels_differ} codes")


if __name__ == "__main__":
    main()
