"""TensorRT readiness. TensorRT runs explicit-quantization QDQ ONNX with signed int8 and zero
point 0 only (activations in [-128, 127], weights in [-127, 127]); its ONNX parser takes no int32
DequantizeLinear ("only activation types allowed as input"), so a bias must be float; it quantizes
activations per tensor and weights per output channel; and between a DQ and the next Q only some
layers run in int8 (the rest run in float and cost a reformat).

`findings` lists all of it for a converted model; `make_symmetric` re-derives what can be: each
asymmetric activation is re-quantized symmetrically with its real range kept (the cost is one
coarser step where the range was lopsided), uint8 storage of a symmetric tensor (zero point 128)
becomes int8 with zero point 0 (exact), int32 biases become float constants (exact), and weight
codes of -128 become -127 (one step on those values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes as ir_passes
import onnx_ir.passes.common as common

from ..errors import InputError
from ..opsets.graph_edit import const_array, initializer
from ..opsets.passes import RewritePass, run_passes
from . import Target

# Layers TensorRT runs in int8 between a DQ and a Q (data movement included), as its QDQ
# placement recommendations describe; any other op reading a DQ runs in float.
INT8_LAYERS = frozenset(
    {
        "Conv", "ConvTranspose", "MatMul", "Gemm", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "Add", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Concat", "Reshape", "Transpose", "Flatten",
        "Squeeze", "Unsqueeze", "Slice", "Split", "Resize", "Pad", "Identity",
        "QuantizeLinear", "DequantizeLinear",
    }
)  # fmt: skip
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "Gemm": 0, "MatMul": 1}  # the output-channel axis


@dataclass(frozen=True)
class Finding:
    kind: str  # "asymmetric", "uint8", "bias", "weight_range", "placement", "float_layer"
    tensor: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.tensor}: {self.detail}"


def findings(model: onnx.ModelProto | ir.Model) -> list[Finding]:
    """Everything TensorRT would reject or run outside int8, in graph order."""
    graph = (model if isinstance(model, ir.Model) else ir.from_proto(model)).graph
    found: list[Finding] = []
    float_layers: set[str] = set()
    for node in graph:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        data = node.inputs[0]
        scale = const_array(node.inputs[1])
        zp = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        name = (data.name if data is not None else None) or node.name or "?"
        codes = const_array(data)
        if codes is not None:  # a weight or bias DQ
            if codes.dtype == np.int32:
                found.append(Finding("bias", name, "int32 DequantizeLinear: TensorRT's parser takes none; the bias must be float"))
            elif codes.dtype == np.int8 and codes.size and codes.min() == -128:
                found.append(Finding("weight_range", name, f"{int((codes == -128).sum())} codes of -128: TensorRT's weights are [-127, 127]"))
            _check_weight_axis(node, name, found)
            continue
        if node.op_type == "DequantizeLinear":  # an activation DQ: what reads it
            for user in node.outputs[0].consumers():
                if user.op_type not in INT8_LAYERS and user.name not in float_layers:
                    float_layers.add(user.name or "?")
                    detail = f"{user.op_type} has no int8 TensorRT layer: runs in float between DQ and Q"
                    found.append(Finding("float_layer", user.name or "?", detail))
            continue
        if scale is not None and scale.size > 1:
            found.append(Finding("placement", name, "per-axis activation quantization: TensorRT quantizes activations per tensor"))
        dtype = zp.dtype if zp is not None else np.dtype(np.uint8)
        zero = int(np.asarray(zp).ravel()[0]) if zp is not None and zp.size else 0
        if dtype == np.uint8 and zero == 128:
            found.append(Finding("uint8", name, "uint8 with zero point 128: symmetric int8 stored as uint8 (exact to re-store)"))
        elif dtype == np.uint8 or zero != 0:
            found.append(Finding("asymmetric", name, f"{dtype.name} zero point {zero}: TensorRT needs int8 with zero point 0"))
    return found


def _check_weight_axis(node: ir.Node, name: str, found: list[Finding]) -> None:
    axis = node.attributes.get_int("axis", 1)
    scale = const_array(node.inputs[1])
    if scale is None or scale.size <= 1:
        return
    for user in node.outputs[0].consumers():
        want = WEIGHT_AXIS.get(user.op_type)
        if user.op_type == "Gemm" and user.attributes.get_int("transB", 0) == 0:
            want = 1
        if want is not None and axis != want:
            found.append(Finding("placement", name, f"per-channel on axis {axis}, not {user.op_type}'s output channels ({want})"))


LOSSY = ("asymmetric", "weight_range")  # re-derived only when the user asks (symmetric=True)


def make_symmetric(model: onnx.ModelProto, lossy: bool = True) -> tuple[onnx.ModelProto, list[str]]:
    """The model (left as it is) with the re-derivable findings fixed (see the module docstring),
    and what changed, one line per kind; lossy=False: only the exact ones (uint8 storage, int32
    biases). Graph inputs and outputs keep their dtypes (the interface)."""
    ir_model = ir.from_proto(model)
    changes = symmetric_passes(ir_model, lossy)
    return ir.to_proto(ir_model), changes


def symmetric_passes(ir_model: ir.Model, lossy: bool = True) -> list[str]:
    """make_symmetric's passes, run on the IR model in place; what changed."""
    passes: list[ir_passes.PassBase] = [SymmetricActivations(lossy), FloatBiases(), *([ClipWeightCodes()] if lossy else [])]
    counts = run_passes(ir_model, [*passes, common.RemoveUnusedNodesPass()])  # the scales, zero points and codes replaced
    changes = {
        "requantized": "asymmetric activations re-quantized symmetrically (range kept, coarser steps)",
        "restored": "uint8 activations with zero point 128 stored as int8 (exact)",
        "bias": "int32 biases made float constants (exact)",
        "weights": "weights with codes of -128 clipped to -127 (one step on those codes)",
    }
    return [f"{counts[kind]} {text}" for kind, text in changes.items() if counts.get(kind)]


