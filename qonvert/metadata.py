"""The qonvert keys in an ONNX model's metadata_props: written by the converter, read by verify and
users. One module, so a writer and its readers cannot drift apart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from .errors import InputError

VERSION = "qonvert.version"
SOURCE_FRAMEWORK = "qonvert.source_framework"
SOURCE_PATH = "qonvert.source_path"
OPSET = "qonvert.opset"
NAME_MAP = "qonvert.name_map"  # source tensor -> ONNX value, where they differ (JSON object)
LAYOUTS = "qonvert.layouts"  # quantized source tensor -> the permutation its ONNX value holds it in
SOURCE_OP = "qonvert.source_op"  # node metadata: the label of the source op the node was mapped from
TWIN = "/twin"  # value-name suffix of a Q that twins another Q of the same value (passes.qdq.twin_shared_q)
SPEED_UINT8 = "qonvert.speed_uint8"  # node metadata: a Q the speed form re-stored from int8 (targets.ort_speed)
TARGET = "qonvert.target"  # the target form a model was derived in (targets/), absent for the canonical form
INPUT_QUANTIZATION = "qonvert.input_quantization"  # integer input -> [scale, zero point], where no DQ of it says so
STATE = "qonvert.state"  # the model's state variables (JSON list of StateVariable.as_json)


@dataclass
class StateVariable:
    """A source variable (a TFLite resource variable) carried between runs: the model reads it from
    graph input `input` and writes its next value to graph output `output`; one run is one step."""

    variable: str  # the source's own name (TFLite: VAR_HANDLE's shared_name)
    input: str
    output: str
    initial: np.ndarray  # the value before the first step, in the input's dtype
    source_output: str = ""  # the source tensor holding the next value (what the reference reads)

    def as_json(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "input": self.input,
            "output": self.output,
            "source_output": self.source_output,
            "dtype": self.initial.dtype.name,
            "shape": list(self.initial.shape),
            "initial": self.initial.ravel().tolist(),
        }


def metadata(model: onnx.ModelProto | ir.Model) -> dict[str, str]:
    if isinstance(model, ir.Model):
        return dict(model.metadata_props)
    return {p.key: p.value for p in model.metadata_props}


def write_states(model: ir.Model, states: list[StateVariable]) -> None:
    if states:
        model.metadata_props[STATE] = json.dumps([s.as_json() for s in states])


def read_states(model: onnx.ModelProto | ir.Model) -> list[StateVariable]:
    """The state variables of a converted streaming model ([] for a stateless one)."""
    raw = metadata(model).get(STATE)
    if not raw:
        return []
    try:
        return [
            StateVariable(
                e["variable"],
                e["input"],
                e["output"],
                np.asarray(e["initial"], dtype=np.dtype(e["dtype"])).reshape(e["shape"]),
                e.get("source_output", ""),
            )
            for e in json.loads(raw)
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"metadata {STATE!r} is malformed ({type(exc).__name__}: {exc})") from None


def write_input_quantization(model: ir.Model, quantization: dict[str, tuple[float, int]]) -> None:
    """The scale and zero point of integer inputs a model reads without a DequantizeLinear (the
    litert-exact form computes on the codes): verify quantizes float feeds by them."""
    if quantization:
        model.metadata_props[INPUT_QUANTIZATION] = json.dumps({k: [float(s), int(z)] for k, (s, z) in quantization.items()})


def read_input_quantization(model: onnx.ModelProto | ir.Model) -> dict[str, tuple[float, int]]:
    raw = metadata(model).get(INPUT_QUANTIZATION)
    try:
        return {k: (float(v[0]), int(v[1])) for k, v in json.loads(raw).items()} if raw else {}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InputError(f"metadata {INPUT_QUANTIZATION!r} is malformed ({type(exc).__name__}: {exc})") from None
