"""The errors users see, each one line naming the file, op, tensor or pass: whose fault it is
says the class (InputError, exit 2; InternalError, exit 3)."""

from __future__ import annotations


class QonvertError(Exception):
    """What qonvert raises: an InputError (the user's file or options; exit 2) or an InternalError
    (qonvert's own bug; exit 3). Always one line."""

    max_message = 1000  # characters of a whole message

    def __init__(self, message: str) -> None:
        # One line, always: multi-line details are joined so logs and `exit 2` stay readable; and
        # bounded, since names come from the file (a corrupt one can make a name of megabytes).
        super().__init__(shorten(" ".join(str(message).split()), self.max_message))


MAX_WORD = 300  # characters of one name (word) in a message (TF joins long names with ";")


def shorten(text: str, limit: int) -> str:
    """Each overlong word shortened in the middle (its end matters), then the whole text."""
    words = [w if len(w) <= MAX_WORD else f"{w[: MAX_WORD // 2 - 1]}…{w[-(MAX_WORD // 2 - 1) :]}" for w in text.split(" ")]
    text = " ".join(words)
    return text if len(text) <= limit else f"{text[: limit - 150]} … {text[-140:]}"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """A library exception's first non-blank line, shortened (its type's name if it has no text):
    what an error line quotes of a cause."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return shorten(lines[0].strip(), limit) if lines else type(exc).__name__


def cause(exc: BaseException) -> str:
    """`Type: first line` of a library exception, for an error line that quotes it."""
    return f"{type(exc).__name__}: {first_line(exc)}"


class InputError(QonvertError):
    """A problem with the user's input (file, op, tensor, option): the CLI exits 2."""


REPORT = "a bug in qonvert: please report this line, with the model if you can"


class InternalError(QonvertError):
    """qonvert's own bug (a broken contract on a valid model, an op newer than the opset, an
    exception a mapper or pass did not expect): one line naming the source op or pass, and what
    to do with it. The CLI exits 3."""

    def __init__(self, message: str) -> None:
        text = str(message)
        text = text if "internal error" in text else f"internal error, {text}"
        super().__init__(text if REPORT in text else f"{text} ({REPORT})")


def located(error: QonvertError, where: str) -> QonvertError:
    """The same kind of error, its message prefixed with where it happened (a file, an op)."""
    kind = InternalError if isinstance(error, InternalError) else InputError
    return kind(f"{where}: {error}")


class UnsupportedOpsError(InputError):
    """Every unsupported op of a model, listed at once before any conversion work."""

    max_message = 8000  # every op type is named, however many

    def __init__(self, source: str, ops: dict[str, list[str]]) -> None:
        self.ops = ops
        listed = "; ".join(f"{op} (x{len(names)}: {', '.join(names[:3])})" for op, names in sorted(ops.items()))
        super().__init__(f"{source}: {len(ops)} unsupported op type(s): {listed}")
