"""The Arrow UDF on DataFrames built in memory, and how executors read files by URI."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLE_PHOTOS
from udfs.extract import ExtractOptions, image_row
from udfs.spark_udf import make_features_udf, read_uri, rows_to_arrow


@pytest.mark.spark
def test_udf_gives_one_row_per_input_across_batches(spark):
    """7 rows with Arrow batches of 3 (conftest): bytes from Spark, bytes read by the worker,
    and bad input side by side; every row comes back, in order, with its own result."""
    good = SAMPLE_PHOTOS[0].read_bytes()
    rows = [
        ("file:/x/a.jpg", len(good), good),
        ("file:/x/b.jpg", 5, b"junk!"),
        ("file:/x/c.jpg", 0, b""),
        (f"file:{SAMPLE_PHOTOS[1]}", SAMPLE_PHOTOS[1].stat().st_size, None),  # read by the worker
        ("file:/x/gone.jpg", 10, None),  # listed, then vanished
        ("file:/x/d.jpg", len(good) // 2, good[: len(good) // 2]),
        ("file:/x/huge.jpg", 10**9, None),  # too large: never read
    ]
    df = spark.createDataFrame(rows, "path string, length long, content binary")
    out = df.select("path", make_features_udf(ExtractOptions(max_side=64))("path", "length", "content").alias("f"))
    got = [(r.path, r.f.error_kind, r.f.width) for r in out.collect()]
    want_first = image_row(good, ExtractOptions(max_side=64))
    assert [g[0] for g in got] == [r[0] for r in rows]
    assert [g[1] for g in got] == [None, "unsupported_format", "empty", None, "unreadable", "corrupt", "too_large"]
    assert got[0][2] == want_first["width"]


def test_rows_to_arrow_keeps_nulls_and_histograms():
    good = image_row(SAMPLE_PHOTOS[0].read_bytes(), ExtractOptions(max_side=32))
    bad = image_row(b"nope", ExtractOptions())
    arr = rows_to_arrow([good, bad, good])
    assert arr.to_pylist()[0]["gray_hist"] == good["gray_hist"].tolist()
    assert arr.to_pylist()[1]["gray_hist"] is None and arr.to_pylist()[1]["error_kind"] == "unsupported_format"


@pytest.mark.parametrize("name", ["plain.jpg", "a b#1%20.jpg", "[x]{y}.jpg"])
def test_read_uri_takes_paths_as_spark_lists_them(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(b"bytes")
    assert read_uri(f"file:{f}") == b"bytes"  # Spark: file:/dir/a b#1%20.jpg (not encoded)
    assert read_uri(f"file://{f}") == b"bytes"
    assert read_uri(str(f)) == b"bytes"
