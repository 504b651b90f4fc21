"""Keeping libraries' own chatter off the user's stderr. Native libraries (LiteRT's "Created
TensorFlow Lite XNNPACK delegate", ...) write past Python's sys.stderr: the file descriptor itself
is silenced meanwhile. Python libraries that log a traceback before raising (torch.export.load)
have their records held, so that qonvert's one error line can name the cause."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor (pytest capture, ...)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def log_records_held(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """The logger's records (and its children's) go to the yielded list instead of stderr."""
    logger = logging.getLogger(logger_name)
    held: list[logging.LogRecord] = []

    class Holder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    handler = Holder()
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        yield held
    finally:
        logger.handlers[:], logger.propagate = saved


def logged_cause(records: list[logging.LogRecord]) -> BaseException | None:
    """The first exception a held record carries (the cause a library logged before raising a
    generic error of its own)."""
    for record in records:
        if record.exc_info and record.exc_info[1] is not None:
            return record.exc_info[1]
    return None
