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

import numpy as np

from ...errors import QonvertError
from .. import refio


def run_reference(program: Path, inputs: refio.Samples) -> list[list[np.ndarray]]:
    env = dict(os.environ, FLAGS_enable_pir_api="1" if program.suffix == ".json" else "0", GLOG_minloglevel="3")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        refio.save(src, inputs, None, [])
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(program), str(src), str(dst)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise QonvertError(f"{program}: Paddle Inference failed: {tail[0]}")
        _, outputs, _ = refio.load(dst)
        return outputs


def _main(program: str, src: str, dst: str) -> None:
    # paddle.inference's predictor runs PIR passes (delete_quant_dequant_linear_op_pass, ...)
    # even with ir_optim off, i.e. not the quantized program; the static executor runs it as written.
    import paddle

    paddle.enable_static()
    paddle.set_flags({"FLAGS_use_mkldnn": False})
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, feed_names, fetch_targets = paddle.static.load_inference_model(program.rsplit(".", 1)[0], exe)
    inputs, _, _ = refio.load(Path(src))
    outputs: list[list[np.ndarray]] = []
    for feed in inputs:
        res = exe.run(prog, feed={n: np.ascontiguousarray(feed[n]) for n in feed_names}, fetch_list=fetch_targets)
        outputs.append([np.asarray(r) for r in res])
    refio.save(Path(dst), inputs, outputs, [str(i) for i in range(len(fetch_targets))])


if __name__ == "__main__":
    _main(*sys.argv[1:4])
