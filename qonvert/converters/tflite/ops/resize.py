"""RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR (NCHW Resize with TFLite's coordinate conventions)."""

from __future__ import annotations

import numpy as np

from ....errors import InputError
from ...context import ConversionContext, Laid
from ...registry import register
from ...source import SourceOp
from ..layout import NCHW, declared_shape, spatial
from .shape import constant_vector


def _mode(op: SourceOp, nearest: bool) -> dict[str, str]:
    if op.attr("AlignCorners", default=False):
        coordinates, rounding = "align_corners", "round_prefer_ceil"
    elif op.attr("HalfPixelCenters", default=False):
        # TF: nearest reads floor((x + 0.5) * in / out), which is half_pixel's (x + 0.5) * in / out - 0.5
        # rounded half up (tf_half_pixel_for_nn says the same but is deprecated); bilinear is half_pixel
        coordinates, rounding = "half_pixel", "round_prefer_ceil"
    else:
        coordinates, rounding = "asymmetric", "floor"
    return {"coordinate_transformation_mode": coordinates, **({"nearest_mode": rounding} if nearest else {})}


@register("tflite", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
def resize(ctx: ConversionContext, op: SourceOp) -> Laid:
    nearest = op.type == "RESIZE_NEAREST_NEIGHBOR"
    x = spatial(ctx, op)
    height, width = constant_vector(ctx, op, 1, "size", 2)
    in_shape = declared_shape(ctx, op, 0, 4, "input")
    if in_shape[0] < 0 or in_shape[3] < 0:
        raise InputError(f"op {op.label}: needs a static batch and channels")
    sizes = ctx.b.ints([in_shape[0], in_shape[3], height, width])
    attrs = {"mode": "nearest" if nearest else "linear", **_mode(op, nearest)}
    empty = ctx.b.const(np.zeros(0, np.float32), "no_scales")
    return Laid(ctx.b.op("Resize", [x, ctx.b.const(np.zeros(0, np.float32), "no_roi"), empty, sizes], attrs), NCHW)
