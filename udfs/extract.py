"""One input file -> one output row (a dict): features, or nulls plus a classified error.

``file_row`` never raises for anything a file can contain; ``udfs.spark_udf`` calls it once
per file.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from udfs import errors
from udfs.decode import PILLOW_PIXEL_LIMIT, decode
from udfs.exif import exif_facts
from udfs.features import gray_features

# Spark's binaryFile source cannot hold a file over 2 GiB; stay well under it by default.
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_SIDE = 512
DEFAULT_TIME_BUDGET_S = 120.0

FEATURE_FIELDS = (
    "content_sha256",
    "format",
    "mode",
    "n_frames",
    "width",
    "height",
    "orientation",
    "analysis_width",
    "analysis_height",
    "gray_mean",
    "gray_std",
    "gray_hist",
    "entropy",
    "sharpness",
    "dhash",
    "exif_datetime",
    "camera_make",
    "camera_model",
    "gps_latitude",
    "gps_longitude",
    "error_kind",
    "error",
)


@dataclass(frozen=True)
class ExtractOptions:
    """How each image is analysed; validated once, then shipped to every worker."""

    max_side: int = DEFAULT_MAX_SIDE  # long side of the analysis image; 0 = full resolution
    max_pixels: int = PILLOW_PIXEL_LIMIT  # declared pixels above this: decompression_bomb
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # bytes above this: too_large, never read
    time_budget_s: float = DEFAULT_TIME_BUDGET_S  # per image; 0 = unlimited
    keep_gps: bool = False

    def __post_init__(self):
        if self.max_side < 0:
            raise ValueError("max_side must be >= 0 (0 = full resolution)")
        if self.max_pixels <= 0:
            raise ValueError("max_pixels must be > 0")
        if not 0 < self.max_file_bytes < 2**31:
            raise ValueError("max_file_bytes must be between 1 and 2 GiB - 1 (Spark's limit)")
        if self.time_budget_s < 0:
            raise ValueError("time_budget_s must be >= 0 (0 = unlimited)")


class _OverBudget(BaseException):
    """Raised inside the decoder by the timer; a BaseException so no decoder code swallows it."""


@contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` with _OverBudget (main thread only, else no limit).

    Pillow decodes in chunks from Python (ImageFile.load), so the signal handler runs between
    chunks: a hostile file is stopped even while its decoder is making progress.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def on_alarm(signum, frame):
        if armed:
            raise _OverBudget()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def error_row(kind: str, reason: str, content_sha256: str | None = None) -> dict:
    row = dict.fromkeys(FEATURE_FIELDS)
    row.update(content_sha256=content_sha256, error_kind=kind, error=errors.one_line(reason))
    return row


def image_row(data: bytes, opts: ExtractOptions) -> dict:
    """Features of one encoded image, or an error row; never raises for bad content."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        with time_limit(opts.time_budget_s):
            d = decode(data, opts.max_side, opts.max_pixels)
            feats = gray_features(d.gray)
            facts = exif_facts(d.exif, opts.keep_gps)
    except errors.ImageError as e:
        return error_row(e.kind, e.reason, digest)
    except _OverBudget:
        return error_row(errors.TIMEOUT, f"over the time budget of {opts.time_budget_s:g} s", digest)
    except MemoryError as e:
        return error_row(errors.DECOMPRESSION_BOMB, errors.describe(e), digest)
    except Exception as e:  # noqa: BLE001 - a feature bug on odd pixels must not lose the row
        return error_row(errors.CORRUPT, errors.describe(e), digest)
    return {
        "content_sha256": digest,
        "format": d.format,
        "mode": d.mode,
        "n_frames": d.n_frames,
        "width": d.width,
        "height": d.height,
        "orientation": d.orientation,
        "analysis_width": d.gray.width,
        "analysis_height": d.gray.height,
        **feats,
        **facts,
        "error_kind": None,
        "error": None,
    }


def file_row(size: int, read, opts: ExtractOptions) -> dict:
    """The row of one listed file of ``size`` bytes; ``read()`` returns its bytes when needed.

    Size limits are checked from the listing, so an empty or too large file is never read.
    A file that vanished or cannot be read (permissions) gets an error row; other I/O errors
    propagate, so that Spark retries the task and a broken file system fails the run.
    """
    if size == 0:
        return error_row(errors.EMPTY, "file has 0 bytes")
    if size > opts.max_file_bytes:
        return error_row(
            errors.TOO_LARGE, f"{size} bytes, above the limit of {opts.max_file_bytes}; not read"
        )
    try:
        data = read()
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        return error_row(errors.UNREADABLE, errors.describe(e))
    return image_row(data, opts)
