"""Seeded mutations of real files: never an escaped exception, always exactly one row, and that
row agrees with Pillow (features when Pillow decodes the file, an error kind when it cannot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import corpus
from tests.conftest import run_job
from udfs.errors import ERROR_KINDS
from udfs.extract import FEATURE_FIELDS, ExtractOptions, file_row, image_row

FULL = ExtractOptions(max_side=0)
N_PURE = 400  # 80 per format; about 2 s
N_SPARK = 200


def check_row(name: str, data: bytes, row: dict) -> None:
    """The contract: one dict of every field; features equal to the reference, or an error."""
    assert set(FEATURE_FIELDS) <= set(row), name
    want = corpus.expected(data)
    if want is None:
        assert row["error_kind"] in ERROR_KINDS, (name, "Pillow cannot decode it")
        assert row["error"] and "\n" not in row["error"]
        assert row["gray_hist"] is None and row["format"] is None
    else:
        assert row["error_kind"] is None, (name, row["error"])
        assert corpus.mismatches(row, want) == [], name


def test_mutations_of_every_format_agree_with_pillow():
    kinds = set()
    for name, data in corpus.mutations(seed=7, n=N_PURE):
        row = file_row(len(data), lambda data=data: data, FULL)
        check_row(name, data, row)
        kinds.add(row["error_kind"])
    assert None in kinds and "corrupt" in kinds  # both outcomes occur


def test_mutations_on_the_reduced_path_fail_exactly_when_full_decoding_fails():
    for name, data in corpus.mutations(seed=8, n=150):
        full, reduced = image_row(data, FULL), image_row(data, ExtractOptions(max_side=16))
        assert (full["error_kind"] is None) == (reduced["error_kind"] is None), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00",
                           b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP", b"\x00\x00\x00\x18ftypheic",
                           b"BM", b"", b"P5\n"]),  # fmt: skip
    body=st.binary(max_size=300),
)
def test_arbitrary_bytes_behind_any_magic_never_escape(magic, body):
    data = magic + body
    row = file_row(len(data), lambda: data, FULL)
    assert set(row) == set(FEATURE_FIELDS)
    assert row["error_kind"] in (None, *ERROR_KINDS)


@pytest.mark.spark
def test_one_spark_run_over_mutations_keeps_every_row(spark, tmp_path):
    files = dict(corpus.mutations(seed=11, n=N_SPARK))
    files["gps.jpg"] = corpus.gps_jpeg()
    files["empty.jpg"] = b""
    corpus.write(tmp_path / "in" / "fuzz", files)
    code = run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                   "--glob", "*", "--max-side", "0", "--keep-gps", "--run-id", "fuzz")  # fmt: skip
    assert code == 0
    rows = [r.asDict() for r in spark.read.parquet(str(tmp_path / "out" / "images")).collect()]
    by_name = {Path(r["path"].removeprefix("file:")).name: r for r in rows}
    assert len(rows) == len(by_name) == len(files)  # exactly one row per file
    assert set(by_name) == set(files)
    for name, data in files.items():
        check_row(name, data, by_name[name])
    gps = by_name["gps.jpg"]
    assert gps["gps_latitude"] == pytest.approx(52.5) and gps["gps_longitude"] == pytest.approx(13.4)
    assert gps["camera_make"] == "TestCam"
