"""The fuzz harness: mutated model files converted in a worker process with a memory cap and a
per-case timeout, so a crash, an abort, a hang or runaway memory is an outcome to count, never the
end of the test run. The outcome of a bad file must be success or one QonvertError line (short,
and not an "internal error", which means a qonvert bug)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .mutators import mutate_json, mutate_pdiparams, mutate_protobuf, mutate_pt2, mutate_tflite_fields, pdiparams_records, tflite_fields

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# format -> (the model folder or file it mutates, the file in it that is mutated)
SEEDS = {
    "programdesc": (FIXTURES / "paddle" / "qat_cnn_perchannel_legacy", "model.pdmodel"),
    "pir": (FIXTURES / "paddle" / "qat_cnn_perchannel_pir", "model.json"),
    "pdiparams": (FIXTURES / "paddle" / "qat_cnn_perchannel_legacy", "model.pdiparams"),
    "tflite": (FIXTURES / "tflite" / "op_zoo_int8.tflite", ""),
    "tflite-fields": (FIXTURES / "tflite" / "op_zoo_int8.tflite", ""),  # structure-aware: tflite_fields
    "pir-fields": (FIXTURES / "paddle" / "qat_cnn_perchannel_pir", "model.json"),  # structure-aware: mutate_json
    "programdesc-fields": (FIXTURES / "paddle" / "ptq_cnn_fakeops_legacy", "model.pdmodel"),  # mutate_protobuf
    "pdiparams-fields": (FIXTURES / "paddle" / "qat_cnn_perchannel_legacy", "model.pdiparams"),  # mutate_pdiparams
    "pt2-fields": (FIXTURES / "torch" / "pt2" / "decoder_x86.pt2", ""),  # mutate_pt2
}
MEMORY_CAP = 2 << 30  # bytes of address space a case may add to the worker's
TIMEOUT_S = 20.0
MAX_MESSAGE = 1000  # characters of one error line (QonvertError's cap; the unsupported-op list may run to 8000)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few byte-level mutations: flips, interesting bytes, truncation, duplicated or removed
    chunks, and (for text formats) digits replaced by huge or negative numbers."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(max(len(out), 1))
        if kind == 0 and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[at] = rng.choice(INTERESTING)
        elif kind == 2:
            del out[at:]
        elif kind == 3:
            size = rng.randint(1, 64)
            out[at:at] = out[at : at + size]
        elif kind == 4:
            del out[at : at + rng.randint(1, 64)]
        else:
            digits = [i for i in range(max(0, at - 200), min(len(out), at + 200)) if 48 <= out[i] <= 57]
            if digits:
                i = rng.choice(digits)
                out[i : i + 1] = rng.choice([b"99999999999", b"-7", b"0", b"1e308", b"-1"])
    return bytes(out)


@dataclass
class Outcome:
    kind: str  # "ok", "error" (a QonvertError line), "bad" (anything else), "hang", "crash"
    detail: str = ""


def _worker(conn: Any) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + MEMORY_CAP, hard))
    import warnings

    import qonvert
    from qonvert.errors import QonvertError

    warnings.simplefilter("ignore")
    # What the case writes to stderr (a library's logged traceback is a finding too: the user
    # sees it) goes to a file read after each case.
    stderr = tempfile.TemporaryFile()
    os.dup2(stderr.fileno(), 2)
    while True:
        job = conn.recv()
        if job is None:
            return
        stderr.seek(0)
        stderr.truncate()
        try:
            qonvert.convert(Path(job))
            result = ("ok", "")
        except QonvertError as exc:
            result = ("error", str(exc))
        except MemoryError:
            result = ("bad", "MemoryError (past the memory cap)")
        except BaseException as exc:  # the finding: anything but QonvertError
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            result = ("bad", f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}: {str(exc)[:200]}")
        sys.stderr.flush()
        stderr.seek(0)
        printed = stderr.read().decode(errors="replace")
        if result[0] != "bad" and "Traceback (most recent call last)" in printed:
            result = ("bad", f"a traceback on stderr: {printed.strip().splitlines()[-1][:200]}")
        conn.send(result)


class Harness:
    """One worker, restarted after a crash or hang; each case is copied into a scratch folder."""

    def __init__(self) -> None:
        self.context = mp.get_context("spawn")
        self.scratch = Path(tempfile.mkdtemp(prefix="qonvert-fuzz-"))
        self.process: Any = None
        self.conn: Any = None

    def _start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker, args=(child,), daemon=True)
        self.process.start()
        self.conn = parent

    def run(self, fmt: str, data: bytes, model: Path | None = None) -> Outcome:
        """A mutant of the format's seed member, written into a copy of the seed (or of `model`,
        another model of the format)."""
        seed, member = SEEDS[fmt]
        seed = model or seed
        case = self.scratch / "case"
        shutil.rmtree(case, ignore_errors=True)
        if member:
            shutil.copytree(seed, case, ignore=shutil.ignore_patterns("reference.npz"))
            (case / member).write_bytes(data)
            return self.run_path(case)
        case.mkdir()
        (case / seed.name).write_bytes(data)
        return self.run_path(case / seed.name)

    def run_path(self, target: Path) -> Outcome:
        """The conversion of a model on disk, in the worker."""
        if self.process is None or not self.process.is_alive():
            self._start()
        try:
            self.conn.send(str(target))
            if not self.conn.poll(TIMEOUT_S):
                self.process.kill()
                self.process.join()
                self.process = None
                return Outcome("hang", f"no answer in {TIMEOUT_S:g} s")
            kind, detail = self.conn.recv()
        except (EOFError, OSError):  # the worker died: a signal (abort, segfault) or the memory cap
            self.process.join(5)
            code = self.process.exitcode
            self.process = None
            return Outcome("crash", f"worker died (exit code {code})")
        return _judge(kind, detail)

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.send(None)
            self.process.join(5)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _judge(kind: str, detail: str) -> Outcome:
    if kind == "error":
        if "internal error" in detail:
            return Outcome("bad", f"an internal error for a bad file: {detail[:300]}")
        limit = 8000 if "unsupported op type(s)" in detail else MAX_MESSAGE
        if "\n" in detail or len(detail) > limit:
            return Outcome("bad", f"error text of {len(detail)} characters / {detail.count(chr(10)) + 1} lines: {detail[:200]}")
    return Outcome(kind, detail)


def mutator_for(fmt: str, data: bytes) -> Callable[[random.Random], bytes]:
    """The format's mutation of its seed: byte-level, or structure-aware (mutators.py) for the
    `-fields` formats."""
    if fmt == "tflite-fields":
        fields = tflite_fields(data)
        return lambda rng: mutate_tflite_fields(data, rng, fields)
    if fmt == "pir-fields":
        return lambda rng: mutate_json(data, rng)
    if fmt == "programdesc-fields":
        return lambda rng: mutate_protobuf(data, rng)
    if fmt == "pdiparams-fields":
        records = pdiparams_records(data)
        return lambda rng: mutate_pdiparams(data, rng, records)
    if fmt == "pt2-fields":
        return lambda rng: mutate_pt2(data, rng)
    return lambda rng: mutate(data, rng)


def seed_bytes(fmt: str, model: Path | None = None) -> bytes:
    seed, member = SEEDS[fmt]
    seed = model or seed
    return (seed / member).read_bytes() if member else seed.read_bytes()


def campaign(
    fmt: str, cases: int, seed: int = 0, harness: Harness | None = None, keep: Path | None = None, model: Path | None = None
) -> dict[str, list[str]]:
    """`cases` mutants of the format's seed model (or of `model`, another model folder or file of
    the format); the findings (not ok, not a clean error) by kind. keep: a folder to write each
    finding's file to (the regression corpus)."""
    own = harness is None
    harness = harness or Harness()
    rng = random.Random(seed)
    data = seed_bytes(fmt, model)
    mutator = mutator_for(fmt, data)
    findings: dict[str, list[str]] = {}
    try:
        for k in range(cases):
            mutant = mutator(rng)
            outcome = harness.run(fmt, mutant, model)
            if outcome.kind not in ("ok", "error"):
                findings.setdefault(outcome.kind, []).append(outcome.detail)
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{fmt}-seed{seed}-case{k}.bin").write_bytes(mutant)
    finally:
        if own:
            harness.close()
    return findings


if __name__ == "__main__":
    import argparse
    import collections

    parser = argparse.ArgumentParser(description="fuzz qonvert's readers")
    parser.add_argument("format", choices=sorted(SEEDS))
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write each finding's file here (tests/fuzz_corpus/<format>/ to keep it)")
    parser.add_argument("--model", type=Path, help="mutate this model of the format instead of its seed (a Paddle folder, a file)")
    args = parser.parse_args()
    found = campaign(args.format, args.cases, args.seed, keep=args.keep, model=args.model)
    for kind, details in found.items():
        print(f"{kind}: {len(details)}")
        for detail, n in collections.Counter(d.split(": ", 1)[0] if kind == "bad" else d for d in details).most_common(30):
            print(f"  {n:5d}  {detail}")
    print("clean" if not found else f"{sum(map(len, found.values()))} findings", os.getpid())
