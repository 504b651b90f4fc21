"""RANDOM_UNIFORM, RANDOM_STANDARD_NORMAL and MULTINOMIAL as ONNX's RandomUniform, RandomNormal and
Multinomial. The draws are ONNX Runtime's, not LiteRT's (their generators differ), so whatever
depends on them matches LiteRT in distribution only, never sample by sample: the conversion says so.
A seed pair the file sets is kept (as one ONNX seed): each session then draws the same sequence,
run after run, as one LiteRT interpreter does."""

from __future__ import annotations

import onnx_ir as ir

from ....errors import InputError
from ...context import NP_TO_IR, ConversionContext
from ...registry import register
from ...source import SourceOp
from ..layout import arg, out
from .shape import constant_int, constant_vector

_ONNX = {"RANDOM_UNIFORM": ("RandomUniform", {"low": 0.0, "high": 1.0}), "RANDOM_STANDARD_NORMAL": ("RandomNormal", {"mean": 0.0, "scale": 1.0})}


def _seeded(ctx: ConversionContext, op: SourceOp) -> dict[str, float]:
    ctx.remark(f"op {op.label} draws random numbers: ONNX Runtime's generator is not LiteRT's, so what depends on them matches in distribution only")
    seed, seed2 = op.int_attr("Seed", default=0), op.int_attr("Seed2", default=0)
    return {"seed": float((seed * 1000003 + seed2) % (1 << 24))} if seed or seed2 else {}  # exact in float32


@register("tflite", *_ONNX)
def random_values(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    shape = constant_vector(ctx, op, 0, "shape")
    if any(d < 0 for d in shape):
        raise InputError(f"op {op.label}: shape {shape} has a negative dimension")
    onnx_op, attrs = _ONNX[op.type]
    return ctx.b.op(onnx_op, [], {"shape": shape, "dtype": ir.DataType.FLOAT, **attrs, **_seeded(ctx, op)})


@register("tflite", "MULTINOMIAL")
def multinomial(ctx: ConversionContext, op: SourceOp) -> ir.Value:
    """MULTINOMIAL(logits [batch, classes], num_samples): class indices drawn from softmax(logits)."""
    samples = constant_int(ctx, op, 1, "num_samples")
    dtype = ctx.source.dtypes.get(out(op), "int64")
    if samples < 1 or dtype not in ("int32", "int64") or len(ctx.shape(arg(op, 0)) or ()) != 2:
        raise InputError(f"op {op.label}: expected [batch, classes] logits, num_samples >= 1 and int32 or int64 output")
    logits = ctx.laid_out(arg(op, 0) or "")
    return ctx.b.op("Multinomial", [logits], {"sample_size": samples, "dtype": NP_TO_IR[dtype], **_seeded(ctx, op)})
