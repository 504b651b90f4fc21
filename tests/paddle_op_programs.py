"""One small Paddle inference program per op, with Paddle's own outputs: the table the per-op
tests (tests/test_paddle_ops.py) convert and compare. Run by the tests in a subprocess:

    FLAGS_enable_pir_api=0|1 python tests/paddle_op_programs.py OUT_DIR

Each program reads `x` (and builds its weights from a fixed seed); OUT_DIR/NAME/ gets
model.{pdmodel|json} + model.pdiparams + reference.npz (3 inputs and the outputs).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qonvert.runtime import refio

IMG, SEQ = [1, 4, 8, 8], [2, 6, 16]


def table() -> dict[str, tuple[list[int], Callable[[Any], Any]]]:
    """name -> (input shape, function of x building the program's output)."""
    import paddle
    from paddle import nn
    from paddle.nn import functional as F

    def unary(api: Callable[[Any], Any], op_type: str, binary: bool = False, **attrs: Any) -> Callable[[Any], Any]:
        """Paddle 3.3.1 builds some ops only in PIR mode; in ProgramDesc mode append them by hand."""

        def build(x: Any) -> Any:
            try:
                return api(x)
            except TypeError:
                from paddle.base.layer_helper import LayerHelper

                helper = LayerHelper(op_type)
                out = helper.create_variable_for_type_inference(x.dtype)
                inputs = {"X": [x], "Y": [x]} if binary else {"X": [x]}
                helper.append_op(type=op_type, inputs=inputs, outputs={"Out": [out]}, attrs=attrs)
                return out

        return build

    def layer(make: Callable[[], Any]) -> Callable[[Any], Any]:
        return lambda x: make()(x)  # built inside the program guard, so its parameters land there

    return {
        "conv2d": (IMG, layer(lambda: nn.Conv2D(4, 6, 3, padding=1))),
        "conv2d_stride_dilation": (IMG, layer(lambda: nn.Conv2D(4, 6, 3, stride=2, padding=2, dilation=2))),
        "depthwise_conv2d": (IMG, layer(lambda: nn.Conv2D(4, 4, 3, padding=1, groups=4))),
        "conv2d_transpose": (IMG, layer(lambda: nn.Conv2DTranspose(4, 3, 3, stride=2, padding=1, output_padding=1))),
        "batch_norm": (IMG, layer(lambda: nn.BatchNorm2D(4))),
        "relu": (IMG, F.relu),
        "relu6": (IMG, lambda x: F.relu6(x * 4)),
        "leaky_relu": (IMG, lambda x: F.leaky_relu(x, 0.1)),
        "hardswish": (IMG, lambda x: F.hardswish(x * 4)),
        "hardsigmoid": (IMG, lambda x: F.hardsigmoid(x * 4)),
        "sigmoid": (IMG, unary(F.sigmoid, "sigmoid")),
        "swish": (IMG, F.swish),
        "silu": (IMG, F.silu),
        "gelu": (IMG, unary(F.gelu, "gelu", approximate=False)),
        "gelu_tanh": (IMG, unary(lambda x: F.gelu(x, approximate=True), "gelu", approximate=True)),
        "tanh": (IMG, unary(paddle.tanh, "tanh")),
        "max_pool2d": (IMG, lambda x: F.max_pool2d(x, 3, stride=2, padding=1)),
        "avg_pool2d": (IMG, lambda x: F.avg_pool2d(x, 2, stride=2)),
        "avg_pool2d_exclusive_pad": (IMG, lambda x: F.avg_pool2d(x, 3, stride=1, padding=1, exclusive=True)),
        "global_avg_pool": (IMG, lambda x: F.adaptive_avg_pool2d(x, 1)),
        "global_max_pool": (IMG, lambda x: F.adaptive_max_pool2d(x, 1)),
        "add": (IMG, lambda x: x + paddle.full([4, 1, 1], 0.5)),
        "subtract": (IMG, lambda x: x - x * 0.25),
        "multiply": (IMG, lambda x: x * paddle.to_tensor(np.linspace(-1, 1, 8, dtype=np.float32))),
        "divide": (IMG, lambda x: x / (x * x + 1.0)),
        "matmul_transpose_y": (SEQ, unary(lambda x: paddle.matmul(x, x, transpose_y=True), "matmul_v2", True, trans_y=True)),
        "matmul_transpose_x": (SEQ, unary(lambda x: paddle.matmul(x, x, transpose_x=True), "matmul_v2", True, trans_x=True)),
        "linear": (SEQ, layer(lambda: nn.Linear(16, 5))),
        "flatten": (IMG, lambda x: paddle.flatten(x, 1)),
        "reshape": (IMG, lambda x: paddle.reshape(x, [0, -1, 16])),
        "transpose": (IMG, lambda x: paddle.transpose(x, [0, 2, 3, 1])),
        "squeeze_unsqueeze": (IMG, lambda x: paddle.squeeze(paddle.unsqueeze(x, [1, 4]), [1])),
        "concat": (IMG, lambda x: paddle.concat([x, x * 2], axis=1)),
        "split": (IMG, lambda x: paddle.split(x, [1, 3], axis=1)[1]),
        "slice": (IMG, lambda x: x[:, 1:3, ::2, -4:]),
        "scale": (IMG, lambda x: paddle.scale(x, 2.0, 0.5, bias_after_scale=False)),
        "softmax": (SEQ, lambda x: F.softmax(x, -1)),
        "layer_norm": (SEQ, layer(lambda: nn.LayerNorm(16))),
        "dropout": (IMG, lambda x: F.dropout(x, 0.5, training=False)),
        "clip": (IMG, lambda x: paddle.clip(x, -0.5, 0.7)),
        "mean": (IMG, lambda x: paddle.mean(x, axis=[2, 3], keepdim=True)),
        "bilinear_interp": (IMG, lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
        "nearest_interp": (IMG, lambda x: F.interpolate(x, size=[16, 12], mode="nearest")),
        "shape_full": (IMG, lambda x: x + paddle.full(paddle.shape(x), 1.5)),
        "assign": (IMG, lambda x: paddle.assign(x) * 2),
        "cast": (IMG, lambda x: (x * 3).astype("int32").astype("float32") + x.astype("float32")),
    }


def main(out_dir: str) -> None:
    import paddle

    paddle.enable_static()
    pir = os.environ.get("FLAGS_enable_pir_api") == "1"
    for name, (shape, fn) in table().items():
        paddle.seed(3)
        main_prog, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main_prog, startup):
            x = paddle.static.data("x", shape, "float32")
            y = fn(x)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        rng = np.random.default_rng(5)
        inputs = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(3)]
        dst = Path(out_dir) / name
        dst.mkdir(parents=True, exist_ok=True)
        paddle.static.save_inference_model(str(dst / "model"), [x], [y], exe, program=main_prog)
        prog, feeds, fetches = paddle.static.load_inference_model(str(dst / "model"), exe)
        outputs = [[np.asarray(r) for r in exe.run(prog, feed={feeds[0]: f["x"]}, fetch_list=fetches)] for f in inputs]
        refio.save(dst / "reference.npz", inputs, outputs, ["0"])
        print(name, "pir" if pir else "legacy", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
