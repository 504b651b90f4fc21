"""The qonvert command: convert, verify, inspect. Exit 0 ok / equivalent, 1 not equivalent, 2 bad
input, 3 a bug in qonvert (--debug shows its traceback)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import api
from .errors import InputError, InternalError, QonvertError
from .targets import TARGET_NAMES
from .verify.report import BARS

PER_LAYER = "also check each quantized tensor, computed from the reference runtime's own values of its inputs (TFLite, PyTorch, Paddle ProgramDesc)"
BAR = (
    "which bar sets the verdict and exit code: end-to-end (every output within 1 LSB, same top-1), per-layer (every op within"
    " 1 step), spread (end to end, or within the source's own kernel spread with every op within 1 step) or exact (every"
    " output and every tensor equal to the source's: the default for a litert-exact model; end-to-end for any other)"
)
KIND = "what an output is, where its shape does not say it (classifier, sequence, map or map@THRESHOLD, regression); repeatable"
KERNELS = (
    "the source runtime's kernel set to compare against (LiteRT: xnnpack, builtin, reference; default the first, the reference"
    " kernels for a litert-exact model); the others measure its spread"
)
REPORT = "also write the report as one self-contained HTML page"
SPEED = "ORT CPU's speed form: non-negative int8 activations as uint8 (differs where the source saturates)"
TARGET = "write the deployment target's form (tensorrt: signed int8, zero point 0, float biases; ort-speed: " + SPEED + ")"
INPUT_SHAPE = "shape of an input with dynamic dimensions (default: batch 1, others 64); repeatable"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qonvert", description=__doc__)
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback (for reporting a bug in qonvert)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert a quantized model to canonical QDQ ONNX")
    c.add_argument("model", help="model file, directory or path prefix")
    c.add_argument("-o", "--output", required=True, help="output .onnx path (written atomically)")
    c.add_argument("--opset", type=int, default=None, help="ask for a higher opset than the lowest that fits")
    _add_frontend_options(c)
    c.add_argument("--target", choices=TARGET_NAMES, help=TARGET)
    c.add_argument("--symmetric", action="store_true", help="tensorrt: re-quantize asymmetric activations symmetrically (range kept)")
    c.add_argument("--speed", action="store_true", help=f"the same as --target ort-speed: {SPEED}")
    c.add_argument("--calibration", metavar="CALIB.npz", help="ort-speed: input samples to calibrate a Q on the outputs the source leaves float")
    c.add_argument("--verify", action="store_true", help="also verify against the source framework")
    c.add_argument("--samples", type=int, default=20)
    c.add_argument("--per-layer", action="store_true", help=PER_LAYER)
    c.add_argument("--bar", choices=BARS, help=BAR)
    c.add_argument("--reference-kernels", metavar="SET", help=KERNELS)
    c.add_argument("--output-kind", action="append", default=[], metavar="NAME=KIND", help=KIND)
    c.add_argument("--report", metavar="OUT.html", help=REPORT)
    c.add_argument("--input-shape", action="append", default=[], metavar="NAME=D,D,..", help=INPUT_SHAPE)
    v = sub.add_parser("verify", help="compare the ONNX model on ORT with the source framework")
    v.add_argument("model", help="the source model")
    v.add_argument("onnx", help="the converted .onnx")
    v.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    v.add_argument("--samples", type=int, default=20)
    v.add_argument("--inputs", help=".npz of inputs")
    v.add_argument("--reference", help=".npz of inputs and recorded reference outputs")
    v.add_argument("--save-reference", help="record inputs and reference outputs to this .npz")
    v.add_argument("--per-layer", action="store_true", help=PER_LAYER)
    v.add_argument("--bar", choices=BARS, help=BAR)
    v.add_argument("--reference-kernels", metavar="SET", help=KERNELS)
    v.add_argument("--output-kind", action="append", default=[], metavar="NAME=KIND", help=KIND)
    v.add_argument("--report", metavar="OUT.html", help=REPORT)
    v.add_argument("--input-shape", action="append", default=[], metavar="NAME=D,D,..", help=INPUT_SHAPE)
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_frontend_options(v)
    z = sub.add_parser("zoo", help="the regression harness over a model zoo")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zr = zsub.add_parser("run", help="convert and verify every entry of a TOML manifest")
    zr.add_argument("manifest", help="the zoo manifest (.toml)")
    zr.add_argument("--filter", help="only entries whose name matches (glob or substring)")
    zr.add_argument("--jobs", type=int, default=1, help="worker processes at once (0: one per core)")
    zr.add_argument("--ray", metavar="ADDRESS", help="fan the entries out over a Ray cluster: 'local', 'auto' or host:port (paths shared)")
    zr.add_argument("--report", help="write the JSON report here")
    zr.add_argument("--report-html", metavar="DIR", help="write one HTML page per model and an index page here")
    zr.add_argument("--golden", help="folder of golden per-model reports to compare with")
    zr.add_argument("--update-golden", action="store_true", help="write this run's results as the golden reports")
    i = sub.add_parser("inspect", help="quantized tensors, op support, ORT fusion coverage")
    i.add_argument("model", help="a source model or an .onnx file")
    i.add_argument("--target", choices=TARGET_NAMES, help="also list what the target would change, reject or run outside int8 (.onnx files)")
    return p


@contextlib.contextmanager
def _busy(text: str, echo: bool = False) -> Iterator[None]:
    """A spinner on a terminal (long reference runs); elsewhere the line itself where `echo`
    (convert's progress lines), nothing otherwise (verify's stderr stays its one error line)."""
    if not sys.stderr.isatty():  # rich is not even imported: a whole conversion can take 0.4 s
        if echo:
            print(text, file=sys.stderr)
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def _render(report: api.VerifyReport, html_path: str | None, quiet: bool = False) -> None:
    if not quiet:
        from .verify.render import print_report

        print_report(report)
    if html_path:
        from .verify.html import write_html

        write_html(report, Path(html_path))
        print(f"report: {html_path}", file=sys.stderr)


def _frontend_option_fields() -> list[tuple[str, dataclasses.Field[Any]]]:
    from .converters import FRONTENDS

    return [(f.name, fld) for f in FRONTENDS.values() for fld in dataclasses.fields(f.options_type) if fld.metadata.get("cli", True)]


def _add_frontend_options(parser: argparse.ArgumentParser) -> None:
    """A flag per field of every frontend's options dataclass (given only when used)."""
    for framework, fld in _frontend_option_fields():
        flag = "--" + fld.name.replace("_", "-")
        help_text = f"{framework}: {fld.metadata.get('help', '')}"
        if fld.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, choices=fld.metadata.get("choices"), default=argparse.SUPPRESS, help=help_text)


