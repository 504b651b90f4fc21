"""verify's report in the terminal: rich tables, names shortened in the middle (never cut off at
the end), the verdict last with the bar it used."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from .report import LAYER_TOLERANCE_STEPS, VerifyReport

WORST_LAYERS = 15  # layers listed per report (the rest are summed up)
NAME_WIDTH = 48


def middle(name: str, width: int = NAME_WIDTH) -> str:
    """`name` whole, or its head and tail around an ellipsis: the end of a tensor name matters."""
    if len(name) <= width:
        return name
    keep = width - 1
    return f"{name[: keep - keep // 2]}…{name[len(name) - keep // 2 :]}"


def print_report(report: VerifyReport, console: Console | None = None) -> None:
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)  # piped: no wrapping
    outputs = Table(title="outputs against the source", title_justify="left")
    for column in ("output", "max |diff|", "LSB", "max LSB", "exact %", "<=1 LSB %", "cosine", "agreement", "levels"):
        outputs.add_column(column, justify="left" if column == "output" else "right", overflow="fold")
    for o in report.outputs:
        top1 = "-" if o.agreement is None else f"{o.agreement:.4g} ({o.agreement_terms})"
        outputs.add_row(
            middle(o.name),
            f"{o.max_abs_diff:.4g}",
            f"{o.lsb:.4g}",
            f"{o.max_diff_lsb:.3f}",
            f"{o.pct_exact:.1f}",
            f"{o.pct_within_1lsb:.1f}",
            f"{o.cosine:.6f}",
            top1,
            str(o.levels),
        )
    console.print(outputs)
    if report.kernels:
        console.print(f"reference: {report.runtime}, its {report.kernels} kernels (end to end and per layer)", markup=False)
    if report.source_spread:
        console.print("the source against itself, its kernel sets on the same inputs (worst output):", markup=False)
        for pair in report.source_spread:
            top1 = "" if pair.agreement is None else f", {pair.agreement_terms} {pair.agreement:.4g}"
            console.print(f"  {pair.first} vs {pair.second}: max {pair.max_diff_lsb:.3g} LSB, {pair.pct_exact:.1f}% exact{top1}", markup=False)
    if report.fusion is not None:
        f = report.fusion
        kernels = ", ".join(f"{k} x{n}" for k, n in sorted(f.integer.items())) or "none"
        console.print(f"ORT CPU integer kernels: {kernels}; quantized ops {f.quantized_in_source}, float {len(f.float_ops)}")
        for name in f.float_ops:
            console.print(f"  stays float: {name}", markup=False)
    for i in report.inputs:
        console.print(f"input {middle(i.name)}: samples reach {i.reached} of {i.levels} quantization levels", markup=False)
    if report.layers is not None:
        _print_layers(report, console)
    for remark in report.remarks:
        console.print(f"warning: {remark}", markup=False)
    console.print(verdict_line(report.as_dict()), markup=False)


def verdict_word(report: dict[str, Any]) -> str:
    """EQUIVALENT, NOT EQUIVALENT, or (the spread bar met only through the source's own spread)
    WITHIN THE SOURCE'S KERNEL SPREAD."""
    if report["bar"] == "exact":
        return "EXACT" if report["equivalent"] else "NOT EXACT"
    if report["equivalent"] and report["bar"] == "spread" and not report["end_to_end_ok"]:
        return "WITHIN THE SOURCE'S KERNEL SPREAD"
    return "EQUIVALENT" if report["equivalent"] else "NOT EQUIVALENT"


def verdict_line(report: dict[str, Any]) -> str:
    """The verdict with the bar it used and every figure, from the report's schema (as_dict)."""
    end_to_end = f"end to end {'ok' if report['end_to_end_ok'] else 'missed'} (max |diff| <= {report['tolerance_lsb']:g} LSB, same top-1)"
    per_layer = report["per_layer_ok"]
    layers = "" if per_layer is None else f"; per layer {'ok' if per_layer else 'missed'} (every op within {LAYER_TOLERANCE_STEPS} step)"
    largest, within = report.get("largest_spread_lsb"), report.get("within_source_spread")
    spread = "" if largest is None else f"; the source's own kernel sets differ by up to {largest:.3g} LSB"
    if within is True:
        spread += f" (ours within that, every op within {LAYER_TOLERANCE_STEPS} step)"
    elif within is False:
        spread += " (ours not within that, or an op past 1 step)"
    where = f"{report['samples']} samples on {report['device']}"
    if report["bar"] == "exact":
        equal = "every output and every tensor equal to the source's" if report.get("bit_exact") else "an output or a tensor differs"
        return f"{verdict_word(report)} by the exact bar: {where}; {equal}; {end_to_end}{layers}"
    return f"{verdict_word(report)} by the {report['bar']} bar: {where}; {end_to_end}{layers}{spread}"


def _print_layers(report: VerifyReport, console: Console) -> None:
    layers = report.layers or []
    differ = sorted((layer for layer in layers if layer.max_steps), key=lambda layer: (-layer.max_steps, layer.pct_exact))
    worst = max((layer.max_steps for layer in layers), default=0)
    exact = len(layers) - len(differ)
    console.print(f"per layer, each fed the reference's inputs: {len(layers)} quantized tensors, {exact} exact, worst {worst} step(s)")
    if differ:
        table = Table(show_edge=False)
        for column in ("steps", "exact %", "ONNX ops", "tensor", "source op"):
            table.add_column(column, justify="right" if column in ("steps", "exact %") else "left", overflow="fold")
        for layer in differ[:WORST_LAYERS]:
            table.add_row(str(layer.max_steps), f"{layer.pct_exact:.2f}", layer.op, middle(layer.name), middle(layer.source_op))
        console.print(table)
    if len(differ) > WORST_LAYERS:
        console.print(f"  ... {len(differ) - WORST_LAYERS} more differ")
    first = report.first_divergence
    if first is not None:
        console.print(
            f"first divergence (topological order): {first.name} = {first.source_op or '?'} -> ONNX {first.op}, "
            f"shape {list(first.shape)}: {first.max_steps} steps, {first.pct_exact:.2f}% exact",
            markup=False,
        )