class SymmetricActivations(RewritePass):
    """Activation Qs as int8 with zero point 0: uint8 ones with zero point 128 re-stored (exact)
    and, `lossy`, asymmetric ones re-quantized over the same range."""

    counts_as = ("requantized", "restored")

    def __init__(self, lossy: bool) -> None:
        super().__init__()
        self.lossy = lossy

    def rewrite(self, graph: ir.Graph) -> tuple[int, int]:
        requantized = restored = 0
        interface = {v.name for v in (*graph.inputs, *graph.outputs)}
        for node in list(graph):
            if node.op_type != "QuantizeLinear" or node.outputs[0].name in interface:
                continue
            scale, zp = const_array(node.inputs[1]), const_array(node.inputs[2]) if len(node.inputs) > 2 else None
            if scale is None or scale.size != 1 or (zp is not None and zp.dtype == np.int8 and int(zp) == 0):
                continue
            dtype = zp.dtype if zp is not None else np.dtype(np.uint8)
            zero = int(zp) if zp is not None else 0
            exact = dtype == np.uint8 and zero == 128
            if not self.lossy and not exact:
                continue
            info = np.iinfo(dtype)
            low, high = float(scale) * (info.min - zero), float(scale) * (info.max - zero)
            new_scale = np.float32(scale) if exact else np.float32(max(abs(low), abs(high)) / 127.0)
            restored, requantized = restored + exact, requantized + (not exact)
            s_value, z_value = (
                initializer(graph, np.asarray(new_scale), f"{node.name}_trt_scale"),
                initializer(graph, np.asarray(np.int8(0)), f"{node.name}_trt_zp"),
            )
            for user in [node, *node.outputs[0].consumers()]:
                if user.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    user.replace_input_with(1, s_value)
                    user.replace_input_with(2, z_value)
            node.outputs[0].type = ir.TensorType(ir.DataType.INT8)
        return requantized, restored


class FloatBiases(RewritePass):
    """int32 biases as float constants, their value as the DQ computes it (exact)."""

    counts_as = ("bias",)

    def rewrite(self, graph: ir.Graph) -> int:
        done = 0
        for node in list(graph):
            codes = const_array(node.inputs[0]) if node.op_type == "DequantizeLinear" else None
            scale = const_array(node.inputs[1]) if codes is not None and codes.dtype == np.int32 else None
            if codes is None or scale is None:
                continue
            value = (codes.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)
            ir.convenience.replace_all_uses_with(node.outputs[0], initializer(graph, value, f"{node.name}_float"))
            graph.remove(node, safe=True)
            done += 1
        return done


class ClipWeightCodes(RewritePass):
    """int8 weight codes of -128 clipped to -127 (one step on those codes): TensorRT's range."""

    counts_as = ("weights",)

    def rewrite(self, graph: ir.Graph) -> int:
        done = 0
        for node in list(graph):
            codes = const_array(node.inputs[0]) if node.op_type == "DequantizeLinear" else None
            if codes is not None and codes.dtype == np.int8 and codes.size and codes.min() == -128:
                node.replace_input_with(0, initializer(graph, np.maximum(codes, -127).astype(np.int8), f"{node.name}_trt_codes"))
                done += 1
        return done


class TensorRT(Target):
    """TensorRT's explicit-quantization form: signed int8, zero point 0, weight codes in [-127,
    127], float biases. The exact changes are always made; `symmetric` also re-quantizes what
    needs a lossy change (asymmetric activations, codes of -128), with each range kept."""

    name = "tensorrt"
    form = "the TensorRT form"
    options = ("symmetric",)

    def derive(self, model: ir.Model, where: str, **options: Any) -> list[str]:
        symmetric = bool(options.get("symmetric"))
        lossy = sorted((f for f in findings(model) if f.kind in LOSSY), key=lambda f: LOSSY.index(f.kind))
        if lossy and not symmetric:
            listed = "; ".join(str(f) for f in lossy[:20]) + (f"; ... {len(lossy) - 20} more" if len(lossy) > 20 else "")
            raise InputError(f"{where}: not TensorRT-ready, {len(lossy)} finding(s) need symmetric re-derivation (--symmetric): {listed}")
        remarks = [f"tensorrt: {c}" for c in symmetric_passes(model, lossy=symmetric)]
        remarks += [f"tensorrt: {f}" for f in findings(model)]  # what stays: float layers, placements, the interface
        return remarks

    def findings(self, model: onnx.ModelProto) -> list[str]:
        return [str(f) for f in findings(model)]

    def stages(self, canonical: onnx.ModelProto, derived: onnx.ModelProto, **options: Any) -> list[tuple[str, onnx.ModelProto]]:
        return [("the symmetric re-derivation", derived)] if options.get("symmetric") else []  # without it: exact
