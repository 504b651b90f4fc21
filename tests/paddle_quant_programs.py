"""Paddle programs around quantize_linear that Paddle runs and converters have refused: a
quantize_linear whose codes are cast and returned, with no dequantize_linear (Paddle2ONNX's
TestQuantizeLinearConvert cases: rank 2-4, axis 0 / 1, abs-max scales). Written as ProgramDesc
programs, each also translated to PIR as a Paddle 3 user loading it gets it. Run by
tests/test_paddle_quant_programs.py in a subprocess:

    FLAGS_enable_pir_api=1 python tests/paddle_quant_programs.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from qonvert.runtime import refio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "paddle"))
from make_fixtures import save_as_pir  # the fixtures' own translation to PIR

CASES = {"quantize_cast_2d_axis0": ([4, 6], 0), "quantize_cast_3d_axis1": ([3, 5, 7], 1), "quantize_cast_4d_axis1": ([2, 4, 5, 6], 1)}
CASES["quantize_cast_4d_axis0"] = ([5, 3, 4, 4], 0)


def main(out_dir: Path) -> None:
    import paddle
    from paddle.base.layer_helper import LayerHelper
    from paddle.pir_utils import OldIrGuard

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    rng = np.random.default_rng(0)
    for name, (shape, axis) in CASES.items():
        with OldIrGuard():
            main_prog, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(main_prog, startup):
                x = paddle.static.data("x", shape, "float32")
                scales = rng.uniform(1, 8, shape[axis]).astype(np.float32)  # abs-max scales
                scale = paddle.static.create_parameter([shape[axis]], "float32", default_initializer=paddle.nn.initializer.Assign(scales))
                zero = paddle.static.create_parameter([shape[axis]], "float32", default_initializer=paddle.nn.initializer.Constant(0.0))
                codes = LayerHelper("quantize_linear").create_variable_for_type_inference(dtype="float32")
                feeds, attrs = {"X": x, "Scale": scale, "ZeroPoint": zero}, {"bit_length": 8, "quant_axis": axis}
                main_prog.global_block().append_op(type="quantize_linear", inputs=feeds, outputs={"Y": codes}, attrs=attrs)
                y = paddle.cast(codes, "float32")
            exe.run(startup)
            along = [-1 if i == axis else 1 for i in range(len(shape))]  # each channel's abs-max, a little past it
            inputs = [{"x": (rng.uniform(-1.05, 1.05, shape) * scales.reshape(along)).astype(np.float32)} for _ in range(3)]
            outputs = [[np.asarray(v) for v in exe.run(main_prog, feed=feed, fetch_list=[y])] for feed in inputs]
            paddle.static.save_inference_model(str(out_dir / f"{name}_legacy" / "model"), [x], [y], exe, program=main_prog)
            refio.save(out_dir / f"{name}_legacy" / "reference.npz", inputs, outputs, ["y"])
            program, _, _ = paddle.static.load_inference_model(str(out_dir / f"{name}_legacy" / "model"), exe)
        save_as_pir(program, out_dir / f"{name}_pir", exe)
        refio.save(out_dir / f"{name}_pir" / "reference.npz", inputs, outputs, ["y"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
