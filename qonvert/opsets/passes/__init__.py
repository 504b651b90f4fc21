"""The whole-graph canonicalisation stage: exact rewrites only (docs/design.md, "Passes" and "Exact rewrites")."""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes as ir_passes

from .base import RewritePass, run_passes, subgraphs
from .batchnorm import FoldBatchnorm
from .bias import FoldBiasAdd, QuantizeBiases
from .constants import DropNoopReshapes, FoldConstantLayout
from .pad import FoldZeroPad
from .qdq import (
    ActivationsToUint8,
    PushDQThroughLayout,
    QuantizeLayoutOutputs,
    QuantizeOpOutputs,
    SettleRequantizations,
    SplitSharedDQ,
    TwinSharedQ,
)
from .shapes import Cleanup

__all__ = ["RewritePass", "canonical_passes", "canonicalize", "run_passes", "subgraphs"]


def canonical_passes() -> list[ir_passes.PassBase]:
    """The canonicalisation, in order: each pass's `after` says what it builds on, its `promises`
    what holds once it ran. Control-flow subgraphs get the Q/DQ placement passes only: the float
    folds would reorder the float arithmetic of torchlib's loop bodies (MLAS rounds B and B^T
    products apart)."""
    return [
        FoldConstantLayout(),
        Cleanup(),
        DropNoopReshapes(),
        FoldBiasAdd(),
        FoldBatchnorm(),
        QuantizeBiases(),
        QuantizeOpOutputs(),
        PushDQThroughLayout(),
        QuantizeLayoutOutputs(),
        SplitSharedDQ(),
        SettleRequantizations(),
        ActivationsToUint8(),
        TwinSharedQ(),
        FoldZeroPad(),
        Cleanup(shapes=None),
    ]


def canonicalize(model: ir.Model) -> dict[str, int]:
    """Run the canonicalisation; returns how often each rewrite fired (shown by `inspect`)."""
    return run_passes(model, canonical_passes())
