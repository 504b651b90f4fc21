"""verify's report as ONE self-contained HTML page (plotly's JS inlined once; nothing loaded from
the network): a summary card, the per-layer error plot, a |diff| histogram per output, the fusion
table and the remarks, all rendered from the report's schema (`as_dict`)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..runtime.compare import HISTOGRAM_BINS
from .render import verdict_line, verdict_word
from .report import LAYER_TOLERANCE_STEPS, VerifyReport

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:28px 0 8px}
.card{border:1px solid #ccc;border-radius:8px;padding:12px 16px;display:grid;grid-template-columns:repeat(3,1fr);gap:6px 24px}
.ok{color:#0a7d2c;font-weight:600} .bad{color:#b3261e;font-weight:600}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums} code{font-size:12px;word-break:break-all}
"""


def render_html(report: VerifyReport | dict[str, Any], plotly_js: str = "inline") -> str:
    """The page, from the report's JSON form (so the page and `--json` cannot disagree).
    plotly_js "inline": one self-contained file; "directory": plotly.min.js beside the page (the
    zoo's many pages share one copy; still nothing from the network)."""
    data = report if isinstance(report, dict) else report.as_dict()
    figures = [_layer_figure(data), *(_histogram_figure(o) for o in data["outputs"])]
    include: bool | str = True if plotly_js == "inline" else "directory"
    plots = [_plot_html(fig, div_id, include if k == 0 else False) for k, (fig, div_id) in enumerate(f for f in figures if f is not None)]
    verdict_class = "ok" if data["equivalent"] else "bad"
    body = [
        f"<h1>qonvert verify: {html.escape(data.get('model', ''))}</h1>",
        _summary(data, verdict_class, verdict_line(data)),
        "<h2>Per layer</h2>",
        plots.pop(0) if data["layers"] else "<p>Not run (<code>--per-layer</code>).</p>",
        _first_divergence(data),
        "<h2>|diff| per output, in LSB</h2>",
        *plots,
        "<h2>Integer kernels on ORT CPU</h2>",
        _fusion(data),
        "<h2>Remarks</h2>",
        "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in data["remarks"]) + "</ul>" if data["remarks"] else "<p>None.</p>",
        f'<script type="application/json" id="qonvert-report">{_json_for_script(data)}</script>',
    ]
    head = f'<head><meta charset="utf-8"><title>qonvert verify</title><style>{_STYLE}</style></head>'
    return f'<!DOCTYPE html><html lang="en">{head}<body>{"".join(body)}</body></html>'


def write_html(report: VerifyReport | dict[str, Any], path: Path, plotly_js: str = "inline") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if plotly_js == "directory" and not (path.parent / "plotly.min.js").exists():
        from plotly.offline import get_plotlyjs

        (path.parent / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(report, plotly_js), encoding="utf-8")
    tmp.replace(path)


def _json_for_script(data: dict[str, Any]) -> str:
    return json.dumps(data).replace("</", "<\\/")


def _agreement(outputs: list[dict[str, Any]]) -> str:
    """Each output's agreement in its own terms (none for a regression)."""
    parts = [f"{o['name']}: {o['agreement']:.4g} ({o['agreement_terms']})" for o in outputs if o.get("agreement") is not None]
    return "; ".join(parts) or "none (no classifier, sequence or map output)"


def _spread(data: dict[str, Any]) -> str:
    pairs = data["source_spread"]
    if not pairs:
        return "one kernel set (or a recorded reference)"
    return "; ".join(
        f"{p['first']} vs {p['second']}: {p['max_diff_lsb']:.3g} LSB, {p['pct_exact']:.1f}% exact"
        + (f", {p['agreement_terms']} {p['agreement']:.4g}" if p.get("agreement") is not None else "")
        for p in pairs
    )


def _summary(data: dict[str, Any], verdict_class: str, line: str) -> str:
    outputs = data["outputs"]
    inputs = data["inputs"]
    coverage = ", ".join(f"{i['name']}: {i['reached']}/{i['levels']}" for i in inputs) or "float inputs"
    span = ", ".join(f"{o['name']}: {o['levels']} levels" for o in outputs)
    fields = [
        ("verdict", f'<span class="{verdict_class}" id="verdict">{verdict_word(data)}</span>'),
        ("bar", html.escape(data["bar"])),
        ("framework", html.escape(data["framework"])),
        ("opset", str(data["opset"])),
        ("samples", f"{data['samples']} on {html.escape(data['device'])}"),
        ("max LSB", ", ".join(f"{o['max_diff_lsb']:.3g}" for o in outputs)),
        ("agreement", html.escape(_agreement(outputs))),
        ("input levels reached", html.escape(coverage)),
        ("output span", html.escape(span)),
        ("per layer", "not run" if data["per_layer_ok"] is None else ("ok" if data["per_layer_ok"] else "missed")),
        ("reference kernels", html.escape(data["kernels"] or "-")),
        ("the source's own spread", html.escape(_spread(data))),
    ]
    cells = "".join(f"<div><b>{k}</b><br>{v}</div>" for k, v in fields)
    return f'<div class="card">{cells}</div><p>{html.escape(line)}</p>'


