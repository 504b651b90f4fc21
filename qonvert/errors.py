"""The one error type users see: a one-line message naming the file, op or tensor."""

from __future__ import annotations


class QonvertError(Exception):
    """A problem with the user's input (file, op, tensor, option); the CLI exits 2 on it."""

    def __init__(self, message: str) -> None:
        # One line, always: multi-line details are joined so logs and `exit 2` stay readable.
        super().__init__(" ".join(str(message).split()))


class UnsupportedOpsError(QonvertError):
    """Every unsupported op of a model, listed at once before any conversion work."""

    def __init__(self, source: str, ops: dict[str, list[str]]) -> None:
        self.ops = ops
        listed = "; ".join(f"{op} (x{len(names)}: {', '.join(names[:3])})" for op, names in sorted(ops.items()))
        super().__init__(f"{source}: {len(ops)} unsupported op type(s): {listed}")
