"""Where ORT CPU spends a model's time, by op type, from ORT's own profiler.

    python benchmarks/ort_profile.py MODEL.onnx [--runs N] [--threads T]

Prints a table: op type, kernel count, total time per run, share. The input is standard-normal
(float) or uniform codes (integer); dynamic dimensions are 1.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict

import numpy as np
import onnxruntime as ort


def profile(path: str, runs: int, threads: int | None, feed: dict[str, np.ndarray] | None = None) -> list[tuple[str, int, float]]:
    """(op type, kernels, microseconds per run), most expensive first; `feed`: the inputs (else
    random ones, dynamic dimensions 1)."""
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        given, feed = feed, {}
        for spec in [] if given is not None else sess.get_inputs():
            shape = [d if isinstance(d, int) else 1 for d in spec.shape]
            x = np.random.default_rng(0).standard_normal(shape)
            feed[spec.name] = x.astype(np.float32) if "float" in spec.type else np.clip(x * 40, -128, 127).astype(np.int8)
        feed = given if given is not None else feed
        for _ in range(3):  # warm-up runs are profiled too: skipped below by run index
            sess.run(None, feed)
        for _ in range(runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    totals: dict[str, float] = defaultdict(float)
    kernels: dict[str, set[str]] = defaultdict(set)
    run_starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    cutoff = run_starts[3] if len(run_starts) > 3 else 0
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time") or event["ts"] < cutoff:
            continue
        op = event["args"].get("op_name", "?")
        totals[op] += event["dur"]
        kernels[op].add(event["name"])
    return sorted(((op, len(kernels[op]), us / runs) for op, us in totals.items()), key=lambda r: -r[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    rows = profile(args.model, args.runs, args.threads)
    total = sum(r[2] for r in rows)
    print(f"| op | kernels | ms per run | share |  ({os.path.basename(args.model)}: {total / 1e3:.2f} ms of kernels per run)")
    print("|---|---|---|---|")
    for op, count, us in rows:
        print(f"| {op} | {count} | {us / 1e3:.3f} | {100 * us / total:.1f}% |")


if __name__ == "__main__":
    main()
