"""Detection post-processing: NON_MAX_SUPPRESSION_V4 (indices padded to max_output_size, and the
count of valid ones) and _V5 (also their scores; hard NMS only). ONNX's NonMaxSuppression takes the
same corner boxes ([y1, x1, y2, x2], any diagonal) and thresholds, and answers (batch, class, box)
rows: the box column is the answer, padded here as TFLite pads it."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ....errors import InputError
from ....opsets.versions import first_opset
from ...context import ConversionContext
from ...registry import register
from ...source import SourceOp
from ..layout import arg, out
from .shape import cast_to_source


def _scalar(ctx: ConversionContext, index: int, op: SourceOp, dtype: ir.DataType) -> ir.Value:
    return ctx.b.op("Cast", [ctx.b.op("Reshape", [ctx.laid_out(arg(op, index) or ""), ctx.b.ints([1])])], {"to": dtype})


@register("tflite", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", opset=first_opset("Shape", "start"))
def non_max_suppression(ctx: ConversionContext, op: SourceOp) -> list[ir.Value]:
    if op.type.endswith("V5"):
        sigma = ctx.array(arg(op, 5))
        if sigma is None or float(np.ravel(sigma)[0]) != 0.0:
            raise InputError(f"op {op.label}: soft NMS (soft_nms_sigma not a constant 0) is not supported")
    # LiteRT takes the later of two boxes of equal score first, ONNX the earlier: the boxes go in
    # reversed, and the positions come back as N - 1 - position
    last = ctx.b.op("Sub", [ctx.b.op("Shape", [ctx.laid_out(arg(op, 1) or "")]), ctx.b.ints([1])])
    flipped = [
        ctx.b.op("Slice", [ctx.laid_out(arg(op, i) or ""), ctx.b.ints([-1]), ctx.b.ints([-(2**63)]), ctx.b.ints([0]), ctx.b.ints([-1])])
        for i in (0, 1)
    ]
    boxes = ctx.b.op("Unsqueeze", [flipped[0], ctx.b.ints([0])])  # [1, N, 4]
    scores = ctx.b.op("Reshape", [flipped[1], ctx.b.ints([1, 1, -1])])  # [1, 1, N]
    limit = _scalar(ctx, 2, op, ir.DataType.INT64)
    iou, low = (_scalar(ctx, i, op, ir.DataType.FLOAT) for i in (3, 4))
    chosen = ctx.b.op("NonMaxSuppression", [boxes, scores, limit, iou, low])  # [K, 3]: best first
    index = ctx.b.op("Sub", [last, ctx.b.op("Gather", [chosen, ctx.b.ints([2])], {"axis": 1})])  # [K, 1]
    count = ctx.b.op("Shape", [index], {"start": 0, "end": 1})
    padding = ctx.b.op("Concat", [ctx.b.ints([0]), ctx.b.op("Sub", [limit, count])], {"axis": 0})
    padded = ctx.b.op("Pad", [ctx.b.op("Reshape", [index, ctx.b.ints([-1])]), padding])  # zeros after the valid ones
    outputs = [cast_to_source(ctx, padded, out(op), produced="int64")]
    if op.type.endswith("V5"):
        picked = ctx.b.op("Gather", [ctx.laid_out(arg(op, 1) or ""), ctx.b.op("Reshape", [index, ctx.b.ints([-1])])], {"axis": 0})
        outputs.append(ctx.b.op("Pad", [picked, padding]))
    valid = ctx.b.op("Reshape", [count, ctx.b.ints([])])
    outputs.append(cast_to_source(ctx, valid, out(op, len(outputs)), produced="int64"))
    return outputs
