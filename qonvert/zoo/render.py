"""`qonvert zoo run`: the live progress bar, golden comparison and the summary table (rich)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import golden
from .manifest import load_manifest
from .run import report, run_all, select

ORDER = {"error": 0, "fail": 1, "pass": 2}


def zoo_run(
    manifest: Path,
    pattern: str | None = None,
    jobs: int = 1,
    report_path: Path | None = None,
    golden_dir: Path | None = None,
    update_golden: bool = False,
    ray_address: str | None = None,
    html_dir: Path | None = None,
) -> int:
    """0 when every entry passes with no regression, 1 otherwise (bad manifests raise QonvertError: 2)."""
    entries = select(load_manifest(manifest), pattern)
    console = Console(stderr=True)
    if not entries:
        console.print(f"no entry of {manifest} matches {pattern!r}")
        return 1
    if ray_address:
        from . import cluster

        cluster.connect(ray_address)
    with Progress(
        TextColumn("[bold]zoo"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"), console=console
    ) as progress:
        task = progress.add_task("", total=len(entries))

        def done(result: dict[str, Any]) -> None:
            progress.update(task, advance=1, description=f"{result['name']}: {result['status']}")

        if ray_address:
            results = cluster.run_on_ray(entries, on_done=done)
        else:
            results = run_all(entries, jobs=jobs or os.cpu_count() or 1, on_done=done)
    for result in results:
        old = golden.load(golden_dir, result["name"]) if golden_dir and not update_golden else None
        result["regressions"] = golden.regressions(result, old) if old else []
        if golden_dir and update_golden:
            golden.save(golden_dir, result)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report(results), indent=1) + "\n")
    if html_dir is not None:
        write_pages(results, html_dir)
        console.print(f"report pages: {html_dir / 'index.html'}")
    Console(width=max(Console().width, 150)).print(summary_table(results))
    bad = [r for r in results if r["status"] != "pass" or r["regressions"]]
    return 1 if bad else 0


def write_pages(results: list[dict[str, Any]], folder: Path) -> None:
    """One verify page per entry that got as far as verifying, and an index page linking them
    (all sharing one plotly.min.js in the folder: nothing loads from the network)."""
    import html

    from ..verify.html import write_html

    rows = []
    for r in sorted(results, key=lambda r: (ORDER.get(r["status"], 0), r["name"])):
        page = f"{r['name']}.html"
        verify = r.get("verify")
        if verify and "schema" in verify:
            write_html(verify, folder / page, plotly_js="directory")
            link = f'<a href="{html.escape(page)}">{html.escape(r["name"])}</a>'
        else:
            link = html.escape(r["name"])
        outs = (verify or {}).get("outputs", [])
        worst = f"{max(o['max_diff_lsb'] for o in outs):.3g}" if outs else "-"
        note = "; ".join([*r.get("regressions", []), *r.get("failures", []), *([r["error"]] if r.get("error") else [])])
        rows.append(f"<tr><td>{link}</td><td>{html.escape(r['status'])}</td><td>{worst}</td><td>{html.escape(note)}</td></tr>")
    table = "<table><tr><th>model</th><th>status</th><th>max LSB</th><th>note</th></tr>" + "".join(rows) + "</table>"
    style = "body{font:14px system-ui,sans-serif;margin:24px} td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}"
    index = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>qonvert zoo</title><style>{style}</style></head>'
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(f"{index}<body><h1>qonvert zoo: {len(results)} models</h1>{table}</body></html>", encoding="utf-8")


def summary_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="qonvert zoo", show_lines=False)
    for col in ("model", "status", "max LSB", "source spread LSB", "exact %", "levels", "int kernels", "convert s", "RSS MB", "note"):
        table.add_column(col, justify="left" if col in ("model", "status", "note") else "right")
    for r in sorted(results, key=lambda r: (ORDER.get(r["status"], 0), r["name"])):
        outs = (r.get("verify") or {}).get("outputs", [])
        worst = max(outs, key=lambda o: o["max_diff_lsb"]) if outs else None
        fusion = r.get("fusion")
        note = "; ".join([*r.get("regressions", []), *r.get("failures", []), *([r["error"]] if r.get("error") else [])])
        colour = {"pass": "green", "fail": "yellow", "error": "red"}.get(r["status"], "red")
        table.add_row(
            r["name"],
            f"[{colour}]{r['status']}[/]" + (" [red]regressed[/]" if r.get("regressions") else ""),
            f"{worst['max_diff_lsb']:.3g}" if worst else "-",
            _spread(r),
            f"{worst['pct_exact']:.1f}" if worst else "-",
            str(min(o["levels"] for o in outs)) if outs else "-",
            f"{sum(fusion['integer_kernels'].values())}/{fusion['quantized_ops']}" if fusion else "-",
            f"{r['convert_s']:.2f}" if r.get("convert_s") is not None else "-",
            f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "-",
            note[:120],
        )
    return table


def _spread(result: dict[str, Any]) -> str:
    """The source's widest disagreement among its own kernel sets ("-": one set, or not run)."""
    largest = (result.get("verify") or {}).get("largest_spread_lsb")
    return "-" if largest is None else f"{largest:.3g}"
