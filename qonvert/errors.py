"""The one error type users see: a one-line message naming the file, op or tensor."""

from __future__ import annotations


class QonvertError(Exception):
    """A problem with the user's input (file, op, tensor, option); the CLI exits 2 on it."""

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


class UnsupportedOpsError(QonvertError):
    """Every unsupported op of a model, listed at once before any conversion work."""

    max_message = 8000  # every op type is named, however many

    def __init__(self, source: str, ops: dict[str, list[str]]) -> None:
        self.ops = ops
        listed = "; ".join(f"{op} (x{len(names)}: {', '.join(names[:3])})" for op, names in sorted(ops.items()))
        super().__init__(f"{source}: {len(ops)} unsupported op type(s): {listed}")
