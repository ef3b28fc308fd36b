"""The features of Arrow batches of files, alone and through Spark's mapInArrow on DataFrames
built in memory, and how executors read files by URI."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from tests.conftest import SAMPLE_PHOTOS
from udfs.extract import ExtractOptions, image_row
from udfs.spark_udf import (
    FILE_FEATURES_TYPE,
    file_features,
    make_features_mapper,
    read_uri,
    rows_to_arrow,
)

GOOD = SAMPLE_PHOTOS[0].read_bytes()
MTIME = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
FILES = [  # bytes from Spark, bytes read by the worker, and bad input side by side
    ("file:/x/a.jpg", len(GOOD), GOOD),
    ("file:/x/b.jpg", 5, b"junk!"),
    ("file:/x/c.jpg", 0, b""),
    (f"file:{SAMPLE_PHOTOS[1]}", SAMPLE_PHOTOS[1].stat().st_size, None),  # read by the worker
    ("file:/x/gone.jpg", 10, None),  # listed, then vanished
    ("file:/x/d.jpg", len(GOOD) // 2, GOOD[: len(GOOD) // 2]),
    ("file:/x/huge.jpg", 10**9, None),  # too large: never read
]
KINDS = [None, "unsupported_format", "empty", None, "unreadable", "corrupt", "too_large"]


def test_file_features_keeps_the_file_columns_and_gives_one_row_per_file():
    batch = pa.RecordBatch.from_pydict({
        "path": [f[0] for f in FILES], "length": [f[1] for f in FILES],
        "modificationTime": pa.array([MTIME] * len(FILES), pa.timestamp("us", tz="UTC")),
        "content": pa.array([f[2] for f in FILES], pa.binary()),
    })  # fmt: skip
    out = file_features(batch, ExtractOptions(max_side=64))
    assert out.schema.names == FILE_FEATURES_TYPE.fieldNames()
    for name in ("path", "length", "modificationTime"):
        assert out.column(name).equals(batch.column(name))
    assert out.column("error_kind").to_pylist() == KINDS
    assert out.column("width")[0].as_py() == image_row(GOOD, ExtractOptions(max_side=64))["width"]


@pytest.mark.spark
def test_map_in_arrow_gives_one_row_per_file_across_batches(spark):
    """7 rows with Arrow batches of 3 (conftest): every row comes back, in order, with its
    own result and its listing columns unchanged."""
    df = spark.createDataFrame([(p, n, MTIME, c) for p, n, c in FILES],
                               "path string, length long, modificationTime timestamp, content binary")
    out = df.mapInArrow(make_features_mapper(ExtractOptions(max_side=64)), FILE_FEATURES_TYPE)
    got = out.collect()
    assert [(r.path, r.length) for r in got] == [(p, n) for p, n, _ in FILES]
    assert {r.modificationTime.astimezone(timezone.utc) for r in got} == {MTIME}
    assert [r.error_kind for r in got] == KINDS
    assert got[0].width == image_row(GOOD, ExtractOptions(max_side=64))["width"]


def test_rows_to_arrow_keeps_nulls_and_histograms():
    good = image_row(SAMPLE_PHOTOS[0].read_bytes(), ExtractOptions(max_side=32))
    bad = image_row(b"nope", ExtractOptions())
    arr = rows_to_arrow([good, bad, good])
    assert arr.to_pylist()[0]["gray_hist"] == good["gray_hist"].tolist()
    assert arr.to_pylist()[1]["gray_hist"] is None and arr.to_pylist()[1]["error_kind"] == "unsupported_format"
    assert rows_to_arrow([]).type == arr.type  # an empty batch keeps the schema


@pytest.mark.parametrize("name", ["plain.jpg", "a b#1%20.jpg", "[x]{y}.jpg"])
def test_read_uri_takes_paths_as_spark_lists_them(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(b"bytes")
    assert read_uri(f"file:{f}") == b"bytes"  # Spark: file:/dir/a b#1%20.jpg (not encoded)
    assert read_uri(f"file://{f}") == b"bytes"
    assert read_uri(str(f)) == b"bytes"
