"""`zoo run --ray ADDRESS`: one Ray task per entry, so a zoo spreads over a cluster. Each task runs
the same isolated worker as a local run (a forked process with the entry's memory cap and
timeout), so a model that crashes or hangs marks its entry on any node. Manifest paths must be
readable on every node (a shared filesystem), as they are on a single machine."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ..errors import InputError, first_line
from .manifest import ZooEntry
from .run import run_all


def _run_one(entry: ZooEntry) -> dict[str, Any]:
    import ray

    result = run_all([entry], jobs=1)[0]
    result["ray_node"] = ray.get_runtime_context().get_node_id()  # where it ran, for the report
    return result


def connect(address: str) -> None:
    """Join (or start) the Ray cluster: "local" starts a Ray instance on this machine, "auto" joins
    the one running here, anything else is a cluster address (host:6379 or ray://host:10001)."""
    try:
        import ray
    except ImportError:
        raise InputError("zoo run --ray needs ray (pip install 'qonvert[ray]')") from None
    _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"--ray {address}: cannot join the Ray cluster: {first_line(exc)}") from None


def run_on_ray(entries: list[ZooEntry], on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One task per entry on the cluster `connect` joined, which it leaves at the end; results in
    manifest order."""
    import ray

    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_run_one)
        pending = {task.remote(entry): entry for entry in entries}
        results: dict[str, dict[str, Any]] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            entry = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the node or its worker died: the entry errs, the run goes on
                result = {"name": entry.name, "status": "error", "failures": [], "error": f"ray task failed: {first_line(exc)}"}
            results[entry.name] = result
            if on_done is not None:
                on_done(result)
        return [results[e.name] for e in entries]
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes: refuse it at once instead."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: expected 'local', 'auto' or host:port")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})") from None
