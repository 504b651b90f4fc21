"""The speed form's matmuls of weight-only models (torchao's quantize_), as ORT CPU's contrib
kernels run them fastest.

An integer product (torchao's `_int_mm`: codes read by unit-scale DQs on both sides, the scales
applied after) needs nothing: ORT's own fusion makes it a MatMulIntegerToFloat of the canonical
form (measured on GPT-2: 3.2x fp32), faster than one written here with int8 activations (its
s8s8 path was 15x slower).

A MatMul or Gemm whose weight is a DQ of a blocked int4 / int8 initializer along its reduction
axis (torchao's PerGroup), or a unit-scale int8 weight whose per-column scale torchao applies
after the product, becomes com.microsoft MatMulNBits with the weight packed as ORT wants it and
accuracy level 4: ORT quantizes the activations to int8 per block and runs integer dot products.
That rounds what torchao keeps float (the activations), so verify prints the cost.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..opsets.graph_edit import const_array, initializer, qparams_of, weight_dq
from ..opsets.qparams import QuantParams

MS = "com.microsoft"
ACCURACY_INT8 = 4  # MatMulNBits: activations quantized to int8 per block (ORT's fastest CPU path)


def _unit(node: ir.Node) -> bool:
    """A DQ of scale 1 and zero point 0: integer codes read as floats."""
    qp = qparams_of(node)
    return qp is not None and not qp.per_axis and float(qp.scale) == 1.0 and int(qp.zero_point) == 0


def _scaled_after(node: ir.Node) -> tuple[ir.Node, np.ndarray] | None:
    """torchao's int8 weight-only: MatMul(x, DQ(W, 1, 0)) -> Mul by a constant scale per column;
    (that Mul, the scale)."""
    users = node.outputs[0].consumers()
    if node.op_type != "MatMul" or len(users) != 1 or users[0].op_type != "Mul" or node.outputs[0].is_graph_output():
        return None
    mul = users[0]
    scale = const_array(mul.inputs[1] if mul.inputs[0] is node.outputs[0] else mul.inputs[0])
    return (mul, scale.astype(np.float32)) if scale is not None and scale.ndim == 1 and np.all(scale > 0) else None


def _nbits_weight(node: ir.Node) -> tuple[np.ndarray, QuantParams, ir.Node | None] | None:
    """The weight as [N, K] codes with its block params along K, where it is one MatMulNBits takes,
    and the Mul whose per-column scale it takes in (torchao's int8 weight-only), if any."""
    found = weight_dq(node.inputs[1])
    if found is None:
        return None
    dq, codes, qp = found
    scaled = _scaled_after(node) if _unit(dq) else None
    mul = scaled[0] if scaled is not None else None
    if scaled is not None and codes.ndim == 2:  # the column scale, one block of 32 (or less) at a time
        scale = scaled[1]
        k, n = codes.shape
        if scale.size != n:
            return None
        blocks = -(-k // 32)
        qp = QuantParams(np.repeat(scale[None], blocks, 0), np.zeros((blocks, n), np.int64), qp.dtype, 0, block_size=32)
    transposed = node.op_type == "Gemm" and bool(node.attributes["transB"].as_int()) if "transB" in node.attributes else False
    if node.op_type == "Gemm" and (not transposed or (len(node.inputs) > 2 and node.inputs[2] is not None and const_array(node.inputs[2]) is None)):
        return None
    if not qp.blocked or codes.ndim != 2 or qp.dtype not in ("int4", "int8"):
        return None
    block = int(qp.block_size or 0)
    if qp.axis != (1 if transposed else 0) or block < 16 or block & (block - 1):
        return None  # MatMulNBits' blocks: a power of two, 16 or more, along K
    if not transposed:  # [K, N] -> [N, K]
        qp = qp.transposed([1, 0])
        codes = codes.T
    return np.asarray(codes, np.int64), qp, mul


def _pack(codes: np.ndarray, qp: QuantParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits' B [N, blocks, blob] (unsigned codes, two 4-bit ones a byte, low nibble first),
    scales [N, blocks] and packed unsigned zero points."""
    bits, block = (4 if qp.dtype == "int4" else 8), int(qp.block_size or 0)
    n, k = codes.shape
    blocks = -(-k // block)
    offset = 1 << (bits - 1)  # signed codes stored unsigned
    padded = np.zeros((n, blocks * block), np.int64)
    padded[:, :k] = codes + offset
    zero = qp.zero_point.reshape(n, blocks).astype(np.int64) + offset
    if bits == 8:
        return padded.reshape(n, blocks, block).astype(np.uint8), qp.scale.reshape(n, blocks), zero.astype(np.uint8).reshape(-1)
    pairs = padded.reshape(n, blocks, block // 2, 2)
    packed = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
    zeros = np.zeros((n, -(-blocks // 2) * 2), np.int64)
    zeros[:, :blocks] = zero
    packed_zeros = (zeros[:, 0::2] | (zeros[:, 1::2] << 4)).astype(np.uint8)
    return packed, qp.scale.reshape(n, blocks), packed_zeros.reshape(-1)


def blocked_weights(graph: ir.Graph) -> int:
    """MatMul / Gemm of a blocked int4 / int8 weight -> MatMulNBits (+ Add of a Gemm's bias)."""
    done = 0
    for node in list(graph):
        if node.op_type not in ("MatMul", "Gemm") or node.domain:
            continue
        found = _nbits_weight(node)
        if found is None:
            continue
        codes, qp, mul = found
        packed, scales, zeros = _pack(codes, qp)
        n, k = codes.shape
        inputs = [
            node.inputs[0],
            initializer(graph, packed, f"{node.name}_nbits_B"),
            initializer(graph, scales.astype(np.float32), f"{node.name}_nbits_scales"),
            initializer(graph, zeros, f"{node.name}_nbits_zero_points"),
        ]
        attrs = ir.convenience.convert_attributes(
            {"K": k, "N": n, "bits": 4 if qp.dtype == "int4" else 8, "block_size": int(qp.block_size or 0), "accuracy_level": ACCURACY_INT8}
        )
        fused = ir.Node(MS, "MatMulNBits", inputs, attrs, name=f"{node.name}_nbits", num_outputs=1)
        graph.insert_before(node, fused)
        out = fused.outputs[0]
        if node.op_type == "Gemm" and len(node.inputs) > 2 and node.inputs[2] is not None:
            add = ir.Node("", "Add", [out, node.inputs[2]], name=f"{node.name}_bias", num_outputs=1)
            graph.insert_before(node, add)
            out = add.outputs[0]
        replaced = mul if mul is not None else node  # the column scale is in the weight's scales now
        out.type, out.shape = replaced.outputs[0].type, replaced.outputs[0].shape
        replaced.outputs[0].replace_all_uses_with(out, replace_graph_outputs=True)
        out.name, replaced.outputs[0].name = replaced.outputs[0].name, f"{replaced.outputs[0].name}_unused"
        for gone in (mul, node) if mul is not None else (node,):
            graph.remove(gone, safe=True)
        done += 1
    return done
