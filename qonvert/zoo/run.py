"""Run a zoo: every entry converted and verified in its own worker process (timeout, memory cap),
so one model that crashes or hangs marks its entry and the run goes on."""

from __future__ import annotations

import fnmatch
import multiprocessing as mp
import resource
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InternalError, QonvertError
from .manifest import ZooEntry

SCHEMA = 1


def select(entries: list[ZooEntry], pattern: str | None) -> list[ZooEntry]:
    return [e for e in entries if pattern is None or fnmatch.fnmatch(e.name, pattern) or pattern in e.name]


def run_entry(entry: ZooEntry) -> dict[str, Any]:
    """Convert + verify one entry (in the worker); the report entry, status not yet judged."""
    from .. import api

    result: dict[str, Any] = {"name": entry.name, "source": str(entry.source), "status": "error", "error": None}
    if entry.make:
        done = subprocess.run(entry.make, shell=True, cwd=entry.root, capture_output=True, text=True)
        if done.returncode:
            result["error"] = f"make failed ({done.returncode}): {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            return result
    start = time.perf_counter()
    conv = api.convert(entry.source, framework=entry.framework, target=entry.target, **entry.options)
    result["convert_s"] = round(time.perf_counter() - start, 3)
    result["framework"], result["opset"], result["remarks"] = conv.framework, conv.opset, conv.remarks
    report = api.verify(
        entry.source,
        conv.model,
        samples=entry.samples,
        inputs=entry.inputs,
        reference=entry.reference,
        input_shapes=entry.input_shapes or None,
        output_kinds=entry.output_kinds or None,
        **api.source_options(entry.options),
    )
    verify = report.as_dict()
    verify["model"] = entry.name
    result["verify"] = verify  # the whole report (its schema): golden files, the HTML pages
    result["fusion"] = verify["fusion"]
    result["status"] = "done"
    return result


def _address_space() -> int:
    """Bytes of address space this process has mapped already (the interpreter and its imports)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _worker(entry: ZooEntry, conn: Any, runner: Callable[[ZooEntry], dict[str, Any]]) -> None:
    # The cap is what the entry may add to what the worker had mapped before it: a Ray worker, say,
    # maps gigabytes it never touches, and a fixed cap would fail it before the entry starts.
    limit = _address_space() + entry.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = runner(entry)
    except QonvertError as exc:  # whose fault, as the CLI's exit code says (2 input, 3 internal)
        kind = "internal" if isinstance(exc, InternalError) else "input"
        result = {"name": entry.name, "status": "error", "error": str(exc), "error_kind": kind}
    except MemoryError:
        result = {"name": entry.name, "status": "error", "error": f"out of memory (cap {entry.memory_mb} MB)", "error_kind": "memory"}
    except Exception as exc:  # a qonvert bug: say where
        where = traceback.extract_tb(exc.__traceback__)[-1]
        error = InternalError(f"{type(exc).__name__}: {exc} at {Path(where.filename).name}:{where.lineno}")
        result = {"name": entry.name, "status": "error", "error": str(error), "error_kind": "internal"}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    conn.send(result)
    conn.close()


def run_all(
    entries: list[ZooEntry],
    jobs: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    runner: Callable[[ZooEntry], dict[str, Any]] = run_entry,
) -> list[dict[str, Any]]:
    """Entries in worker processes, `jobs` at a time; results in manifest order. Workers are
    spawned, not forked: a parent that has run PyTorch (its thread pools) deadlocks a forked child."""
    ctx = mp.get_context("spawn")
    pending = list(entries)
    running: dict[str, tuple[Any, Any, float, ZooEntry]] = {}
    results: dict[str, dict[str, Any]] = {}
    while pending or running:
        while pending and len(running) < max(1, jobs):
            entry = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(entry, child, runner), daemon=True)
            proc.start()
            child.close()
            running[entry.name] = (proc, parent, time.monotonic(), entry)
        for name, (proc, conn, started, entry) in list(running.items()):
            result = None
            if conn.poll():
                try:
                    result = conn.recv()
                except EOFError:
                    result = None
            if result is None and not proc.is_alive():
                result = {"name": name, "status": "error", "error": f"worker died (exit code {proc.exitcode})"}
            if result is None and time.monotonic() - started > entry.timeout_s:
                proc.kill()
                result = {"name": name, "status": "error", "error": f"timed out after {entry.timeout_s:g} s"}
            if result is None:
                continue
            proc.join(timeout=5)
            del running[name]
            result["status"], failures = judge(result, entry)
            result["failures"] = failures
            results[name] = result
            if on_done is not None:
                on_done(result)
        time.sleep(0.05)
    return [results[e.name] for e in entries]


def judge(result: dict[str, Any], entry: ZooEntry) -> tuple[str, list[str]]:
    """pass / fail (an expectation missed) / error (it did not convert or verify)."""
    if result.get("status") != "done":
        return "error", []
    expect = entry.expect
    failures = []
    outputs = result["verify"]["outputs"]
    for o in outputs:
        if o["max_diff_lsb"] > expect["max_lsb"] + 1e-6:
            failures.append(f"{o['name']}: max {o['max_diff_lsb']:.3g} LSB > {expect['max_lsb']:g}")
        if "min_exact" in expect and o["pct_exact"] < expect["min_exact"]:
            failures.append(f"{o['name']}: {o['pct_exact']:.1f}% exact < {expect['min_exact']:g}%")
        if o["levels"] < expect["min_levels"]:
            failures.append(f"{o['name']}: the reference spans {o['levels']} level(s) < {expect['min_levels']:g}: proves nothing")
        if "top1" in expect and o["top1_agreement"] is not None and o["top1_agreement"] < expect["top1"]:
            failures.append(f"{o['name']}: top-1 {o['top1_agreement']:.2f} < {expect['top1']:g}")
    if result["verify"].get("bar") == "exact" and not result["verify"].get("bit_exact"):  # a target's exact bar
        differ = [layer["name"] for layer in result["verify"].get("layers") or [] if layer["max_steps"]]
        failures.append(f"not bit-exact: {len(differ)} tensor(s) differ per layer{f' (first {differ[0]})' if differ else ''}")
    fusion = result.get("fusion")
    if fusion is not None:
        if "min_coverage" in expect and fusion["coverage"] < expect["min_coverage"] - 1e-9:
            failures.append(f"integer kernels {fusion['coverage']:.0%} < {expect['min_coverage']:.0%}")
        if "max_float_ops" in expect and len(fusion["float_ops"]) > expect["max_float_ops"]:
            failures.append(f"{len(fusion['float_ops'])} quantized ops stay float > {expect['max_float_ops']:g}")
    return ("fail" if failures else "pass"), failures


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA, "qonvert": __version__, "models": results}
