"""Every error kind, from the pure functions: one row per file, a one-line reason, no escape."""

from __future__ import annotations

import errno
import struct
import threading
import time

import pytest
from PIL import Image, PngImagePlugin

from tests import corpus
from udfs import errors
from udfs import extract as ex
from udfs.extract import FEATURE_FIELDS, ExtractOptions, file_row, image_row, time_limit
from udfs.spark_udf import rows_to_arrow

FULL = ExtractOptions(max_side=0)


def never_read():
    raise AssertionError("the content must not be read")


def assert_error_row(row: dict, kind: str) -> None:
    assert set(row) == set(FEATURE_FIELDS)
    assert row["error_kind"] == kind, row["error"]
    assert row["error"] and "\n" not in row["error"] and len(row["error"]) <= 300
    assert row["gray_hist"] is None and row["width"] is None and row["dhash"] is None


@pytest.mark.parametrize("name", sorted(corpus.error_files()))
def test_each_broken_file_gets_its_kind(name):
    kind, data = corpus.error_files()[name]
    assert_error_row(file_row(len(data), lambda: data, FULL), kind)


def test_bombs_are_refused_from_the_header_in_microseconds():
    for w, h in ((20000, 20000), (200000, 100000), (65535, 65535)):
        data = corpus.png_bomb(w, h)
        assert len(data) < 2000
        t = time.perf_counter()
        row = image_row(data, FULL)
        assert time.perf_counter() - t < 0.1
        assert_error_row(row, "decompression_bomb")
        assert f"{w * h}" in row["error"]


def test_max_pixels_is_configurable_both_ways(monkeypatch):
    small = corpus.encode(corpus.photo(0, (64, 48)), "PNG")
    assert_error_row(image_row(small, ExtractOptions(max_side=0, max_pixels=3071)), "decompression_bomb")
    assert image_row(small, ExtractOptions(max_side=0, max_pixels=3072))["error_kind"] is None
    # Above Pillow's own limit the option wins (Pillow's check follows it during a decode):
    # shrink Pillow's limit so that 3072 pixels are over it, then allow them.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(corpus.io.BytesIO(small))
    assert image_row(small, ExtractOptions(max_side=0, max_pixels=10_000))["error_kind"] is None
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the decode


def test_too_large_and_empty_are_decided_from_the_listing():
    opts = ExtractOptions(max_file_bytes=1000)
    assert_error_row(file_row(1001, never_read, opts), "too_large")
    assert_error_row(file_row(3 * 1024**3, never_read, FULL), "too_large")
    assert_error_row(file_row(0, never_read, FULL), "empty")
    ok = corpus.encode(corpus.photo(0, (8, 8)), "PNG")
    assert file_row(len(ok), lambda: ok, ExtractOptions(max_file_bytes=len(ok)))["error_kind"] is None


@pytest.mark.parametrize("exc", [FileNotFoundError(2, "gone"), PermissionError(13, "denied"),
                                 IsADirectoryError(21, "a dir")])  # fmt: skip
def test_vanished_or_forbidden_files_are_unreadable(exc):
    def read():
        raise exc

    assert_error_row(file_row(10, read, FULL), "unreadable")


def test_other_io_errors_propagate_so_spark_retries_the_task():
    def read():
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        file_row(10, read, FULL)


class _Nasty(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


@pytest.mark.parametrize("exc, kind", [
    (ZeroDivisionError("division by zero"), "corrupt"), (KeyError("x"), "corrupt"),
    (RecursionError(), "corrupt"), (SystemError("bad"), "corrupt"), (_Nasty(), "corrupt"),
    (struct.error("unpack"), "corrupt"),
    (MemoryError(), "decompression_bomb"),
])  # fmt: skip
def test_any_decoder_exception_becomes_a_row(monkeypatch, exc, kind):
    def boom(self, *a, **k):
        raise exc

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", boom)
    data = corpus.encode(corpus.photo(0), "PNG")
    row = image_row(data, FULL)
    assert_error_row(row, kind)
    assert row["content_sha256"]  # the bytes were read: their digest is kept


def test_an_exception_while_opening_is_corrupt(monkeypatch):
    def boom(self):
        raise ValueError("weird header")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", boom)
    assert_error_row(image_row(corpus.encode(corpus.photo(0), "PNG"), FULL), "corrupt")


def test_a_slow_step_is_stopped_by_the_time_budget(monkeypatch):
    def slow(gray):
        while True:  # pure Python, no sleeping: the alarm interrupts running code
            pass

    monkeypatch.setattr(ex, "gray_features", slow)
    data = corpus.encode(corpus.photo(0), "PNG")
    t = time.perf_counter()
    row = image_row(data, ExtractOptions(max_side=0, time_budget_s=0.2))
    assert 0.15 < time.perf_counter() - t < 2
    assert_error_row(row, "timeout")
    # and the next file is unaffected: no alarm left armed, handler restored
    assert image_row(data, ExtractOptions(max_side=0, time_budget_s=0.2))["error_kind"] == "timeout"
    monkeypatch.undo()
    assert image_row(data, ExtractOptions(max_side=0, time_budget_s=0.2))["error_kind"] is None


def test_time_limit_restores_the_previous_handler_and_timer():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with time_limit(5):
        pass
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_outside_the_main_thread_is_no_limit():
    seen = []

    def work():
        with time_limit(0.01):
            time.sleep(0.05)
        seen.append("finished")

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == ["finished"]


def test_one_bad_file_never_loses_the_rest_of_its_batch():
    good = corpus.encode(corpus.photo(0), "PNG")
    files = [good] + [d for _, d in corpus.error_files().values()] + [good]
    rows = [file_row(len(d), lambda d=d: d, FULL) for d in files]
    arr = rows_to_arrow(rows)
    assert len(arr) == len(files)
    kinds = arr.field("error_kind").to_pylist()
    assert kinds[0] is None and kinds[-1] is None and all(k in errors.ERROR_KINDS for k in kinds[1:-1])


def test_error_reasons_are_one_line_and_bounded():
    assert errors.one_line("a\n  b\tc") == "a b c"
    assert len(errors.one_line("x" * 1000)) == 300
    assert errors.describe(_Nasty()) == "_Nasty"
    with pytest.raises(ValueError):
        errors.ImageError("nonsense", "x")
