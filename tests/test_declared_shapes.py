"""What a different fuzzer found (issue 22): values from the file that a mapper or reader indexed
or asserted on before checking them. Each class is now one QonvertError naming the op or tensor;
each test builds the smallest source graph of its class."""

from __future__ import annotations

import re

import numpy as np
import pytest

import qonvert
from qonvert.converters import build
from qonvert.converters.paddle.quant import normalise_fake_ops, qparams
from qonvert.converters.source import SourceGraph, SourceOp, TensorInfo
from qonvert.opsets.qparams import QuantParams


def _graph(framework: str, ops: list[SourceOp], inputs: dict[str, tuple[int, ...]], outputs: list[str], **tables: dict) -> SourceGraph:
    shapes = {**inputs, **tables.pop("shapes", {})}
    infos = [TensorInfo(name, shape, "float32") for name, shape in inputs.items()]
    return SourceGraph(framework, "m", ops, infos, outputs, tables.pop("constants", {}), shapes=shapes, **tables)


def test_fake_quantization_without_its_input_is_one_error() -> None:
    """was: AssertionError in normalise_fake_ops"""
    op = SourceOp("fake_quantize_dequantize_abs_max", {"InScale": ["s"]}, {"Out": ["y"]}, {"bit_length": 8})
    graph = _graph("paddle", [op], {"x": (1, 4)}, ["y"], constants={"s": np.ones(1, np.float32)})
    with pytest.raises(qonvert.QonvertError, match="fake_quantize_dequantize_abs_max -> y: a fake quantization op without input X"):
        normalise_fake_ops(graph)


def test_more_zero_points_than_scales_is_one_error() -> None:
    """was: ValueError (cannot reshape array of size 3 into shape ()) in Paddle's quant params"""
    op = SourceOp("dequantize_linear", {"X": ["x"]}, {"Y": ["y"]}, {"bit_length": 8, "quant_axis": -1})
    with pytest.raises(qonvert.QonvertError, match="1 scales and 3 zero points"):
        qparams(op, np.ones(1, np.float32), np.zeros(3, np.float32), (4,), "x")


def test_dead_channels_with_a_zero_point_per_other_axis_is_one_error() -> None:
    """was: ValueError (operands could not be broadcast) in revive_dead_channels"""
    qp = QuantParams(np.array([1e-38, 0.1, 0.2], np.float32), np.zeros(2, np.int64), "int8", 0)  # one dead channel
    revived, data, remark = qp.revive_dead_channels(np.zeros((3, 2), np.int8), "w")
    assert revived is qp and remark is None  # left for validate, which names it:
    with pytest.raises(qonvert.QonvertError, match="tensor 'w': per-axis scale and zero point must be 1-D of one length"):
        revived.validate("w", data.shape)


def test_transposing_a_vector_is_one_error() -> None:
    """was: IndexError in Paddle's matmul (transpose_x of a rank-1 input)"""
    op = SourceOp("matmul_v2", {"X": ["x"], "Y": ["w"]}, {"Out": ["y"]}, {"trans_x": True})
    graph = _graph("paddle", [op], {"x": (4,)}, ["y"], constants={"w": np.ones((4, 2), np.float32)})
    with pytest.raises(qonvert.QonvertError, match="matmul_v2 -> y: tensor 'x': transpose_x / transpose_y of a rank-1 input"):
        build(graph)


@pytest.mark.parametrize(
    ("op_type", "filter_shape", "expected"),
    [
        ("CONV_2D", (4, 3, 3), "filter 'w' has shape [4, 3, 3], expected 4 dimensions"),
        ("DEPTHWISE_CONV_2D", (3, 3, 4), "filter 'w' has shape [3, 3, 4], expected 4 dimensions"),
        ("FULLY_CONNECTED", (4, 4, 1), "weights 'w' has shape [4, 4, 1], expected 2 dimensions"),
    ],
)
def test_a_filter_of_another_rank_is_one_error(op_type: str, filter_shape: tuple[int, ...], expected: str) -> None:
    """was: IndexError in TFLite's conv_2d and fully_connected (a filter's declared rank mutated)"""
    op = SourceOp(op_type, {"in": ["x", "w", ""]}, {"out": ["y"]}, {"StrideH": 1, "StrideW": 1, "Padding": 1})
    w = np.ones(filter_shape, np.float32)
    graph = _graph("tflite", [op], {"x": (1, 6, 6, 4)}, ["y"], constants={"w": w}, shapes={"y": (1, 4, 4, 4)})
    with pytest.raises(qonvert.QonvertError, match=re.escape(f"{op_type} -> y: {expected}")):
        build(graph)


