"""What verify found, in one versioned schema: the JSON (`as_dict`) and the HTML page render
from the same dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..runtime.compare import OutputStats
from ..runtime.layers import LayerStats
from ..runtime.ort import FusionReport

SCHEMA = "qonvert.verify/1"
# which bar sets the verdict (and the CLI's exit code); "spread": end to end, or within the
# source's own kernel spread with every op within 1 step per layer
BARS = ("end-to-end", "per-layer", "spread", "exact")  # exact: every output and every tensor equal (litert-exact)
LAYER_TOLERANCE_STEPS = 1  # per layer: every op within 1 step of the source on the source's inputs


@dataclass
class InputCoverage:
    name: str
    reached: int  # quantization levels (codes) the samples reach
    levels: int  # levels the input's quantization has


@dataclass
class KernelSpread:
    """Two of the source runtime's kernel sets against each other on verify's inputs: how far the
    source departs from itself (its worst output)."""

    first: str
    second: str
    max_diff_lsb: float
    pct_exact: float
    agreement: float | None  # in the output's own terms (its kind), the worst output's
    agreement_terms: str = ""


@dataclass
class VerifyReport:
    outputs: list[OutputStats]
    samples: int
    device: str
    tolerance_lsb: float
    fusion: FusionReport | None = None
    remarks: list[str] = field(default_factory=list)
    layers: list[LayerStats] | None = None  # verify(per_layer=True), in the graph's topological order
    inputs: list[InputCoverage] = field(default_factory=list)  # integer or quantized inputs
    bar: str = "end-to-end"
    framework: str = ""
    opset: int = 0
    model: str = ""  # the source, for titles
    runtime: str = ""  # what ran the source (LiteRT, ...)
    kernels: str = ""  # the source's kernel set the comparison ran against (where it has several)
    source_spread: list[KernelSpread] = field(default_factory=list)  # each pair of its kernel sets

    @property
    def end_to_end_ok(self) -> bool:
        """max |diff| within the tolerance on every output, and the same top-1."""
        ok = all(o.max_diff_lsb <= self.tolerance_lsb + 1e-3 for o in self.outputs)
        return ok and all(o.top1_agreement in (None, 1.0) for o in self.outputs)

    @property
    def per_layer_ok(self) -> bool | None:
        """Every op within 1 step of the source when fed the source's inputs (None: not run)."""
        return None if self.layers is None else all(layer.max_steps <= LAYER_TOLERANCE_STEPS for layer in self.layers)

    @property
    def largest_spread_lsb(self) -> float | None:
        """The source's widest disagreement with itself, in LSB (None: one kernel set only)."""
        return max((pair.max_diff_lsb for pair in self.source_spread), default=None)

    @property
    def within_source_spread(self) -> bool | None:
        """Every output within the source's own kernel spread, and every op within 1 step per
        layer (None: no spread measured, or per layer not run)."""
        largest = self.largest_spread_lsb
        if largest is None or self.per_layer_ok is None:
            return None
        return bool(self.per_layer_ok) and all(o.max_diff_lsb <= max(largest, self.tolerance_lsb) + 1e-3 for o in self.outputs)

    @property
    def bit_exact(self) -> bool:
        """Every output and every tensor compared per layer equal to the source's (0 LSB)."""
        layers_equal = self.layers is not None and all(layer.max_steps == 0 for layer in self.layers)
        return layers_equal and all(o.max_diff_lsb == 0 for o in self.outputs)

    @property
    def equivalent(self) -> bool:
        """The verdict by the chosen bar."""
        if self.bar == "exact":
            return self.bit_exact
        if self.bar == "per-layer":
            return bool(self.per_layer_ok)
        if self.bar == "spread":
            return self.end_to_end_ok or bool(self.within_source_spread)
        return self.end_to_end_ok

    @property
    def first_divergence(self) -> LayerStats | None:
        """The first tensor, in topological order, that leaves the per-layer tolerance."""
        return next((layer for layer in self.layers or [] if layer.max_steps > LAYER_TOLERANCE_STEPS), None)

    def as_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "schema": SCHEMA,
            "model": self.model,
            "framework": self.framework,
            "opset": self.opset,
            "bar": self.bar,
            "equivalent": self.equivalent,
            "end_to_end_ok": self.end_to_end_ok,
            "per_layer_ok": self.per_layer_ok,
            "within_source_spread": self.within_source_spread,
            "bit_exact": self.bit_exact,
            "runtime": self.runtime,
            "kernels": self.kernels,
            "source_spread": [asdict(pair) for pair in self.source_spread],
            "largest_spread_lsb": self.largest_spread_lsb,
            "samples": self.samples,
            "device": self.device,
            "tolerance_lsb": self.tolerance_lsb,
            "inputs": [asdict(i) for i in self.inputs],
            "outputs": [o.as_dict() for o in self.outputs],
            "fusion": None
            if self.fusion is None
            else {
                "integer_kernels": self.fusion.integer,
                "float_ops": self.fusion.float_ops,
                "quantized_ops": self.fusion.quantized_in_source,
                "coverage": self.fusion.coverage,
            },
            "remarks": self.remarks,
            "layers": None if self.layers is None else [layer.as_dict() for layer in self.layers],
            "first_divergence": None if first is None else first.as_dict(),
        }
