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
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# format -> (the model folder or file it mutates, the file in it that is mutated)
SEEDS = {
    "programdesc": (FIXTURES / "paddle" / "qat_cnn_perchannel_legacy", "model.pdmodel"),
    "pir": (FIXTURES / "paddle" / "qat_cnn_perchannel_pir", "model.json"),
    "pdiparams": (FIXTURES / "paddle" / "qat_cnn_perchannel_legacy", "model.pdiparams"),
    "tflite": (FIXTURES / "tflite" / "op_zoo_int8.tflite", ""),
    "tflite-fields": (FIXTURES / "tflite" / "op_zoo_int8.tflite", ""),  # structure-aware: tflite_fields
    "pir-fields": (FIXTURES / "paddle" / "qat_cnn_perchannel_pir", "model.json"),  # structure-aware: mutate_json
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


INTERESTING_INTS = (-1, 0, 1, 2, 3, 4, 5, 7, 8, 127, 128, 255, 1 << 16, (1 << 31) - 1, -(1 << 31))


def tflite_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the fields a structure-aware mutation edits in a .tflite file: each
    tensor's shape entries and the shape's length, its type, buffer index and quantized dimension;
    each operator's opcode index, its input and output indices and the lengths of those lists,
    and every field its builtin options table holds (found through the table's vtable)."""
    import tflite

    model = tflite.Model.GetRootAs(data, 0)
    fields: list[tuple[int, int]] = []

    def vector(table: Any, slot: int, item: int) -> None:
        offset = table._tab.Offset(slot)
        if offset:
            start = table._tab.Vector(offset)
            fields.append((start - 4, 4))  # the length
            fields.extend((start + k * item, item) for k in range(table._tab.VectorLen(offset)))

    def scalar(table: Any, slot: int, size: int) -> None:
        offset = table._tab.Offset(slot)
        if offset:
            fields.append((table._tab.Pos + offset, size))

    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for t in range(sub.TensorsLength()):
            tensor = sub.Tensors(t)
            vector(tensor, 4, 4)  # shape
            scalar(tensor, 6, 1)  # type
            scalar(tensor, 8, 4)  # buffer
            vector(tensor, 18, 4)  # shape_signature
            quant = tensor.Quantization()
            if quant is not None:
                scalar(quant, 16, 4)  # quantized_dimension
        for k in range(sub.OperatorsLength()):
            op = sub.Operators(k)
            scalar(op, 4, 4)  # opcode_index
            vector(op, 6, 4)  # inputs
            vector(op, 8, 4)  # outputs
            options = op.BuiltinOptions()
            if options is not None:
                vtable = options.Pos - int.from_bytes(data[options.Pos : options.Pos + 4], "little", signed=True)
                size = int.from_bytes(data[vtable : vtable + 2], "little")
                for entry in range(4, size, 2):
                    at = int.from_bytes(data[vtable + entry : vtable + entry + 2], "little")
                    if at:
                        fields.append((options.Pos + at, 1))  # a bool, enum or the low byte of an int
    return [(at, size) for at, size in fields if 0 <= at and at + size <= len(data)]


def mutate_tflite_fields(data: bytes, rng: random.Random, fields: list[tuple[int, int]]) -> bytes:
    """One to three fields of the file set to interesting values (in range of their width)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at, size = rng.choice(fields)
        old = int.from_bytes(out[at : at + size], "little", signed=True)
        value = rng.choice([*INTERESTING_INTS, old - 1, old + 1])
        out[at : at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
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
    while True:
        job = conn.recv()
        if job is None:
            return
        path = Path(job)
        try:
            qonvert.convert(path)
            conn.send(("ok", ""))
        except QonvertError as exc:
            conn.send(("error", str(exc)))
        except MemoryError:
            conn.send(("bad", "MemoryError (past the memory cap)"))
        except BaseException as exc:  # the finding: anything but QonvertError
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            conn.send(("bad", f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}: {str(exc)[:200]}"))


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

    def run(self, fmt: str, data: bytes) -> Outcome:
        if self.process is None or not self.process.is_alive():
            self._start()
        seed, member = SEEDS[fmt]
        case = self.scratch / "case"
        shutil.rmtree(case, ignore_errors=True)
        if member:
            shutil.copytree(seed, case, ignore=shutil.ignore_patterns("reference.npz"))
            (case / member).write_bytes(data)
            target = case
        else:
            case.mkdir()
            target = case / seed.name
            target.write_bytes(data)
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


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """One to three edits of a PIR program's JSON tree: a number set to an interesting value, a
    list entry dropped or repeated, a string (an op or attribute name, a type) swapped for another
    string of the program."""
    import json

    tree = json.loads(data)
    slots: list[tuple[Any, Any]] = []  # (container, key or index) of every value in the tree
    strings: list[str] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)):
                pending.append(value)
            elif isinstance(value, str):
                strings.append(value)
    for _ in range(rng.randint(1, 3)):
        node, key = rng.choice(slots)
        if isinstance(node, list) and key >= len(node):
            continue  # an earlier edit of this run dropped it
        value = node[key]
        if isinstance(value, bool) or value is None:
            node[key] = not value
        elif isinstance(value, (int, float)):
            node[key] = rng.choice([*INTERESTING_INTS, value - 1, value + 1, -value, 1e308, 0.5])
        elif isinstance(value, str) and strings:
            node[key] = rng.choice(strings)
        elif isinstance(value, list) and value:
            at = rng.randrange(len(value))
            if rng.random() < 0.5:
                del value[at]
            else:
                value.insert(at, value[at])
    return json.dumps(tree).encode()


def mutator_for(fmt: str, data: bytes) -> Callable[[random.Random], bytes]:
    """The format's mutation of its seed: byte-level, or structure-aware (tflite-fields: the
    flatbuffer's fields; pir-fields: the program's JSON tree)."""
    if fmt == "tflite-fields":
        fields = tflite_fields(data)
        return lambda rng: mutate_tflite_fields(data, rng, fields)
    if fmt == "pir-fields":
        return lambda rng: mutate_json(data, rng)
    return lambda rng: mutate(data, rng)


def seed_bytes(fmt: str) -> bytes:
    seed, member = SEEDS[fmt]
    return (seed / member).read_bytes() if member else seed.read_bytes()


def campaign(fmt: str, cases: int, seed: int = 0, harness: Harness | None = None, keep: Path | None = None) -> dict[str, list[str]]:
    """`cases` mutants of the format's seed; the findings (not ok, not a clean error) by kind.
    keep: a folder to write each finding's file to (the regression corpus)."""
    own = harness is None
    harness = harness or Harness()
    rng = random.Random(seed)
    data = seed_bytes(fmt)
    mutator = mutator_for(fmt, data)
    findings: dict[str, list[str]] = {}
    try:
        for k in range(cases):
            mutant = mutator(rng)
            outcome = harness.run(fmt, mutant)
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
    args = parser.parse_args()
    found = campaign(args.format, args.cases, args.seed, keep=args.keep)
    for kind, details in found.items():
        print(f"{kind}: {len(details)}")
        for detail, n in collections.Counter(d.split(": ", 1)[0] if kind == "bad" else d for d in details).most_common(30):
            print(f"  {n:5d}  {detail}")
    print("clean" if not found else f"{sum(map(len, found.values()))} findings", os.getpid())