def _family(ops: str) -> str:
    return ops.split("+")[0] if ops else "?"


def _layer_figure(data: dict[str, Any]) -> tuple[Any, str] | None:
    layers = data["layers"]
    if not layers:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    families = sorted({_family(layer["op"]) for layer in layers})
    for family in families:
        idx = [k for k, layer in enumerate(layers) if _family(layer["op"]) == family]
        hover = [
            f"#{k} {html.escape(layers[k]['name'])}<br>source: {html.escape(layers[k]['source_op'] or '?')}<br>"
            f"ONNX: {layers[k]['op']}<br>shape: {layers[k]['shape']}<br>{layers[k]['max_steps']} steps, {layers[k]['pct_exact']:.2f}% exact"
            for k in idx
        ]
        fig.add_trace(
            go.Scatter(x=idx, y=[layers[k]["max_steps"] for k in idx], mode="markers", name=family, text=hover, hoverinfo="text", marker={"size": 9}),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=list(range(len(layers))),
            y=[layer["pct_exact"] for layer in layers],
            mode="lines",
            name="% exact",
            line={"color": "#999", "dash": "dot"},
        ),
        secondary_y=True,
    )
    fig.add_hline(y=LAYER_TOLERANCE_STEPS, line_dash="dash", line_color="#b3261e", annotation_text="tolerance")
    first = data["first_divergence"]
    if first is not None:
        k = next(k for k, layer in enumerate(layers) if layer["name"] == first["name"])
        fig.add_vline(x=k, line_color="#b3261e", annotation_text=f"first divergence: {first['name'][:40]}")
    fig.update_layout(height=380, margin={"l": 50, "r": 50, "t": 30, "b": 40}, legend_title_text="op family")
    fig.update_xaxes(title_text="quantized tensor, topological order")
    fig.update_yaxes(title_text="worst step", secondary_y=False)
    fig.update_yaxes(title_text="% exact", range=[0, 101], secondary_y=True)
    return fig, "layer-plot"


def _histogram_figure(output: dict[str, Any]) -> tuple[Any, str] | None:
    counts = output.get("histogram") or []
    if not counts:
        return None
    import plotly.graph_objects as go

    labels = [str(k) for k in range(HISTOGRAM_BINS - 1)] + [f">{HISTOGRAM_BINS - 1.5:g}"]
    fig = go.Figure(go.Bar(x=labels[: len(counts)], y=counts, marker_color="#4c72b0"))
    fig.update_layout(height=260, margin={"l": 50, "r": 20, "t": 30, "b": 40}, title_text=output["name"][:80])
    fig.update_xaxes(title_text="|diff| (LSB, rounded)")
    fig.update_yaxes(title_text="values", type="log")
    return fig, f"histogram-{abs(hash(output['name'])) % 10**8}"


def _plot_html(fig: Any, div_id: str, include: bool | str) -> str:
    import plotly.io as pio

    return str(pio.to_html(fig, include_plotlyjs=include, full_html=False, div_id=div_id, config={"displaylogo": False}))


def _first_divergence(data: dict[str, Any]) -> str:
    first = data["first_divergence"]
    if data["layers"] is None:
        return ""
    if first is None:
        return f"<p>Every quantized tensor within {LAYER_TOLERANCE_STEPS} step of the source on the source's inputs.</p>"
    return (
        f'<p class="bad">First divergence: <code>{html.escape(first["name"])}</code> '
        f"(source op <code>{html.escape(first['source_op'] or '?')}</code>, ONNX {html.escape(first['op'])}, shape {first['shape']}): "
        f"{first['max_steps']} steps, {first['pct_exact']:.2f}% exact.</p>"
    )


def _fusion(data: dict[str, Any]) -> str:
    fusion = data["fusion"]
    if fusion is None:
        return "<p>Not measured.</p>"
    rows = [
        f"<tr><td>{html.escape(k)}</td><td>integer kernel</td><td class='num'>{n}</td></tr>" for k, n in sorted(fusion["integer_kernels"].items())
    ]
    for entry in fusion["float_ops"]:
        op, _, reason = entry.partition(": ")
        rows.append(f"<tr><td><code>{html.escape(op)}</code></td><td>float: {html.escape(reason)}</td><td class='num'>1</td></tr>")
    head = f"<p>{sum(fusion['integer_kernels'].values())} of {fusion['quantized_ops']} quantized Conv/MatMul/Gemm run as integer kernels.</p>"
    return head + "<table><tr><th>op</th><th>runs as</th><th>count</th></tr>" + "".join(rows) + "</table>"
