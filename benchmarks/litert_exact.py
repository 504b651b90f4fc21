"""What the litert-exact form costs: ORT CPU latency of the canonical QDQ form and of the
LiteRT-exact form (integer arithmetic reproducing LiteRT's reference kernels) of the same TFLite
models, taking turns in one process (measure.interleaved_latency), with LiteRT's own reference
kernels (BUILTIN_REF, what the form reproduces) and its default XNNPACK set beside them, and the
exact form's verdict against the reference kernels.

    python benchmarks/litert_exact.py [--rounds 5]

The exact form is a golden model for proof, not for speed: its per-channel rescale is a dozen
int64 elementwise ops per tensor, where the canonical form's QDQ lets ORT fuse an integer kernel.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import interleaved_latency  # noqa: E402

import qonvert  # noqa: E402

TFLITE = HERE.parent / "fixtures" / "tflite"
MODELS = {
    "small_cnn_int8io": (TFLITE / "small_cnn_int8io.tflite", None),
    "mobilenet_v2_softmax_int8": (TFLITE / "mobilenet_v2_softmax_int8.tflite", None),
    "mobilenet_v3_int8io": (TFLITE / "mobilenet_v3_int8io.tflite", None),
    "face_detection (MediaPipe, real)": (TFLITE / "real" / "face_detection_short_range_static_wi8_ai8.tflite", TFLITE / "real" / "faces_128.npz"),
    "iris_landmark (MediaPipe, real)": (TFLITE / "real" / "iris_landmark_static_wi8_ai8.tflite", TFLITE / "real" / "faces_64.npz"),
}


def litert_latency(path: Path, kernels: str, feed: dict[str, np.ndarray], runs: int) -> float:
    from qonvert.runtime.reference.litert import interpreter

    it = interpreter(path, kernels=kernels)
    it.allocate_tensors()
    for detail, value in zip(it.get_input_details(), feed.values(), strict=True):
        it.set_tensor(detail["index"], value.transpose(0, 2, 3, 1) if value.ndim == 4 and tuple(detail["shape"]) != value.shape else value)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, inputs) in MODELS.items():
            canonical, exact = Path(tmp) / f"{path.stem}.onnx", Path(tmp) / f"{path.stem}.exact.onnx"
            qonvert.convert(path, canonical)
            result = qonvert.convert(path, exact, target="litert-exact")
            report = qonvert.verify(path, exact, samples=8, inputs=inputs)
            model = onnx.load(str(exact))
            feed = qonvert.api.random_inputs(model, 1)[0]
            ms = interleaved_latency({"canonical": str(canonical), "exact": str(exact)}, rounds=args.rounds, runs=args.runs, feed=feed)
            ops = len(model.graph.node)
            base = len(onnx.load(str(canonical)).graph.node)
            reference = litert_latency(path, "reference", feed, max(3, args.runs // 4))
            xnnpack = litert_latency(path, "xnnpack", feed, args.runs)
            verdict = "EXACT" if report.bit_exact else "NOT EXACT"
            layers = len(report.layers or [])
            remark = next(r for r in result.remarks if r.startswith("litert-exact"))
            rows.append((name, ms["canonical"][0], ms["exact"][0], base, ops, reference, xnnpack, f"{verdict} ({layers} tensors)", remark))
    columns = ("model", "canonical ORT ms", "litert-exact ORT ms", "cost", "ONNX nodes (canonical -> exact)")
    columns += ("LiteRT reference ms", "LiteRT XNNPACK ms", "vs reference kernels")
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c, e, base, ops, ref, xnn, verdict, _ in rows:
        print(f"| {name} | {c:.2f} | {e:.2f} | {e / c:.1f}x | {base} -> {ops} | {ref:.1f} | {xnn:.2f} | {verdict} |")
    for name, *_, remark in rows:
        print(f"{name}: {remark}")


if __name__ == "__main__":
    main()
