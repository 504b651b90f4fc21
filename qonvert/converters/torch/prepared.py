"""Prepared but not converted modules: QAT models (FakeQuantize, FusedMovingAvgObsFakeQuantize,
observers on or off) and calibrated PTQ models (observers), from eager prepare(_qat), FX
prepare(_qat)_fx or PT2E prepare(_qat)_pt2e.

Each is converted by PyTorch's own convert (convert / convert_fx / convert_pt2e) on a copy, so its
scales and zero points are the observers' state exactly as PyTorch computes them; the result is
read like any converted module, and verify runs that same int8 model as the reference: it is what
PyTorch itself would deploy. The fake-quantized module differs from it, as from any int8 model:
x86's QAT config fake-quantizes activations to 0..127 (reduce_range) while its int8 kernels keep
0..255, so on inputs past the calibrated range the fake-quantized outputs clamp and the int8 ones
do not.
"""

from __future__ import annotations

import copy
from typing import Any

from ...errors import InputError, cause


def _observers(module: Any) -> list[tuple[str, Any]]:
    """Every observer and fake quantizer, by module path (torch.ao's and torchao's alike)."""
    kinds = ("Observer", "FakeQuantize")
    return [(name, m) for name, m in module.named_modules() if hasattr(m, "calculate_qparams") and any(k in type(m).__name__ for k in kinds)]


def is_prepared(module: Any) -> bool:
    """Whether `module` holds observers or fake quantizers (prepared, not converted)."""
    return bool(_observers(module))


def is_qat(module: Any) -> bool:
    return any("FakeQuantize" in type(m).__name__ for _, m in _observers(module))


def _check_calibrated(module: Any) -> None:
    """Convert on an observer that saw no data gives scale 1, zero point 0 and a warning: refuse."""
    import torch

    for name, m in _observers(module):
        observer = getattr(m, "activation_post_process", m)
        low = getattr(observer, "min_val", None)
        if isinstance(low, torch.Tensor) and (low.numel() == 0 or not bool(torch.isfinite(low).all())):
            where = name or type(module).__name__
            raise InputError(f"{where}: an observer that has seen no data: run the prepared model on calibration data first")


def convert_prepared(module: Any) -> Any:
    """PyTorch's own convert of a copy of `module` (the user's object is left as it is)."""
    import torch

    _check_calibrated(module)
    try:
        converted = copy.deepcopy(module)
    except Exception as exc:
        detail = f"{cause(exc)}"
        raise InputError(f"{type(module).__name__}: cannot copy the prepared module to convert it ({detail})") from None
    try:
        graph = getattr(converted, "graph", None)
        if graph is not None and any(isinstance(n.target, torch._ops.OpOverload) for n in graph.nodes):  # PT2E: aten ops
            from torchao.quantization.pt2e import move_exported_model_to_eval
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

            return convert_pt2e(move_exported_model_to_eval(converted))  # an exported graph has no .eval()
        if graph is not None:
            from torch.ao.quantization.quantize_fx import convert_fx

            return convert_fx(converted.eval())
        from torch.ao.quantization import convert

        return convert(converted.eval(), inplace=False)
    except ImportError:
        raise InputError("a PT2E-prepared module needs torchao (pip install 'qonvert[torch]')") from None
    except Exception as exc:  # PyTorch's convert raises many kinds on a module it cannot take
        raise InputError(f"PyTorch's convert failed on the prepared module ({cause(exc)})") from None


def reference_remark(module: Any) -> str:
    kind = "QAT" if is_qat(module) else "calibrated"
    return f"reference: PyTorch's own convert of the {kind} module (its int8 model); the fake-quantized module itself is not what deploys"
