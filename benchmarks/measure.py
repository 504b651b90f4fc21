"""Peak RSS and wall time of a child process, shared by the benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# Linux keeps a process's peak RSS across exec, so a child forked from this (large) process would
# report ours: measure through a small fresh launcher whose children start from ~10 MB.
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, output) of a child process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    rss = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB")]
    text = "\n".join(line for line in out.splitlines() if not line.startswith("PEAK_RSS_KB"))
    return proc.returncode, wall, float(rss[-1]) / 1024 if rss else 0.0, text


def interleaved_latency(
    models: dict[str, str], rounds: int = 7, runs: int = 20, feed: dict[str, object] | None = None
) -> dict[str, tuple[float, float, float]]:
    """ORT CPU latency in ms per model: (median, lowest, highest) of the per-round medians (see
    interleaved). `feed`: the inputs every model takes (token ids ...), else one random input of
    the model's shape."""
    return interleaved({name: ort_runner(path, feed) for name, path in models.items()}, rounds, runs)


def interleaved(runners: dict[str, Callable[[], object]], rounds: int = 7, runs: int = 20) -> dict[str, tuple[float, float, float]]:
    """Latency in ms per runner (one inference each call): (median, lowest, highest) of the
    per-round medians. The runners take turns, round after round, so a noisy neighbour on a small
    machine slows them all alike instead of whichever happened to run at the time."""
    import numpy as np

    for run in runners.values():
        for _ in range(3):
            run()
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            medians[name].append(float(np.median(times)) * 1e3)
    return {name: (float(np.median(m)), min(m), max(m)) for name, m in medians.items()}


def ort_runner(path: str, feed: dict[str, object] | None = None) -> Callable[[], object]:
    """One ORT CPU inference of the model. ORT's worker threads do not spin between runs: on this
    2-core machine spinning made the same model run 28 or 46 ms from one session to the next (and
    slowed models with many small float ops most), which no median fixes."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    spec = sess.get_inputs()[0]  # one input; dynamic dimensions 1
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    x = np.random.default_rng(0).standard_normal(shape)
    given = {spec.name: x.astype(np.float32) if "float" in spec.type else np.clip(x * 40, -128, 127).astype(np.int8)}
    if feed is not None:
        given = {spec.name: next(iter(feed.values()))} if len(feed) == 1 else dict(feed)
    return lambda: sess.run(None, given)


def openvino_compiled(path: str, precision: str | None = "f32") -> Any:
    """The ONNX model compiled by OpenVINO for its CPU (its latency hint: one request, all cores);
    precision: its inference precision hint, None for its default (bf16 on a CPU with AMX or
    AVX512-BF16, which rounds every activation to 8 mantissa bits). None where openvino is not
    installed (`pip install openvino`)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    config = {"PERFORMANCE_HINT": "LATENCY"} | ({"INFERENCE_PRECISION_HINT": precision} if precision else {})
    return ov.Core().compile_model(path, "CPU", config)


def openvino_runner(path: str, feed: dict[str, object], precision: str | None = "f32") -> Callable[[], object] | None:
    """One OpenVINO CPU inference of the model (openvino_compiled); None without openvino."""
    compiled = openvino_compiled(path, precision)
    if compiled is None:
        return None
    request = compiled.create_infer_request()
    inputs = {compiled.inputs[0].any_name: next(iter(feed.values()))} if len(feed) == 1 else dict(feed)
    return lambda: request.infer(inputs)
