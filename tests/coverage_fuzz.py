"""Coverage-guided fuzzing of the whole conversion (atheris: libFuzzer driving Python with
coverage of qonvert's own code), one target per format, in OSS-Fuzz practice.

    python -m tests.coverage_fuzz FORMAT [--runs N | --seconds S] [--work DIR]

- Targets: programdesc, pir, pdiparams (a Paddle model folder's member), tflite, pt2 (a whole
  file). A folder format's input is one byte choosing the fixture folder, then the member's bytes,
  so that one campaign mutates every fixture model of the format against its own weights.
- Seed corpus: the fixtures, written into DIR/corpus-FORMAT on the first run; what libFuzzer keeps
  there (inputs that reached new code) carries over between runs.
- Mutations: libFuzzer's byte mutations and, half the time, the format's structure-aware mutator
  (mutators.py), so that a mutant keeps its lengths consistent and gets past the outer parse.
- The promise checked, in-process: every input converts, or fails with one short QonvertError
  line that is not an internal error. Anything else (another exception, a traceback logged on
  stderr, past 2 GiB of memory (an address-space cap), past 20 s (-timeout), a signal) stops the run
  with the input saved as DIR/finding-FORMAT-*; copy it to tests/fuzz_corpus/coverage-FORMAT/ to
  keep it as a regression case (test_fuzz.py replays them).
- `--runs` counts executions; libFuzzer prints its statistics (execs, coverage, corpus) at the end.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .fuzzing import FIXTURES, MAX_MESSAGE, MEMORY_CAP
from .mutators import mutate_json, mutate_pdiparams, mutate_protobuf, mutate_pt2, mutate_tflite_fields, pdiparams_records, tflite_fields

PADDLE = FIXTURES / "paddle"
LEGACY = sorted(p for p in PADDLE.glob("*_legacy") if (p / "model.pdmodel").is_file())
# The PIR seeds leave out the programs past 256 KB (qat_mobilenetv3_pir, 750 KB): one case of it
# took 180 ms under tracing against 3-20 ms for the others, a third of the campaign's inputs at
# a sixth of its speed. The four op types only it has (dropout, hardsigmoid, hardswish,
# multiply) are reached here only where a mutation renames another op to one of them.
PIR = sorted(p for p in PADDLE.glob("*_pir") if (p / "model.json").is_file() and (p / "model.json").stat().st_size < 256 << 10)
PEAK_GROWTH = 512 << 20  # bytes the process's peak may grow by in one input (the seeds are under 1 MB)
SMALL = 64 << 10  # bytes: the .tflite seeds are the single-op and pattern fixtures under this


@dataclass(frozen=True)
class Target:
    folders: tuple[Path, ...] = ()  # a folder format: the fixture folders, the member mutated
    member: str = ""
    files: tuple[Path, ...] = ()  # a file format: the seed files
    suffix: str = ""
    mutator: Callable[[bytes, random.Random], bytes] | None = None  # structure-aware, on the model bytes


def _pdiparams(data: bytes, rng: random.Random) -> bytes:
    return mutate_pdiparams(data, rng, pdiparams_records(data))


def _tflite(data: bytes, rng: random.Random) -> bytes:
    return mutate_tflite_fields(data, rng, tflite_fields(data))


TARGETS = {
    "programdesc": Target(folders=tuple(LEGACY), member="model.pdmodel", mutator=mutate_protobuf),
    "pir": Target(folders=tuple(PIR), member="model.json", mutator=mutate_json),
    "pdiparams": Target(folders=tuple(LEGACY), member="model.pdiparams", mutator=_pdiparams),
    "tflite": Target(
        files=tuple(
            sorted(p for p in [*FIXTURES.glob("tflite/ops/*.tflite"), *FIXTURES.glob("tflite/patterns/*.tflite")] if p.stat().st_size < SMALL)
        ),
        suffix=".tflite",
        mutator=_tflite,
    ),
    "pt2": Target(files=tuple(sorted(FIXTURES.glob("torch/pt2/decoder_*.pt2"))), suffix=".pt2", mutator=mutate_pt2),
}


def seeds(fmt: str) -> dict[str, bytes]:
    target = TARGETS[fmt]
    if target.folders:
        return {f"{folder.name}": bytes([k]) + (folder / target.member).read_bytes() for k, folder in enumerate(target.folders)}
    return {path.stem: path.read_bytes() for path in target.files}


class Cases:
    """Writes an input as a model on disk: a folder format's member into a copy of the chosen
    fixture folder (made once), a file format's bytes into one file."""

    def __init__(self, fmt: str, scratch: Path) -> None:
        import shutil

        self.target = TARGETS[fmt]
        self.scratch = scratch
        for k, folder in enumerate(self.target.folders):
            shutil.copytree(folder, scratch / str(k), ignore=shutil.ignore_patterns("reference.npz"))

    def split(self, data: bytes) -> tuple[int, bytes]:
        """(the folder's index, the model bytes) of an input; a file format has no index."""
        if not self.target.folders:
            return 0, data
        return (data[0] % len(self.target.folders), data[1:]) if data else (0, b"")

    def write(self, data: bytes) -> Path:
        index, body = self.split(data)
        if self.target.folders:
            folder = self.scratch / str(index)
            (folder / self.target.member).write_bytes(body)
            return folder
        path = self.scratch / f"case{self.target.suffix}"
        path.write_bytes(body)
        return path


