"""Why an input file has no features: the ``error_kind`` values and their one-line reasons."""

from __future__ import annotations

EMPTY = "empty"  # the file has 0 bytes
UNSUPPORTED_FORMAT = "unsupported_format"  # not an image format Pillow (or a plugin) can read
CORRUPT = "corrupt"  # an image format, but truncated or bad data: any decoder error
DECOMPRESSION_BOMB = "decompression_bomb"  # header declares more pixels than --max-pixels
TOO_LARGE = "too_large"  # more bytes than --max-file-bytes: content never read
TIMEOUT = "timeout"  # decoding and features took longer than --time-budget seconds
UNREADABLE = "unreadable"  # listed, but gone or not readable (permissions) when read

ERROR_KINDS = (EMPTY, UNSUPPORTED_FORMAT, CORRUPT, DECOMPRESSION_BOMB, TOO_LARGE, TIMEOUT, UNREADABLE)

_MAX_REASON = 300


class ImageError(Exception):
    """A classified failure for one file; becomes the row's ``error_kind`` and ``error``."""

    def __init__(self, kind: str, reason: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(reason)
        self.kind = kind
        self.reason = one_line(reason)


def one_line(text: str) -> str:
    """Collapse whitespace to single spaces and cap the length, so a reason fits one line."""
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line (never raises: decoders' exceptions
    can carry anything, even a ``__str__`` that fails)."""
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001
        msg = ""
    if isinstance(exc, MemoryError) and not msg:  # where the limit comes from, on a cluster
        msg = ("no memory left to decode it (a Spark Python worker's limit: "
               "spark.executor.pyspark.memory / executor cores)")
    return one_line(f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__)