def _frontend_options(args: argparse.Namespace) -> dict[str, Any]:
    return {fld.name: getattr(args, fld.name) for _, fld in _frontend_option_fields() if hasattr(args, fld.name)}


def _takes(model: str, option: str) -> bool:
    """Whether the model's frontend has this option."""
    from .converters import as_source, frontend

    try:
        chosen = frontend(as_source(model))
    except QonvertError:
        return False
    return option in {f.name for f in dataclasses.fields(chosen.options_type)}


def _input_shapes(items: list[str]) -> dict[str, list[int]]:
    shapes = {}
    for item in items:
        name, _, dims = item.rpartition("=")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise InputError(f"--input-shape {item!r}: expected NAME=D,D,...") from None
        if not name or any(d < 1 for d in shapes[name]):
            raise InputError(f"--input-shape {item!r}: expected NAME=D,D,... with positive dimensions")
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # What is imported by now lives as long as the process: the cyclic collector need not scan it
    # on each collection a conversion triggers, nor at exit (45 ms of a 0.55 s conversion).
    gc.freeze()
    # Frameworks' deprecation notes and numpy's overflow warnings on a bad file are not the user's
    # business: the CLI's stderr carries its progress lines and, on bad input, one error line.
    with warnings.catch_warnings():
        for category in (RuntimeWarning, DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        try:
            return _COMMANDS[args.command](args)
        except Exception as exc:
            if args.debug:
                raise
            print(f"qonvert: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_INPUT if isinstance(exc, QonvertError) and not isinstance(exc, InternalError) else EXIT_INTERNAL


EXIT_INPUT, EXIT_INTERNAL = 2, 3


def _one_line(exc: Exception) -> str:
    """A QonvertError's own line; anything else is qonvert's bug, named with where it was raised."""
    if isinstance(exc, QonvertError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return str(InternalError(f"{type(exc).__name__}: {exc}{at}"))


def _convert(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    print(f"converting {args.model} ...", file=sys.stderr)
    options = _frontend_options(args)
    shapes = _input_shapes(args.input_shape)
    if shapes and _takes(args.model, "input_shapes"):  # TorchScript records no input shapes
        options["input_shapes"] = shapes
    elif shapes and not args.verify:
        # this frontend reads its shapes from the file: the option only shapes verify's samples
        print("note: --input-shape sets the shapes verify samples: without --verify it is not used", file=sys.stderr)
    target_options = {"symmetric": args.symmetric, "calibration": args.calibration}
    result = api.convert(args.model, args.output, opset=args.opset, target=args.target, speed=args.speed, **target_options, **options)
    counts = ", ".join(f"{k} {v}" for k, v in result.pass_counts.items() if v)
    took = f"in {time.perf_counter() - start:.2f} s" + (f"; rewrites: {counts}" if counts else "")
    print(f"wrote {args.output} ({result.framework}, opset {result.opset}) {took}")
    for remark in result.remarks:
        print(f"note: {remark}")
    if not args.verify:
        return 0
    verify_options = {"samples": args.samples, "input_shapes": shapes, **api.source_options(options)}
    with _busy(f"verifying on {args.samples} inputs ...", echo=True):
        report = api.verify(
            args.model,
            result.model,
            per_layer=args.per_layer,
            bar=args.bar,
            reference_kernels=args.reference_kernels,
            output_kinds=_output_kinds(args.output_kind),
            **verify_options,
        )
    _render(report, args.report)
    target = "ort-speed" if args.speed else args.target
    if target is not None:  # what each stage of the derivation costs, against the source
        for line in api.derivation_costs(args.model, result, target, target_options, report, **verify_options):
            print(line)
    return 0 if report.equivalent else 1


def _output_kinds(given: list[str]) -> dict[str, str]:
    kinds = {}
    for item in given:
        name, sep, kind = item.rpartition("=")
        if not sep or not name or not kind:
            raise InputError(f"--output-kind {item!r}: expected NAME=KIND")
        kinds[name] = kind
    return kinds


def _verify(args: argparse.Namespace) -> int:
    with _busy(f"verifying {args.model} ..."):
        report = api.verify(
            args.model,
            args.onnx,
            device=args.device,
            samples=args.samples,
            inputs=args.inputs,
            reference=args.reference,
            save_reference=args.save_reference,
            per_layer=args.per_layer,
            input_shapes=_input_shapes(args.input_shape),
            bar=args.bar,
            reference_kernels=args.reference_kernels,
            output_kinds=_output_kinds(args.output_kind),
            **_frontend_options(args),
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _render(report, None)
    if args.report:
        _render(report, args.report, quiet=True)
    return 0 if report.equivalent else 1


def _zoo(args: argparse.Namespace) -> int:
    from .zoo.render import zoo_run

    if args.update_golden and not args.golden:
        raise InputError("--update-golden needs --golden DIR")
    return zoo_run(
        Path(args.manifest),
        args.filter,
        args.jobs,
        Path(args.report) if args.report else None,
        Path(args.golden) if args.golden else None,
        args.update_golden,
        ray_address=args.ray,
        html_dir=Path(args.report_html) if args.report_html else None,
    )


def _inspect(args: argparse.Namespace) -> int:
    info = api.inspect(args.model, target=args.target)
    print(f"{'tensor':40} {'dtype':6} {'scale':>24} {'zero point':>18} {'axis':>5}")
    for t in info.quantized:
        print(f"{t.name[:40]:40} {t.dtype:6} {t.scale:>24} {t.zero_point:>18} {'-' if t.axis in (None, -1) else t.axis!s:>5}")
    print("ops: " + ", ".join(f"{k} x{n}" + ("" if ok else " (UNSUPPORTED)") for k, (n, ok) in sorted(info.ops.items())))
    if info.fusion is not None:
        f = info.fusion
        print(
            f"ORT CPU fusion: {f.fused}/{f.quantized_in_source} quantized Conv/MatMul/Gemm became integer kernels "
            f"({', '.join(f'{k} x{n}' for k, n in sorted(f.integer.items())) or 'none'})"
        )
        for name in f.float_ops:
            print(f"  stays float: {name}")
    if info.target_findings is not None:
        print(f"{args.target}: {len(info.target_findings)} finding(s)" + ("" if info.target_findings else ": ready"))
        for finding in info.target_findings:
            print(f"  {finding}")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"convert": _convert, "verify": _verify, "zoo": _zoo, "inspect": _inspect}


if __name__ == "__main__":
    raise SystemExit(main())
