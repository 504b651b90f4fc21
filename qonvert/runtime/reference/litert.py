"""LiteRT reference runner: the ai-edge-litert interpreter on the .tflite file itself."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError, first_line
from .. import refio
from ..quiet import native_stderr_silenced

# LiteRT's kernel sets, by the name verify reports them under: the default (XNNPACK's delegate
# over the builtin kernels), the builtin (optimized) kernels alone, and the reference kernels.
# Each rounds its own way. An interpreter that keeps every tensor (per layer) runs no delegate.
KERNEL_SETS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def interpreter(model: Path, preserve_all_tensors: bool = False, kernels: str = "xnnpack"):  # type: ignore[no-untyped-def]
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise InputError("verifying a TFLite model needs ai-edge-litert (pip install 'qonvert[tflite]')") from None
    resolver = getattr(OpResolverType, KERNEL_SETS[kernels])
    try:
        with native_stderr_silenced():  # its delegate's INFO line
            interp = Interpreter(
                model_path=str(model), experimental_preserve_all_tensors=preserve_all_tensors, experimental_op_resolver_type=resolver
            )
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{model}: LiteRT cannot load it: {exc}") from None
    return interp


def run_reference(model: Path, inputs: refio.Samples, extra: list[str] | None = None, kernels: str = "xnnpack") -> list[list[np.ndarray]]:
    """Outputs in the model's output order, then the `extra` tensors by name, one list per sample;
    inputs are fed by name. Samples run in order on one interpreter, so a stateful model's
    variables carry from one to the next (extra: the tensors assigned to them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = interpreter(model, preserve_all_tensors=bool(extra), kernels=kernels)
    by_name = {d["name"]: d["index"] for d in interp.get_tensor_details()}
    missing = [n for n in extra or [] if n not in by_name]
    if missing:
        raise InputError(f"{model}: LiteRT has no tensor {missing[0]!r}: not the model this ONNX was converted from?")
    fetch = [d["index"] for d in interp.get_output_details()] + [by_name[n] for n in extra or []]
    outputs = []
    for feed in inputs:
        _invoke(interp, model, feed)
        outputs.append([interp.get_tensor(i).copy() for i in fetch])
    return outputs


def run_intermediates(model: Path, inputs: refio.Samples, kernels: str = "xnnpack") -> list[dict[str, np.ndarray]]:
    """Every tensor LiteRT computes, by name, one dict per sample (verify --per-layer). Its outputs
    are the same kernel set's run_reference gives (XNNPACK's too: measured on the fixtures)."""
    with warnings.catch_warnings():  # LiteRT warns that this is for debugging: it is
        warnings.simplefilter("ignore")
        interp = interpreter(model, preserve_all_tensors=True, kernels=kernels)
    # Resource handles (object dtype) have no data: reading one crashes LiteRT.
    tensors = [d for d in interp.get_tensor_details() if d["name"] and np.dtype(d["dtype"]).kind != "O"]
    out = []
    for feed in inputs:
        _invoke(interp, model, feed)
        values = {}
        for d in tensors:
            try:
                values[d["name"]] = interp.get_tensor(d["index"]).copy()
            except ValueError:  # a tensor without data (an unused optional input)
                continue
        out.append(values)
    return out


def _invoke(interp, model: Path, feed: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    resized = False
    for d in interp.get_input_details():
        if d["name"] not in feed:
            raise InputError(f"{model}: no value for input {d['name']!r}")
        shape = list(np.shape(feed[d["name"]]))
        if shape != list(d["shape"]):  # a dynamic dimension (-1 in the signature) takes the feed's size
            try:
                interp.resize_tensor_input(d["index"], shape, strict=True)
            except (RuntimeError, ValueError) as exc:
                raise InputError(f"{model}: LiteRT refuses input {d['name']!r} of shape {shape}: {first_line(exc)}") from None
            resized = True
    if resized:
        interp.allocate_tensors()
    for d in interp.get_input_details():
        try:
            interp.set_tensor(d["index"], np.ascontiguousarray(feed[d["name"]]).astype(d["dtype"], copy=False))
        except ValueError as exc:
            raise InputError(f"{model}: LiteRT refuses input {d['name']!r}: {first_line(exc)}") from None
    try:
        interp.invoke()
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{model}: LiteRT failed on these inputs: {first_line(exc)}") from None
