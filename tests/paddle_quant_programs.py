"""Paddle programs around quantize_linear that Paddle runs and converters have refused:
- a quantize_linear whose codes are cast and returned, with no dequantize_linear (Paddle2ONNX's
  TestQuantizeLinearConvert cases: rank 2-4, axis 0 / 1, abs-max scales);
- a conv whose input is quantized (quantize_linear -> dequantize_linear) but whose weight is not (a
  PTQ that skipped the weight): Paddle runs it in float on the dequantized input.
Written as ProgramDesc programs, each also translated to PIR as a Paddle 3 user loading it gets it.
Run by tests/test_paddle_quant_programs.py in a subprocess:

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


def _save(out_dir: Path, name: str, program, x, y, exe, inputs: list[dict[str, np.ndarray]]) -> None:  # type: ignore[no-untyped-def]
    """The program and Paddle's outputs, in both formats: out_dir/<name>_legacy and <name>_pir."""
    import paddle
    from paddle.pir_utils import OldIrGuard

    with OldIrGuard():
        outputs = [[np.asarray(v) for v in exe.run(program, feed=feed, fetch_list=[y])] for feed in inputs]
        paddle.static.save_inference_model(str(out_dir / f"{name}_legacy" / "model"), [x], [y], exe, program=program)
        loaded, _, _ = paddle.static.load_inference_model(str(out_dir / f"{name}_legacy" / "model"), exe)
    save_as_pir(loaded, out_dir / f"{name}_pir", exe)
    for form in ("legacy", "pir"):
        refio.save(out_dir / f"{name}_{form}" / "reference.npz", inputs, outputs, ["y"])


def _quantize_linear(x, scale, zero, axis: int):  # type: ignore[no-untyped-def]
    from paddle.base.layer_helper import LayerHelper

    codes = LayerHelper("quantize_linear").create_variable_for_type_inference(dtype="float32")
    feeds, attrs = {"X": x, "Scale": scale, "ZeroPoint": zero}, {"bit_length": 8, "quant_axis": axis}
    x.block.append_op(type="quantize_linear", inputs=feeds, outputs={"Y": codes}, attrs=attrs)
    return codes


def _parameter(values: np.ndarray):  # type: ignore[no-untyped-def]
    import paddle

    return paddle.static.create_parameter(list(values.shape), "float32", default_initializer=paddle.nn.initializer.Assign(values))


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
                y = paddle.cast(_quantize_linear(x, _parameter(scales), _parameter(np.zeros(shape[axis], np.float32)), axis), "float32")
            exe.run(startup)
        along = [-1 if i == axis else 1 for i in range(len(shape))]  # each channel's abs-max, a little past it
        inputs = [{"x": (rng.uniform(-1.05, 1.05, shape) * scales.reshape(along)).astype(np.float32)} for _ in range(3)]
        _save(out_dir, name, main_prog, x, y, exe, inputs)
    with OldIrGuard():
        main_prog, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main_prog, startup):
            x = paddle.static.data("x", [1, 3, 8, 8], "float32")
            scale, zero = _parameter(np.full(1, 2.0, np.float32)), _parameter(np.zeros(1, np.float32))
            restored = LayerHelper("dequantize_linear").create_variable_for_type_inference(dtype="float32")
            feeds = {"X": _quantize_linear(x, scale, zero, -1), "Scale": scale, "ZeroPoint": zero}
            attrs = {"bit_length": 8, "quant_axis": -1}
            main_prog.global_block().append_op(type="dequantize_linear", inputs=feeds, outputs={"Y": restored}, attrs=attrs)
            y = paddle.static.nn.conv2d(restored, 4, 3)  # its weight is not quantized
        exe.run(startup)
    inputs = [{"x": rng.uniform(-2, 2, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    _save(out_dir, "quantized_input_float_weight_conv", main_prog, x, y, exe, inputs)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