class Finding(Exception):
    """A bad outcome: libFuzzer saves the input and stops."""


def check_error(text: str) -> None:
    """The promise for a QonvertError's text: one short line, not an internal error."""
    if "internal error" in text:
        raise Finding(f"an internal error for a bad file: {text[:300]}")
    limit = 8000 if "unsupported op type(s)" in text else MAX_MESSAGE
    if "\n" in text or len(text) > limit:
        raise Finding(f"error text of {len(text)} characters / {text.count(chr(10)) + 1} lines: {text[:200]}")


def _instrumented_imports(fmt: str) -> None:
    """Every qonvert module the conversion can reach, imported under atheris's instrumentation
    (coverage is of qonvert's code; the libraries under it run uninstrumented)."""
    import atheris
    import numpy  # noqa: F401 - the libraries first, uninstrumented
    import onnx  # noqa: F401
    import onnx_ir  # noqa: F401

    if fmt == "pt2":
        import torch  # noqa: F401

    # The protobuf wire tokenizer is left uninstrumented: its few branches (four wire types, the
    # errors) saturate at once, while tracing them took 60% of a ProgramDesc case; the message
    # structure is what mutate_protobuf varies, and the readers above it stay instrumented.
    with atheris.instrument_imports(include=["qonvert"], exclude=["qonvert.converters.paddle.protobuf"]):
        import qonvert

        root = Path(qonvert.__file__).parent
        for path in sorted(root.rglob("*.py")):
            parts = ("qonvert", *path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__main__" or (fmt != "pt2" and "torch" in parts):
                continue  # the CLI's entry runs on import; torch's frontend only for its target
            __import__(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=sorted(TARGETS))
    parser.add_argument("--runs", type=int, default=-1, help="executions (default: until --seconds or a finding)")
    parser.add_argument("--seconds", type=int, default=0, help="wall-clock limit (0: none)")
    parser.add_argument("--work", type=Path, default=Path("fuzz-work"), help="corpus and findings folder")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import atheris

    corpus = args.work / f"corpus-{args.format}"
    corpus.mkdir(parents=True, exist_ok=True)
    seed_files = seeds(args.format)
    if not any(corpus.iterdir()):
        for name, data in seed_files.items():
            (corpus / name).write_bytes(data)
    regression = Path(__file__).resolve().parent / "fuzz_corpus" / f"coverage-{args.format}"
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="qonvert-cov-", dir=shm if shm.is_dir() else None))
    cases = Cases(args.format, scratch)
    _instrumented_imports(args.format)
    import warnings

    import qonvert
    from qonvert.errors import QonvertError

    warnings.simplefilter("ignore")
    # A cap on address space, as the worker campaigns have: an input that allocates past it fails
    # with MemoryError in its own run (a finding, saved), where -rss_limit_mb names no input.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + MEMORY_CAP, hard))
    mutator = TARGETS[args.format].mutator
    assert mutator is not None
    logged = tempfile.TemporaryFile()  # stderr during a case: a logged traceback is a finding
    native_stderr = os.dup(2)

    def peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def test_one_input(data: bytes) -> None:
        try:
            check_one_input(data)
        except Exception:  # every finding saved here too: libFuzzer's own artifact was once lost with its process
            import hashlib

            (args.work / f"finding-{args.format}-saved-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    def check_one_input(data: bytes) -> None:
        before = peak()
        path = cases.write(data)
        logged.seek(0)
        logged.truncate()
        os.dup2(logged.fileno(), 2)
        try:
            qonvert.convert(path)
        except QonvertError as exc:
            check_error(str(exc))
        except MemoryError:
            raise Finding("MemoryError (past the memory cap)") from None
        finally:
            sys.stderr.flush()
            os.dup2(native_stderr, 2)
        if peak() - before > PEAK_GROWTH:
            raise Finding(f"the peak memory grew by {(peak() - before) >> 20} MB converting a {len(data)}-byte input")
        logged.seek(0)
        printed = logged.read().decode(errors="replace")
        if "Traceback (most recent call last)" in printed:
            raise Finding(f"a traceback on stderr: {printed.strip().splitlines()[-1][:200]}")

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            try:
                index, body = cases.split(data)
                prefix = bytes([index]) if cases.target.folders else b""
                mutant = prefix + mutator(body, rng)
                if len(mutant) <= max_size:
                    return mutant
            except Exception:  # an input the structure no longer parses: bytes instead
                pass
        return atheris.Mutate(data, max_size)

    flags = [
        sys.argv[0],
        str(corpus),
        *([str(regression)] if regression.is_dir() else []),
        f"-runs={args.runs}",
        f"-max_total_time={args.seconds}",
        f"-seed={args.seed}",
        "-rss_limit_mb=0",  # the address-space cap above stands in
        "-timeout=20",
        f"-max_len={max(len(d) for d in seed_files.values()) * 2}",
        f"-artifact_prefix={args.work}/finding-{args.format}-",
        "-print_final_stats=1",
    ]
    atheris.Setup(flags, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
