"""Paddle reference runner (Paddle's static-graph executor on the saved inference program).

Runs in a subprocess because Paddle 3.3.1 loads a .json program only with
FLAGS_enable_pir_api=1 and a .pdmodel only with it 0, read at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from .. import refio

# Paddle's kernel sets: the static executor runs the saved program as written (quantize/dequantize
# ops and all); the inference predictor, what a Paddle deployment runs, first rewrites it with its
# passes (folding the quantize/dequantize pairs into int8 kernels where it can), with oneDNN's
# kernels or without them.
KERNEL_SETS = ("executor", "predictor-onednn", "predictor")


def run_reference(program: Path, inputs: refio.Samples, kernels: str = "executor") -> list[list[np.ndarray]]:
    run = run_kernel_sets(program, inputs, (kernels,))[kernels]
    if isinstance(run, InputError):
        raise run
    return run


def run_kernel_sets(program: Path, inputs: refio.Samples, sets: tuple[str, ...]) -> dict[str, list[list[np.ndarray]] | InputError]:
    """The outputs on each kernel set, in one child process (Paddle's import costs seconds); a set
    that fails gives its one-line error instead."""
    with tempfile.TemporaryDirectory() as tmp:
        out = _child(program, inputs, Path(tmp), "outputs", ",".join(sets))
        runs: dict[str, list[list[np.ndarray]] | InputError] = {}
        for kernels in sets:
            failed = Path(f"{out}-{kernels}.err")
            if failed.exists():
                runs[kernels] = InputError(f"{program}: Paddle ({kernels}) failed: {failed.read_text().strip()[:300]}")
            else:
                runs[kernels] = refio.load(Path(f"{out}-{kernels}.npz"))[1]
        return runs


def run_intermediates(program: Path, inputs: refio.Samples) -> list[dict[str, np.ndarray]]:
    """Every quantized tensor the program computes, by the name qonvert's reader gives it, one
    dict per input, on the executor. ProgramDesc only: Paddle 3.3's executor cannot fetch a PIR
    program's intermediate values (FetchTensors fails on every one of them, measured)."""
    if program.suffix == ".json":
        raise InputError(
            f"{program}: per-layer on a PIR program: Paddle's executor cannot fetch its intermediate values; use the ProgramDesc (.pdmodel) form"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = _child(program, inputs, Path(tmp), "all")
        _, outputs, names = refio.load(Path(f"{out}-all.npz"))
    return [dict(zip(names, outs, strict=True)) for outs in outputs]


def _child(program: Path, inputs: refio.Samples, tmp: Path, *args: str) -> Path:
    """Runs `_main` on the inputs in a child process; the prefix its files are written under."""
    env = dict(os.environ, FLAGS_enable_pir_api="1" if program.suffix == ".json" else "0", GLOG_minloglevel="3")
    src, out = tmp / "in.npz", tmp / "out"
    refio.save(src, inputs, None, [])
    command = [sys.executable, "-m", __name__, str(program), str(src), str(out), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"{program}: Paddle failed: {tail[0]}")
    return out


def _quantized_values(prog: Any) -> tuple[list[Any], list[str]]:
    """Every quantized tensor of a ProgramDesc program, to fetch, by the name qonvert's reader
    gives it: quantize_linear's and fake_quantize_*'s codes (as floats) under their own names; a
    fake quantize-dequantize's real value under `<out>@quantized` (layers quantizes it there)."""
    from ...converters.paddle.quant import FAKE_Q, FAKE_QDQ

    block = prog.global_block()
    targets: list[Any] = []
    names: list[str] = []
    for op in block.ops:
        if op.type == "quantize_linear" or op.type in FAKE_Q:
            name = op.output("Y" if op.type == "quantize_linear" else "Out")[0]
            targets.append(block.var(name))
            names.append(name)
        elif op.type in FAKE_QDQ:
            targets.append(block.var(op.output("Out")[0]))
            names.append(f"{op.output('Out')[0]}@quantized")
    return targets, names


def _predictor(program: str, src: str, dst: str, onednn: bool) -> None:
    import paddle.inference as pi

    config = pi.Config(program, program.rsplit(".", 1)[0] + ".pdiparams")
    config.disable_gpu()
    if onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    predictor = pi.create_predictor(config)
    inputs, _, _ = refio.load(Path(src))
    outputs: list[list[np.ndarray]] = []
    for feed in inputs:
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            handle.reshape(list(np.shape(feed[name])))
            handle.copy_from_cpu(np.ascontiguousarray(feed[name]))
        predictor.run()
        outputs.append([predictor.get_output_handle(n).copy_to_cpu().copy() for n in predictor.get_output_names()])
    refio.save(Path(dst), inputs, outputs, [str(i) for i in range(len(outputs[0]) if outputs else 0)])


def _main(program: str, src: str, dst: str, what: str = "outputs", sets: str = "") -> None:
    """what="all": every quantized tensor on the executor into `dst-all.npz`; else the outputs of
    each kernel set in `sets` into `dst-<set>.npz` (or the set's error into `dst-<set>.err`)."""
    if what == "all":
        _executor(program, src, f"{dst}-all.npz", everything=True)
        return
    for kernels in sets.split(","):
        try:
            if kernels == "executor":
                _executor(program, src, f"{dst}-{kernels}.npz", everything=False)
            else:
                _predictor(program, src, f"{dst}-{kernels}.npz", onednn=kernels == "predictor-onednn")
        except Exception as exc:  # reported by the parent as this set's one-line error
            text = " ".join(str(exc).split()) or type(exc).__name__
            Path(f"{dst}-{kernels}.err").write_text(f"{type(exc).__name__}: {text}")


def _executor(program: str, src: str, dst: str, everything: bool) -> None:
    # paddle.inference's predictor runs PIR passes (delete_quant_dequant_linear_op_pass, ...)
    # even with ir_optim off, i.e. not the quantized program; the static executor runs it as written.
    import paddle

    paddle.enable_static()
    paddle.set_flags({"FLAGS_use_mkldnn": False})
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, feed_names, fetch_targets = paddle.static.load_inference_model(program.rsplit(".", 1)[0], exe)
    inputs, _, _ = refio.load(Path(src))
    if everything:
        targets, names = _quantized_values(prog)
    else:
        targets, names = fetch_targets, [str(i) for i in range(len(fetch_targets))]
    outputs: list[list[np.ndarray]] = []
    for feed in inputs:
        res = exe.run(prog, feed={n: np.ascontiguousarray(feed[n]) for n in feed_names}, fetch_list=targets) if targets else []
        outputs.append([np.asarray(r) for r in res])
    refio.save(Path(dst), inputs, outputs, names)


if __name__ == "__main__":
    _main(*sys.argv[1:6])