def _frozen_conv(weight_ops: list[SourceOp], after: list[SourceOp], weight: str) -> SourceGraph:
    """fake_quantize_abs_max -> conv2d (its filter `weight`, made by `weight_ops` before the conv
    or `after` the dequant) -> fake_dequantize_max_abs: Paddle's frozen quantized conv."""
    ops = [
        SourceOp("fake_quantize_abs_max", {"X": ["x"], "InScale": ["xs"]}, {"Out": ["xq"]}, {"bit_length": 8}),
        *weight_ops,
        SourceOp("conv2d", {"Input": ["xq"], "Filter": [weight]}, {"Output": ["y"]}, {}),
        SourceOp("fake_dequantize_max_abs", {"X": ["y"], "Scale": ["ys"]}, {"Out": ["ydq"]}, {"max_range": 127.0 * 127.0}),
        *after,
    ]
    constants = {"xs": np.ones(1, np.float32), "ys": np.ones(1, np.float32), "w": np.ones(2 * 3 * 3 * 3, np.float32)}
    return _graph("paddle", ops, {"x": (1, 3, 4, 4)}, ["ydq"], constants=constants)


def test_a_frozen_conv_weight_walk_takes_only_a_reshape_value() -> None:
    """was: ValueError (list.index) in _dequantize_frozen: the walk from a frozen conv's filter to
    its constant took a reshape2's XShape side output (or an unset '' slot) for its reshaped value.
    The reshaped constant itself converts."""
    reshape = SourceOp("reshape2", {"X": ["w"]}, {"Out": ["w4"], "XShape": ["wshape"]}, {"shape": [2, 3, 3, 3]})
    normalise_fake_ops(_frozen_conv([reshape], [], "w4"))
    for filter_name, outputs in (("wshape", {"Out": ["w4"], "XShape": ["wshape"]}), ("", {"Out": [""], "XShape": ["wshape"]})):
        graph = _frozen_conv([SourceOp("reshape2", {"X": ["w"]}, outputs, {"shape": [2, 3, 3, 3]})], [], filter_name)
        with pytest.raises(qonvert.QonvertError, match="frozen quantized conv2d without a quantized input and constant weight"):
            normalise_fake_ops(graph)


def test_a_frozen_conv_weight_reshaped_later_in_the_program_is_one_error() -> None:
    """was: ValueError (list.index): the filter's reshape came after the dequant that needs it."""
    reshape = SourceOp("reshape2", {"X": ["w"]}, {"Out": ["w4"], "XShape": ["wshape"]}, {"shape": [2, 3, 3, 3]})
    with pytest.raises(qonvert.QonvertError, match=r"reads the output of op reshape2 -> w4, which comes after it in the program"):
        normalise_fake_ops(_frozen_conv([], [reshape], "w4"))


def test_a_relu6_threshold_that_is_not_a_number_is_one_error() -> None:
    """was: an internal error (ValueError: could not convert string to float: '') in relu6; every
    numeric attribute a Paddle mapper reads goes through a typed accessor"""
    op = SourceOp("relu6", {"X": ["x"]}, {"Out": ["y"]}, {"threshold": ""})
    with pytest.raises(qonvert.QonvertError, match=r"relu6 -> y: attribute threshold='' is not a number"):
        build(_graph("paddle", [op], {"x": (1, 4)}, ["y"]))


def test_a_held_output_declared_with_another_rank_is_one_error() -> None:
    """was: an internal error (tuple.index) in STRIDED_SLICE: a conv's output, held NCHW as rank 4,
    was declared rank 5 by the file and sliced on 5 axes. The rank an op writes a held value in is
    checked against the file's declaration when it is bound."""
    conv = SourceOp("CONV_2D", {"in": ["x", "w", ""]}, {"out": ["y"]}, {"StrideH": 1, "StrideW": 1, "Padding": 1})
    piece = SourceOp("STRIDED_SLICE", {"in": ["y", "b", "e", "s"]}, {"out": ["z"]}, {})
    bounds = {"b": np.zeros(5, np.int32), "e": np.ones(5, np.int32), "s": np.ones(5, np.int32)}
    constants = {"w": np.ones((4, 3, 3, 4), np.float32), **bounds}
    with pytest.raises(qonvert.QonvertError, match=re.escape("CONV_2D -> y: tensor 'y': declared with rank 5, but its op writes rank 4")):
        build(_graph("tflite", [conv, piece], {"x": (1, 6, 6, 4)}, ["z"], constants=constants, shapes={"y": (1, 4, 4, 4, 1)}))
    bounds = {k: v[:4] for k, v in bounds.items()}
    build(_graph("tflite", [conv, piece], {"x": (1, 6, 6, 4)}, ["z"], constants={**constants, **bounds}, shapes={"y": (1, 4, 4, 4)}))


@pytest.mark.parametrize("op_type", ["fake_quantize_abs_max", "fake_channel_wise_quantize_dequantize_abs_max"])
def test_a_fake_quantization_of_an_empty_constant_is_one_error(op_type: str) -> None:
    """was: ValueError (zero-size array to reduction operation maximum) in normalise_fake_ops: the
    scale of a fake quantization of a constant is its abs-max (PIR coverage campaign)"""
    op = SourceOp(op_type, {"X": ["w"]}, {"Out": ["y"]}, {"bit_length": 8, "quant_axis": 0})
    graph = _graph("paddle", [op], {"x": (1, 4)}, ["y"], constants={"w": np.ones((0, 3), np.float32)})
    with pytest.raises(qonvert.QonvertError, match=f"{op_type} -> y: its input 'w' is an empty constant"):
        normalise_fake_ops(graph)
