"""Peak RSS and wall time of a child process, shared by the benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time

# Linux keeps a process's peak RSS across exec, so a child forked from this (large) process would
# report ours: measure through a small fresh launcher whose children start from ~10 MB.
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, output) of a child process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    rss = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB")]
    text = "\n".join(line for line in out.splitlines() if not line.startswith("PEAK_RSS_KB"))
    return proc.returncode, wall, float(rss[-1]) / 1024 if rss else 0.0, text
