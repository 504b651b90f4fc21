"""QuantParams: one quantization of one tensor, validated once, in ONNX terms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from . import versions

DEAD_SCALE = 1e-30  # a weight channel quantized below this contributes nothing float32 can hold

# Quantized dtypes we emit, with their integer range (the opset each needs: versions.py).
QDTYPES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int32": (-(2**31), 2**31 - 1),  # biases only
}


def dtype_opset(dtype: str) -> int:
    """The first opset whose Q/DQ take `dtype` (an int32 bias is only ever dequantized)."""
    return versions.quantized_type_opset(dtype, dequantize_only=dtype == "int32")


MIN_SCALE = float(np.finfo(np.float32).tiny)  # the smallest normal float32, about 1.2e-38


@dataclass(frozen=True, eq=False)
class QuantParams:
    """scale/zero_point are numpy arrays: 0-d for per-tensor, 1-d along `axis` for per-axis, or
    for block (group-wise) quantization the tensor's rank, with `block_size` elements along
    `axis` sharing one scale (ONNX 21's blocked Q/DQ; torchao's PerGroup).

    qmin/qmax is the range the source clamps to; it may be narrower than the dtype's
    (e.g. symmetric int8 weights in [-127, 127]).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str = "int8"
    axis: int | None = None
    qmin: int | None = None
    qmax: int | None = None
    block_size: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in QDTYPES:
            raise InputError(f"quantized dtype {self.dtype!r} is not supported")
        lo, hi = QDTYPES[self.dtype]
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point).astype(np.int64))
        try:
            qmin, qmax = (lo if self.qmin is None else int(self.qmin)), (hi if self.qmax is None else int(self.qmax))
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"quantization range [{self.qmin!r:.40}, {self.qmax!r:.40}] is not a pair of integers") from None
        if not lo <= qmin <= qmax <= hi:
            raise InputError(f"quantization range [{qmin}, {qmax}] is outside {self.dtype}'s [{lo}, {hi}]")
        object.__setattr__(self, "qmin", qmin)
        object.__setattr__(self, "qmax", qmax)

    @classmethod
    def unit(cls, dtype: str) -> QuantParams:
        """Scale 1, zero point 0: integer codes read as floats (DQ(q, 1, 0) == float(q), exactly)."""
        return cls(np.asarray(1.0, np.float32), np.asarray(0, np.int64), dtype)

    @property
    def per_axis(self) -> bool:
        return self.axis is not None

    @property
    def dtype_range(self) -> tuple[int, int]:
        lo, hi = QDTYPES[self.dtype]
        return lo, hi

    @property
    def code_range(self) -> tuple[int, int]:
        """The integer codes the source uses: [qmin, qmax]."""
        return int(self.qmin), int(self.qmax)  # type: ignore[arg-type]

    @property
    def blocked(self) -> bool:
        return self.block_size is not None

    @property
    def min_opset(self) -> int:
        return max(dtype_opset(self.dtype), versions.blocked_qdq_opset() if self.blocked else versions.MIN_OPSET)

    @property
    def narrow(self) -> bool:
        """True when the source clamps tighter than the dtype does (needs a float Clip)."""
        lo, hi = self.dtype_range
        return self.qmin > lo or self.qmax < hi  # type: ignore[operator]

    def validate(self, tensor: str, shape: tuple[int, ...] | None = None) -> QuantParams:
        """Check the contract (docs/design.md, "Scales and zero points"); `tensor` names the tensor in the error."""
        s = self.scale
        if s.size == 0 or not np.all(np.isfinite(s)) or not np.all(s > 0):
            bad = s[~(np.isfinite(s) & (s > 0))] if s.size else s
            raise InputError(f"tensor {tensor!r}: quantization scale must be finite and > 0, got {bad.ravel()[:4].tolist()}")
        lo, hi = self.dtype_range
        if np.any(self.zero_point < lo) or np.any(self.zero_point > hi):  # type: ignore[operator]
            raise InputError(f"tensor {tensor!r}: zero point outside {self.dtype} range")
        self.check_shape(tensor, shape)
        if np.any(s < MIN_SCALE):  # subnormal: products with it (a bias's s_x * s_w) underflow to 0
            raise InputError(f"tensor {tensor!r}: quantization scale {float(s.min()):.3g} is below float32's smallest normal number")
        return self

    def check_shape(self, tensor: str, shape: tuple[int, ...] | None) -> None:
        """The parameters' layout against the tensor's shape, without the scales' values (a weight's
        dead channels are revived after this)."""
        s = self.scale
        if self.blocked:
            self._validate_blocks(tensor, shape)
        elif self.per_axis:
            if s.ndim != 1 or self.zero_point.shape != s.shape:
                raise InputError(f"tensor {tensor!r}: per-axis scale and zero point must be 1-D of one length")
            if shape is not None:
                axis = self.axis if self.axis is not None else 0
                if not -len(shape) <= axis < len(shape):
                    raise InputError(f"tensor {tensor!r}: quant axis {axis} out of range for rank {len(shape)}")
                if shape[axis] != s.size:
                    raise InputError(f"tensor {tensor!r}: {s.size} scales for axis {axis} of length {shape[axis]}")
        elif s.ndim != 0 or self.zero_point.ndim != 0:
            raise InputError(f"tensor {tensor!r}: per-tensor scale and zero point must be scalars")

    def _validate_blocks(self, tensor: str, shape: tuple[int, ...] | None) -> None:
        s, axis, block = self.scale, self.axis or 0, int(self.block_size or 0)
        if block < 1 or self.zero_point.shape != s.shape or s.ndim == 0:
            raise InputError(f"tensor {tensor!r}: block quantization needs a block size >= 1 and scale / zero point of one shape")
        if shape is None:
            return
        if s.ndim != len(shape) or not -len(shape) <= axis < len(shape):
            raise InputError(f"tensor {tensor!r}: block scales of rank {s.ndim} (axis {axis}) for a tensor of rank {len(shape)}")
        expect = tuple(-(-d // block) if i == axis % len(shape) else d for i, d in enumerate(shape))
        if s.shape != expect:
            raise InputError(f"tensor {tensor!r}: block scales of shape {list(s.shape)} for shape {list(shape)} in blocks of {block}")

    def expanded(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """scale, zero point broadcast against a tensor of `shape` (a block's repeated along its axis)."""
        if not self.blocked:
            return self.broadcast(len(shape))
        axis = (self.axis or 0) % len(shape)
        block, size = int(self.block_size or 1), shape[axis]
        take = np.arange(size) // block
        return np.take(self.scale, take, axis=axis), np.take(self.zero_point, take, axis=axis)

    def revive_dead_channels(self, data: np.ndarray, tensor: str) -> tuple[QuantParams, np.ndarray, str | None]:
        """The contract's "Dead channels" (docs/design.md): trained weights have dead output channels, all zero (abs-max scale 0) or
        below DEAD_SCALE (PTQ of a channel BN drove to ~1e-37: its int32 bias at s_x * s_w would
        overflow). Such a channel gets the largest live scale and integer values equal to its zero
        point: exact for scale 0, and for a tiny scale a change far below float32's resolution of
        any output. An all-zero channel stored at a non-zero zero point (PyTorch's symmetric
        per-channel fake quantization gives one 127) gets zero point 0 and codes 0: exact, and the
        weight symmetric again. Returns (params, data, remark or None)."""
        s = self.scale
        if not self.per_axis or s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
            return self, data, None
        axis = self.axis if self.axis is not None else 0
        if not -data.ndim <= axis < data.ndim or data.shape[axis] != s.size or self.zero_point.size != s.size:
            return self, data, None  # validate() names the mismatch
        zero_point = self.zero_point.reshape(-1).astype(np.int64)
        dead = s < DEAD_SCALE
        idle = ~dead & (zero_point != 0)
        if idle.any():  # only channels stored off zero are read (symmetric weights never are)
            moved = np.moveaxis(data, axis, 0)
            idle[idle] = [bool(np.all(moved[c] == zero_point[c])) for c in np.flatnonzero(idle)]
        if not dead.any() and not idle.any():
            return self, data, None
        data = np.array(data, copy=True)
        moved = np.moveaxis(data, axis, 0)
        moved[dead] = zero_point[dead].reshape((-1,) + (1,) * (data.ndim - 1)).astype(data.dtype)
        moved[idle] = 0
        live = s[~dead]
        fill = np.float32(live.max() if live.size else 1.0)
        notes = []
        if dead.any():
            zero = int((s == 0).sum())
            notes.append(
                f"{int(dead.sum())} of {s.size} channels are dead ({zero} of scale 0, the rest below {DEAD_SCALE:g}): "
                f"given scale {fill:.4g} and zero weights"
            )
        if idle.any():
            notes.append(f"{int(idle.sum())} all-zero channels stored at a non-zero zero point: given zero point 0")
        revived = QuantParams(
            np.where(dead, fill, s).astype(s.dtype),
            np.where(idle, 0, zero_point).reshape(self.zero_point.shape),
            self.dtype,
            self.axis,
            self.qmin,
            self.qmax,
        )
        return revived, data, f"tensor {tensor!r}: " + "; ".join(notes)

    def with_axis(self, axis: int | None) -> QuantParams:
        return QuantParams(self.scale, self.zero_point, self.dtype, axis, self.qmin, self.qmax, self.block_size)

    def with_scale(self, scale: np.ndarray) -> QuantParams:
        return QuantParams(scale, self.zero_point, self.dtype, self.axis, self.qmin, self.qmax, self.block_size)

    def transposed(self, perm: list[int]) -> QuantParams:
        """The parameters of the tensor transposed by `perm`: the axis moves, and block scales
        (one per block, of the tensor's rank) are transposed with it."""
        axis = perm.index(self.axis or 0) if self.per_axis else None
        if not self.blocked:
            return self.with_axis(axis)
        return QuantParams(self.scale.transpose(perm), self.zero_point.transpose(perm), self.dtype, axis, self.qmin, self.qmax, self.block_size)

    def same_as(self, other: QuantParams) -> bool:
        return (
            self.dtype == other.dtype
            and self.axis == other.axis
            and self.block_size == other.block_size
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def broadcast(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """scale, zero point shaped to broadcast against a tensor of `rank`."""
        if not self.per_axis:
            return self.scale, self.zero_point
        shape = [1] * rank
        shape[self.axis if self.axis is not None else 0] = self.scale.size
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """ONNX QuantizeLinear on numpy (round half to even, saturate to the dtype)."""
        s, z = self.expanded(x.shape)
        lo, hi = self.dtype_range
        q = np.rint(x.astype(np.float32) / s) + z
        return np.clip(q, lo, hi).astype(NUMPY_DTYPES[self.dtype])

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self.expanded(q.shape)
        if q.dtype.kind in "iu" and q.dtype.itemsize <= 2:  # codes and their differences are exact in float32: one buffer
            real = q.astype(np.float32)
            real -= z
        else:  # (code - zero point) exact, then float32 (codes held in a float array are whole numbers)
            real = (q.astype(np.int64) - z).astype(np.float32)
        real *= s  # in float32 (a float64 scale's product rounds to the same float32)
        return real


NUMPY_DTYPES: dict[str, type] = {
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int4": np.int8,
    "uint4": np.uint8,
    "int32": np.int32,
}
