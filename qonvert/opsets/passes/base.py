"""The rewrites (the canonicalisation's and the targets') as onnx_ir passes, run by a PassManager.

Each pass is one exact rewrite (docs/design.md, "Exact rewrites"): an `InPlacePass` whose
`rewrite(graph)` returns how often it fired (the counts `inspect` shows). What it needs before it
runs is its `after`, the passes whose rewrites it builds on, checked by `requires` against the
passes the model has been through; what it promises is its slice of the contract, checked by
`ensures` (canonical.py's rules). A broken requirement or promise is qonvert's bug: the runner
turns it into an internal error naming the pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir
import onnx_ir.passes as ir_passes

from ...errors import InternalError, QonvertError
from ..canonical import Rule, violations
from ..graph_edit import TAKEN_NAMES, value_names

_RAN = "qonvert.passes_ran"  # model.meta: the names of the passes the model has been through


class RewritePass(ir_passes.InPlacePass):
    """One exact rewrite of the main graph (and, `in_subgraphs`, of each Loop body and If branch)."""

    counts_as: ClassVar[tuple[str, ...]]  # the count(s) `rewrite` returns, by name
    after: ClassVar[tuple[str, ...]] = ()  # the passes (class names) that must have run before it
    promises: ClassVar[tuple[Rule, ...]] = ()  # the contract's rules that hold once it has run
    in_subgraphs: ClassVar[bool] = False

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.counts_as, 0)

    def rewrite(self, graph: ir.Graph) -> int | tuple[int, ...]:
        raise NotImplementedError

    def graphs(self, model: ir.Model) -> list[ir.Graph]:
        return [model.graph, *subgraphs(model.graph)] if self.in_subgraphs else [model.graph]

    def requires(self, model: ir.Model) -> None:
        ran = model.meta.get(_RAN, set())
        missing = [name for name in self.after if name not in ran]
        if missing:
            raise ir_passes.PreconditionError(f"{type(self).__name__} runs after {', '.join(missing)}")

    def call(self, model: ir.Model) -> ir_passes.PassResult:
        for graph in self.graphs(model):
            graph.meta[TAKEN_NAMES] = value_names(graph)
            try:
                fired = self.rewrite(graph)
            except (QonvertError, MemoryError, RecursionError):
                raise
            except Exception as exc:  # what the pass did not expect: qonvert's bug, named by the pass
                raise InternalError(f"pass {type(self).__name__}: internal error, {type(exc).__name__}: {exc}") from exc
            finally:
                del graph.meta[TAKEN_NAMES]
            for name, count in zip(self.counts_as, fired if isinstance(fired, tuple) else (fired,), strict=True):
                self.counts[name] += count
        model.meta[_RAN] = model.meta.get(_RAN, set()) | {type(self).__name__}
        return ir_passes.PassResult(model, modified=any(self.counts.values()))

    def ensures(self, model: ir.Model) -> None:
        broken = violations((node for graph in self.graphs(model) for node in graph), *self.promises)
        if broken:
            raise ir_passes.PostconditionError(f"{type(self).__name__} left {broken[0]} (+{len(broken) - 1} more)")


def run_passes(model: ir.Model, passes: Sequence[ir_passes.PassBase]) -> dict[str, int]:
    """Run the passes once, in order, under a PassManager; the counts of the canonical ones."""
    try:
        ir_passes.PassManager(passes, steps=1)(model)
    except ir_passes.PassError as exc:  # the manager wraps what a pass raised: unwrap it
        chain: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None:
            chain.append(cause)
            cause = cause.__cause__
        for error in chain:
            if isinstance(error, QonvertError):  # a pass meeting what the file says (a bias past int32 ...)
                raise error from error.__cause__  # (its own cause stays, for --debug)
            if isinstance(error, (ir_passes.PreconditionError, ir_passes.PostconditionError)):
                raise InternalError(f"internal error, {error}") from exc
        raise chain[-1] from None  # the pass's own exception, as it raised it
    return {name: count for p in passes if isinstance(p, RewritePass) for name, count in p.counts.items()}


def subgraphs(graph: ir.Graph) -> list[ir.Graph]:
    """The Loop bodies and If branches in the graph, nested ones after those holding them (a plain
    walk: onnx_ir's RecursiveGraphIterator cost 3 ms a pass on a ResNet-50 that has none)."""
    found: list[ir.Graph] = []
    pending = [graph]
    while pending:
        for node in pending.pop(0):
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    found.append(attr.as_graph())
                    pending.append(found[-1])
    return found
