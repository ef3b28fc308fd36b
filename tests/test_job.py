"""The job end to end on the bundled samples, in local mode (in-process, shared session)."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image
from pyspark.sql import types as T

from tests import corpus
from tests.conftest import SAMPLES, run_job
from tests.reference import assert_matches, reference_features
from udfs.errors import ERROR_KINDS

pytestmark = pytest.mark.spark

IMAGES_SCHEMA = [
    ("path", T.StringType()), ("label", T.StringType()), ("size_bytes", T.LongType()),
    ("modification_time", T.TimestampType()), ("content_sha256", T.StringType()),
    ("format", T.StringType()), ("mode", T.StringType()), ("n_frames", T.IntegerType()),
    ("width", T.IntegerType()), ("height", T.IntegerType()), ("orientation", T.IntegerType()),
    ("aspect_ratio", T.DoubleType()), ("megapixels", T.DoubleType()),
    ("analysis_width", T.IntegerType()), ("analysis_height", T.IntegerType()),
    ("gray_mean", T.DoubleType()), ("gray_std", T.DoubleType()),
    ("gray_hist", T.ArrayType(T.LongType())), ("entropy", T.DoubleType()),
    ("sharpness", T.DoubleType()), ("dhash", T.StringType()),
    ("exif_datetime", T.StringType()), ("camera_make", T.StringType()),
    ("camera_model", T.StringType()), ("gps_latitude", T.DoubleType()),
    ("gps_longitude", T.DoubleType()), ("is_dark", T.BooleanType()),
    ("is_bright", T.BooleanType()), ("is_low_contrast", T.BooleanType()),
    ("is_blurry", T.BooleanType()), ("error_kind", T.StringType()), ("error", T.StringType()),
    ("deleted", T.BooleanType()), ("run_id", T.StringType()),
]  # fmt: skip
FEATURES = ["gray_mean", "gray_std", "gray_hist", "entropy", "sharpness", "dhash", "width"]


def copy_samples(dst: Path) -> Path:
    shutil.copytree(SAMPLES, dst)
    return dst


def local(path: str) -> Path:
    return Path(path.removeprefix("file:"))


def quality_files() -> dict[str, bytes]:
    """Images the samples lack: dark, bright and low-contrast (all three blurry)."""
    g = corpus.photo(0, (64, 48)).convert("L")
    flat = Image.linear_gradient("L").resize((64, 48)).point(lambda v: 100 + v // 16)
    return {"dark.png": corpus.encode(g.point(lambda v: v // 6), "PNG"),
            "bright.png": corpus.encode(g.point(lambda v: 255 - v // 6), "PNG"),
            "flat.png": corpus.encode(flat, "PNG")}


@pytest.fixture(scope="module")
def full_run(spark, tmp_path_factory):
    """One full-resolution run over a copy of the samples, plus quality/ (quality_files)."""
    base = tmp_path_factory.mktemp("full")
    inp, out = copy_samples(base / "in"), base / "out"
    corpus.write(inp / "quality", quality_files())
    code = run_job("--input", str(inp), "--output", str(out), "--max-side", "0", "--run-id", "r1")
    images = spark.read.parquet(str(out / "images"))
    return code, inp, out, images


def test_exits_zero_with_one_row_per_file(full_run):
    code, inp, _, images = full_run
    files = sorted(str(p) for p in inp.rglob("*") if p.is_file() and p.suffix in (".jpg", ".png"))
    paths = sorted(str(local(r.path)) for r in images.select("path").collect())
    assert code == 0
    assert paths == files  # every listed file exactly once, the empty one included


def test_images_schema_is_the_public_contract(full_run):
    images = full_run[3]
    assert [(f.name, f.dataType) for f in images.schema.fields] == IMAGES_SCHEMA


def test_times_are_written_as_utc_instants_not_int96(full_run):
    """Spark's default INT96 (deprecated by Parquet) reads as a local time without a zone in
    pyarrow; the runs/ table's times were INT64 microseconds marked UTC: one encoding now."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted((full_run[2] / "images").rglob("*.parquet"))
    assert parts and {pq.read_schema(p).field("modification_time").type for p in parts} == {
        pa.timestamp("us", tz="UTC")}


def test_every_photo_matches_an_independent_computation(full_run):
    rows = [r.asDict() for r in full_run[3].where("error_kind IS NULL").collect()]
    assert len(rows) == 9
    for row in rows:
        path = local(row["path"])
        assert_matches(row, reference_features(path))
        assert row["label"] == path.parent.name
        assert row["size_bytes"] == path.stat().st_size
        assert row["analysis_width"] == row["width"]  # --max-side 0: full resolution
        assert sum(row["gray_hist"]) == row["width"] * row["height"]
        assert row["error"] is None


def test_broken_files_get_error_rows_with_null_features(full_run):
    rows = {local(r.path).name: r.asDict() for r in full_run[3].where("error_kind IS NOT NULL").collect()}
    assert {k: v["error_kind"] for k, v in rows.items()} == {
        "empty.jpg": "empty",
        "truncated-rocket.jpg": "corrupt",
        "error-page.jpg": "unsupported_format",
    }
    for row in rows.values():
        assert row["error"] and "\n" not in row["error"]
        assert all(row[c] is None for c in FEATURES)


def test_flags_and_shape_follow_their_definitions(full_run):
    """README's images/ table: the cut-offs on the row's own values, and width / height."""
    rows = [r.asDict() for r in full_run[3].where("error_kind IS NULL").collect()]
    for r in rows:
        assert r["is_dark"] == (r["gray_mean"] < 40) and r["is_bright"] == (r["gray_mean"] > 215), r["path"]
        assert r["is_low_contrast"] == (r["gray_std"] < 20), r["path"]
        assert r["is_blurry"] == (r["sharpness"] < 100), r["path"]
        assert r["aspect_ratio"] == pytest.approx(r["width"] / r["height"], abs=1e-6), r["path"]
        assert r["megapixels"] == pytest.approx(r["width"] * r["height"] / 1e6, abs=1e-6), r["path"]
    for flag in ("is_dark", "is_bright", "is_low_contrast", "is_blurry"):
        assert {r[flag] for r in rows} == {True, False}, flag  # else a constant would pass
    assert any(r["width"] != r["height"] for r in rows)  # else height / width would pass


def expected_summary(rows: list[dict], label: str | None) -> dict:
    """A summary/ row computed from images/ rows in Python (README's summary/ columns)."""
    mine = [r for r in rows if label is None or r["label"] == label]
    ok = [r for r in mine if r["error_kind"] is None]
    mean = lambda key: sum(r[key] for r in ok) / len(ok) if ok else None  # noqa: E731
    return {"label": label, "n_files": len(mine), "n_ok": len(ok), "n_error": len(mine) - len(ok),
            **{f"n_{k}": sum(r["error_kind"] == k for r in mine) for k in ERROR_KINDS},
            "total_bytes": sum(r["size_bytes"] for r in mine),
            "total_megapixels": sum(r["megapixels"] or 0.0 for r in mine),
            "mean_gray": mean("gray_mean"), "mean_entropy": mean("entropy"),
            "mean_sharpness": mean("sharpness"), "n_dark": sum(bool(r["is_dark"]) for r in mine),
            "n_blurry": sum(bool(r["is_blurry"]) for r in mine),
            "gray_hist": [sum(r["gray_hist"][i] for r in ok) for i in range(256)]}


def assert_summary_matches(summary: list[dict], rows: list[dict]) -> None:
    """Every column of every summary row (per label and overall) against expected_summary."""
    assert sorted(s["label"] or "" for s in summary) == sorted({r["label"] for r in rows} | {""})
    floats = ("total_megapixels", "mean_gray", "mean_entropy", "mean_sharpness")  # sum order
    for s in summary:
        want = expected_summary(rows, s["label"])
        assert {k: s.pop(k) for k in floats} == pytest.approx({k: want.pop(k) for k in floats}), s
        assert s == want  # the counts, total_bytes and gray_hist exactly


def test_summary_totals_equal_sums_over_images(spark, full_run):
    _, _, out, images = full_run
    summary = [r.asDict() for r in spark.read.parquet(str(out / "summary")).drop("run_id").collect()]
    assert {s["label"] for s in summary} == {None, "broken", "flowers", "landscape", "people", "quality"}
    assert_summary_matches(summary, [r.asDict() for r in images.collect()])


def test_summary_counts_every_error_kind(spark, full_run):
    """summarize() over the run's rows plus i + 1 error rows of the i-th kind in errors/:
    each n_<kind> differs between labels (a constant count fails), every column checked."""
    from spark_jobs.transform import summarize

    images = full_run[3].drop("run_id")
    kinds = spark.createDataFrame([(k, "errors") for i, k in enumerate(ERROR_KINDS) for _ in range(i + 1)],
                                  "error_kind string, label string")
    errors = images.where("error_kind = 'corrupt'").drop("error_kind", "label").crossJoin(kinds)
    both = images.unionByName(errors)
    assert_summary_matches([r.asDict() for r in summarize(both).collect()], [r.asDict() for r in both.collect()])


def test_the_summary_of_no_images_is_an_overall_row_of_zeros(spark, full_run):
    """With no image in the state (an emptied input, --allow-empty-input), summary/ had no
    row at all: a rollup groups nothing then. A query for the total found nothing."""
    from spark_jobs.transform import summarize

    summary = [r.asDict() for r in summarize(full_run[3].drop("run_id").limit(0)).collect()]
    assert_summary_matches(summary, [])  # one row, label null: zeros, means null


def test_rerun_of_a_run_id_replaces_it(spark, full_run, tmp_path):
    _, inp, _, _ = full_run
    out = tmp_path / "out"
    for _ in range(2):
        assert run_job("--input", str(inp), "--output", str(out), "--run-id", "same") == 0
    images = spark.read.parquet(str(out / "images"))
    assert images.count() == images.select("path").distinct().count() == 12
    # a later full run supersedes the earlier one: still one row per file
    assert run_job("--input", str(inp), "--output", str(out), "--run-id", "later") == 0
    images = spark.read.parquet(str(out / "images"))
    assert images.count() == 12 and {r.run_id for r in images.select("run_id").collect()} == {"later"}


def test_reduced_analysis_keeps_full_size_facts(spark, tmp_path):
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES / "landscape"), "--output", str(out), "--max-side", "256") == 0
    for r in spark.read.parquet(str(out / "images")).collect():
        ref = reference_features(local(r.path))
        assert (r.width, r.height) == (ref["width"], ref["height"])
        assert max(r.analysis_width, r.analysis_height) <= 256
        assert sum(r.gray_hist) == r.analysis_width * r.analysis_height


def test_glob_selects_files_any_letter_case(spark, tmp_path):
    inp = tmp_path / "in" / "misc"
    inp.mkdir(parents=True)
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", inp / "UPPER.JPG")
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "_DSC0001.png")
    (inp / "notes.txt").write_text("not an image")
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert run_job("--input", str(inp.parent), "--output", str(out1)) == 0
    names = {local(r.path).name for r in spark.read.parquet(str(out1 / "images")).collect()}
    assert names == {"UPPER.JPG", "_DSC0001.png"}
    assert run_job("--input", str(inp.parent), "--output", str(out2), "--glob", "*") == 0
    rows = {local(r.path).name: r.error_kind for r in spark.read.parquet(str(out2 / "images")).collect()}
    assert rows == {"UPPER.JPG": None, "_DSC0001.png": None, "notes.txt": "unsupported_format"}


READ_MODES = {
    "executor": ["--read-mode", "executor"],
    "spark": ["--read-mode", "spark"],
    # files above 100 KiB read by the Python worker, the others through Spark
    "spark_up_to_100k": ["--read-mode", "spark", "--spark-read-max-bytes", "100k"],
}


def test_spark_and_executor_read_modes_agree(spark, tmp_path):
    outs = {}
    for name, mode in READ_MODES.items():
        out = tmp_path / name
        args = ["--input", str(SAMPLES), "--output", str(out), *mode,
                "--max-file-bytes", "500k", "--run-id", "x"]
        assert run_job(*args) == 0
        df = spark.read.parquet(str(out / "images")).drop("modification_time")
        outs[name] = sorted((tuple(r) for r in df.collect()), key=lambda t: t[0])
    assert outs["spark"] == outs["executor"] == outs["spark_up_to_100k"]
    too_large = {local(t[0]).name for t in outs["spark"] if t[-4] == "too_large"}
    assert too_large == {"mate-dune.jpg", "skimage-astronaut.png"}  # the two files > 500 KiB


def test_spark_reads_only_files_up_to_its_limit(spark, monkeypatch):
    from spark_jobs import reading
    from spark_jobs.config import parse_args

    def read_by_spark(*options: str) -> dict[str, tuple[int, bool]]:
        cfg = parse_args(["--input", str(SAMPLES), "--output", "/unused", *options])
        files, source, *_ = reading.list_files(spark, cfg)
        df = reading.with_content(spark, cfg, files, source)[0].select("path", "length", "content")
        return {local(r.path).name: (r.length, r.content is not None) for r in df.collect()}

    by_spark = read_by_spark("--read-mode", "spark", "--spark-read-max-bytes", "100k")
    small = {name for name, (size, _) in by_spark.items() if 0 < size <= 100 * 1024}
    large = {name for name, (size, _) in by_spark.items() if size > 100 * 1024}
    assert small and large  # the samples have both
    assert {name for name, (_, read) in by_spark.items() if read} == small
    by_python = read_by_spark("--read-mode", "executor")
    assert by_python.keys() == by_spark.keys() and not any(r for _, r in by_python.values())
    # Where Python cannot reach the store, Spark reads the large files too, as it must.
    monkeypatch.setattr(reading, "python_can_read", lambda inputs: False)
    unreachable = read_by_spark("--read-mode", "spark", "--spark-read-max-bytes", "100k")
    assert {name for name, (_, read) in unreachable.items() if read} == small | large


def test_spark_reads_the_bytes_from_its_one_listing(spark, tmp_path, monkeypatch):
    """On an object store every listing of the inputs is a pass of LIST requests."""
    from spark_jobs import reading

    loads = []
    reader = reading._reader
    monkeypatch.setattr(reading, "_reader", lambda *a: loads.append(a) or reader(*a))
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--read-mode", "spark") == 0
    assert len(loads) == 1
    read = spark.read.parquet(str(out / "images")).where("content_sha256 IS NOT NULL").count()
    assert read == sum(1 for p in SAMPLES.rglob("*.[jp][pn]g") if p.stat().st_size > 0)


def test_files_named_to_spark_are_read_exactly(spark, tmp_path):
    """An increment's files, named to Spark one by one: odd names stay literal (glob
    characters, spaces, '#', non-ASCII), and no other file is read."""
    from spark_jobs import reading

    names = ["a[1].jpg", "b*?.jpg", "c {x,y}.jpg", "d#e f.jpg", "é\\g.jpg", "plain.jpg", "other.jpg"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([i]) * (i + 1))
    wanted = [f"file:{tmp_path / n}" for n in names[:-1]]
    df, _ = reading._read_named(spark, [reading.glob_escape(p) for p in wanted])
    got = {r.path: bytes(r.content) for r in df.select("path", "content").collect()}
    assert got == {p: bytes([i]) * (i + 1) for i, p in enumerate(wanted)}


def test_repeated_and_overlapping_inputs_give_one_row_per_file(spark, tmp_path):
    """--input given again adds to the inputs (it used to replace them, silently), and a file
    under two inputs is still one file."""
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), str(SAMPLES / "flowers" / "mate-freshflower.jpg"),
                   "--input", str(SAMPLES / "flowers"), "--output", str(out)) == 0
    paths = [r.path for r in spark.read.parquet(str(out / "images")).select("path").collect()]
    assert len(paths) == len(set(paths)) == 9


def test_inputs_named_with_glob_characters_are_read_as_named(spark, tmp_path):
    """Spark takes every input as a glob: 'photos [2024]' matched nothing ("Path does not
    exist", exit 3). An input that exists as named is read as named; others stay globs."""
    for folder in ["photos [2024]", "a{b,c}", "ab"]:
        shutil.copytree(SAMPLES / "flowers", tmp_path / "in" / folder)
        (tmp_path / "in" / folder / "zero.jpg").touch()
    out = tmp_path / "out"
    assert run_job("--input", str(tmp_path / "in" / "photos [2024]"), str(tmp_path / "in" / "a{b,c}"),
                   "--output", str(out)) == 0
    rows = spark.read.parquet(str(out / "images")).select("path", "error_kind").collect()
    folders = sorted(local(r.path).parent.name for r in rows)
    assert folders == ["a{b,c}"] * 3 + ["photos [2024]"] * 3
    assert sorted(r.error_kind or "" for r in rows) == ["", "", "", "", "empty", "empty"]
    glob = tmp_path / "globbed"
    assert run_job("--input", str(tmp_path / "in" / "a[b]"), "--output", str(glob)) == 0
    assert {local(r.path).parent.name for r in spark.read.parquet(str(glob / "images")).collect()} == {"ab"}


@pytest.mark.parametrize("inputs", [["in"], ["in", "in/a"], ["in/*"], ["in/{a,b}"], ["in/*/zero.jpg"],
                                    ["in/a/zero.jpg"], ["in/m y"], ["in/p \\[1\\]"],
                                    ["in/p \\[1\\]/*.jpg"]])
def test_empty_files_are_found_where_spark_looks(spark, tmp_path, inputs):
    """Spark's listing drops 0-byte files, found apart (dropped.dropped_files): the same ones
    Spark's file index holds, for globs and overlapping inputs too."""
    from spark_jobs import dropped, reading

    for folder in ["a", "_u", ".h", "a/.x", "b/c", "m y", "p [1]"]:
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "zero.jpg").touch()
        (tmp_path / "in" / folder / "full.jpg").write_bytes(b"x")
    (tmp_path / "in" / "top.jpg").touch()
    uris = [str(tmp_path / i) for i in inputs]
    indexed = reading._reader(spark, "*").load(uris)._jdf.inputFiles()
    spark_empty = {local(unquote(p.removeprefix("file://"))) for p in indexed  # URIs: %20 for ' '
                   if p.endswith("zero.jpg") or p.endswith("top.jpg")}
    ours = [local(path) for path, _, _ in dropped.dropped_files(uris, "*").empty]
    assert len(ours) == len(set(ours)) and set(ours) == spark_empty and spark_empty


def viewfs_mount(spark, tmp_path, under: str = "") -> str:
    """A viewfs: mount table (a scheme only Hadoop knows, as HDFS is to a pyarrow without
    libhdfs) linking <under>/in and <under>/out to tmp_path's folders; returns its name.
    Hadoop caches a file system per authority: each test gets a table of its own."""
    mount = f"m{time.time_ns()}"
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for folder in ("in", "out"):
        hadoop.set(f"fs.viewfs.mounttable.{mount}.link.{under}/{folder}", f"file://{tmp_path}/{folder}")
    return mount


@contextlib.contextmanager
def default_fs(spark, uri: str):
    """fs.defaultFS set to ``uri`` (hdfs://... on most clusters) for the block."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    default = hadoop.get("fs.defaultFS")
    hadoop.set("fs.defaultFS", uri)
    try:
        yield
    finally:
        hadoop.set("fs.defaultFS", default)


def test_empty_files_get_rows_where_pyarrow_cannot_list(spark, tmp_path):
    """Under an input pyarrow cannot list (HDFS without libhdfs, viewfs:, a store it has no
    credentials for), 0-byte files got no row and were counted as gone: Spark's own file
    index finds them. viewfs: mounts local folders under a scheme only Hadoop knows."""
    (tmp_path / "in" / "m y").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "local").mkdir()
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "fine.jpg")
    (tmp_path / "in" / "m y" / "e+1 100%.jpg").touch()  # a name URIs escape
    for other in ("notes.txt", ".hidden.jpg"):  # not taken: no row
        (tmp_path / "in" / other).touch()
    (tmp_path / "local" / "z ero.jpg").touch()  # an input pyarrow lists, beside: named once, as Spark does
    mount = viewfs_mount(spark, tmp_path)
    args = ["--input", f"viewfs://{mount}/in", str(tmp_path / "local"), "--output", f"viewfs://{mount}/out",
            "--incremental"]
    empty, local = f"viewfs://{mount}/in/m y/e+1 100%.jpg", f"file:{tmp_path}/local/z ero.jpg"

    def state(run_id):
        run = spark.read.parquet(str(tmp_path / "out" / "runs")).where(f"run_id = '{run_id}'").first()
        rows = spark.read.parquet(str(tmp_path / "out" / "images")).where(f"run_id = '{run_id}'").collect()
        return {r.path: r.error_kind or ("deleted" if r.deleted else "ok") for r in rows}, \
            (run.n_listed, run.n_processed, run.n_deleted, run.n_gone)

    assert run_job(*args, "--run-id", "r1") == 0
    assert state("r1") == ({f"viewfs://{mount}/in/fine.jpg": "ok", empty: "empty", local: "empty"}, (3, 3, 0, 0))
    assert run_job(*args, "--run-id", "r2") == 0  # the same again: unchanged, not deleted
    assert state("r2") == ({}, (3, 0, 0, 0))
    (tmp_path / "in" / "m y" / "e+1 100%.jpg").unlink()
    assert run_job(*args, "--run-id", "r3") == 0
    assert state("r3") == ({empty: "deleted"}, (2, 0, 1, 0))


def test_a_file_spark_cannot_read_gets_a_row_where_pyarrow_cannot_reach_either(spark, tmp_path, caplog):
    """A file whose bytes Spark cannot read goes to a Python worker, which read it through
    pyarrow: where pyarrow cannot reach the input (HDFS without libhdfs), that failed the run,
    and every later one. A checksum that does not match the bytes makes Hadoop refuse them."""
    import struct

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    for name in ("fine.jpg", "bad.jpg"):
        shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / name)
    chunks = -(-(tmp_path / "in" / "bad.jpg").stat().st_size // 512)
    (tmp_path / "in" / ".bad.jpg.crc").write_bytes(b"crc\0" + struct.pack(">i", 512) + b"\0" * 4 * chunks)
    mount = viewfs_mount(spark, tmp_path)
    assert run_job("--input", f"viewfs://{mount}/in", "--output", f"viewfs://{mount}/out") == 0
    images = spark.read.parquet(str(tmp_path / "out" / "images"))
    assert {Path(r.path).name: r.error_kind for r in images.collect()} == {"fine.jpg": None, "bad.jpg": "unreadable"}
    bad = images.where("error_kind = 'unreadable'").first()
    assert "pyarrow cannot reach" in bad.error and bad.size_bytes > 0 and bad.gray_hist is None
    assert caplog.text.count("pyarrow cannot reach") == 1  # said once, where the run decides how to read


def test_a_name_hadoop_cannot_list_is_said(spark, tmp_path, caplog):
    """A ':' in a file name fails Hadoop's listing on viewfs: (and object stores): the run
    failed with a bare URISyntaxException."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "10:30.jpg")
    mount = viewfs_mount(spark, tmp_path)
    assert run_job("--input", f"viewfs://{mount}/in", "--output", f"viewfs://{mount}/out") == 1
    assert "a file name holds a ':'" in caplog.text and "10:30.jpg" in caplog.text


def test_paths_without_a_scheme_are_on_the_default_file_system(spark, tmp_path):
    """With fs.defaultFS=hdfs://... (a cluster's usual setting), '--input /data' was taken for
    a local folder: the Python workers read local files of that name, or failed the run, and
    the empty files were looked for on the local disk. viewfs: stands in for HDFS here."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "fine.jpg")
    (tmp_path / "in" / "zero.jpg").touch()
    mount = viewfs_mount(spark, tmp_path)
    with default_fs(spark, f"viewfs://{mount}/"):
        assert run_job("--input", "/in", "--output", "/out") == 0
    rows = {r.path: r.error_kind for r in spark.read.parquet(str(tmp_path / "out" / "images")).collect()}
    assert rows == {f"viewfs://{mount}/in/fine.jpg": None, f"viewfs://{mount}/in/zero.jpg": "empty"}


def test_relative_paths_are_under_the_default_file_systems_working_directory(spark, tmp_path, monkeypatch):
    """On HDFS, 'images' means /user/<name>/images, as for Spark and `hdfs dfs`: the job made
    it absolute against the local working folder, and so read and wrote a path of that
    name on HDFS. viewfs: stands in for HDFS, /user/<name>/{in,out} linked to tmp_path's."""
    for folder in ("in", "out", "local/in"):
        (tmp_path / folder).mkdir(parents=True)
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "fine.jpg")
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "local" / "in" / "here.jpg")
    monkeypatch.chdir(tmp_path / "local")  # a local folder of the input's name, not to be read
    ugi = spark.sparkContext._jvm.org.apache.hadoop.security.UserGroupInformation
    home = f"/user/{ugi.getCurrentUser().getShortUserName()}"
    mount = viewfs_mount(spark, tmp_path, under=home)
    with default_fs(spark, f"viewfs://{mount}/"):
        assert run_job("--input", "in", "--output", "out/") == 0
    rows = {r.path: r.error_kind for r in spark.read.parquet(str(tmp_path / "out" / "images")).collect()}
    assert rows == {f"viewfs://{mount}{home}/in/fine.jpg": None}
    assert not (tmp_path / "local" / "out").exists()


def test_uris_with_a_scheme_do_not_touch_the_default_file_system(spark, tmp_path):
    """Only a relative path needs the default file system's working directory: asking for it
    always failed every run with file: URIs where that file system cannot start."""
    (tmp_path / "in").mkdir()
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "fine.jpg")
    with default_fs(spark, f"viewfs://nomount{time.time_ns()}/"):  # no mount table: cannot start
        assert run_job("--input", f"file://{tmp_path}/in", "--output", f"file://{tmp_path}/out") == 0


def test_an_output_inside_the_input_is_judged_on_the_paths_the_job_uses(spark, tmp_path, monkeypatch):
    """Relative paths resolve on the default file system (/user/<name> on HDFS): the check for
    an output inside its input compared them made absolute against the local folder, so it
    let the job write into its input, and refused an output that was elsewhere."""
    for folder in ("in", "out", "local"):
        (tmp_path / folder).mkdir()
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", tmp_path / "in" / "fine.jpg")
    monkeypatch.chdir(tmp_path / "local")
    ugi = spark.sparkContext._jvm.org.apache.hadoop.security.UserGroupInformation
    home = f"/user/{ugi.getCurrentUser().getShortUserName()}"
    mount = viewfs_mount(spark, tmp_path, under=home)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set(f"fs.viewfs.mounttable.{mount}.link.{tmp_path}/local/x", f"file://{tmp_path}/in")
    hadoop.set(f"fs.viewfs.mounttable.{mount}.link.{home}/x", f"file://{tmp_path}/out")
    with default_fs(spark, f"viewfs://{mount}/"):
        # home/in/tables: inside the input, though not inside the local folder of that name
        assert run_job("--input", f"{home}/in", "--output", "in/tables", "--glob", "*") == 2
        assert not (tmp_path / "in" / "tables").exists()
        # home/x/tables: elsewhere, though local/x/tables would be inside local/x
        assert run_job("--input", f"{tmp_path}/local/x", "--output", "x/tables", "--glob", "*") == 0
    assert (tmp_path / "out" / "tables" / "images").is_dir()


@pytest.mark.parametrize("read_mode", ["executor", "spark"])
def test_file_names_that_are_not_utf8_get_a_row_and_never_fail_the_run(spark, tmp_path, read_mode):
    """Hadoop cannot name such a file (its listing silently drops it) and pyarrow's listing
    raised on it: each gets its row, named with backslash escapes as `ls -b` shows it."""
    import os

    folder = os.fsencode(tmp_path / "in" / "café")
    os.makedirs(folder)
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", os.path.join(folder, b"fine.jpg"))
    (tmp_path / "in" / "zero.jpg").touch()
    out = tmp_path / "out"
    args = ["--input", str(tmp_path / "in"), "--output", str(out), "--read-mode", read_mode, "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0

    # new in the next increment (named to Spark by path when Spark reads the bytes)
    shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", os.path.join(folder, b"bad\xff.jpg"))
    for skipped in (b".hidden\xff.jpg", b"notes\xfe.txt"):
        open(os.path.join(folder, skipped), "wb").close()
    open(os.path.join(folder, b"empty\xfe.jpg"), "wb").close()
    assert run_job(*args, "--run-id", "r2") == 0
    rows = {Path(r.path).name: r.error_kind for r in spark.read.parquet(str(out / "images")).collect()}
    assert rows == {"fine.jpg": None, "zero.jpg": "empty", "bad\\xff.jpg": "unreadable",
                    "empty\\xfe.jpg": "empty"}
    runs = spark.read.parquet(str(out / "runs")).where("run_id = 'r2'").first()
    assert (runs.n_listed, runs.n_processed, runs.n_gone) == (4, 2, 0)
    # the same names every run: the next increment finds nothing new
    assert run_job(*args, "--run-id", "r3") == 0
    assert spark.read.parquet(str(out / "runs")).where("run_id = 'r3'").first().n_processed == 0


def test_python_can_read_probes_each_input(tmp_path):
    from spark_jobs.dropped import python_can_read

    assert python_can_read([str(tmp_path), f"file:{tmp_path}"])
    assert not python_can_read([str(tmp_path), "har:///archive.har/images"])  # Hadoop only


@pytest.mark.parametrize("env", ["local", "standalone", "yarn", "kubernetes", "cluster"])
def test_listing_many_folders_takes_few_tasks(spark, tmp_path, env):
    """Spark lists more than 32 folders in a job of one task per folder unless told how many
    tasks to use: each profile says it, and the listing still finds every file."""
    from spark_jobs import reading
    from spark_jobs.config import parse_args
    from spark_jobs.session import local_properties

    key = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    most = int(local_properties(env)[key])
    folders = 100
    assert most < folders  # else even one task per folder would pass
    for i in range(folders):
        (tmp_path / f"f{i:03d}").mkdir()
        (tmp_path / f"f{i:03d}" / "a.jpg").write_bytes(b"not decoded: listing only")
    sc = spark.sparkContext
    group = f"listing-{env}"
    saved = spark.conf.get(key)
    spark.conf.set(key, str(most))
    sc.setJobGroup(group, "listing test")
    try:
        files = reading.list_files(spark, parse_args(["--input", str(tmp_path), "--output", "/unused"])).files
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        spark.conf.set(key, saved)
    assert files.count() == folders
    tracker = sc.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup(group) for s in tracker.getJobInfo(j).stageIds]
    assert stages  # the listing ran as a Spark job
    assert sum(tracker.getStageInfo(s).numTasks for s in stages) <= most


def test_a_run_writes_few_files_whatever_its_task_count(spark, tmp_path):
    """One image task per file here (--task-bytes 1k), yet the run's rows land in at most
    spark.sql.shuffle.partitions files, every row once."""
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--task-bytes", "1k", "--run-id", "r") == 0
    parts = list((out / "images" / "run_id=r").glob("part-*.parquet"))
    assert 1 <= len(parts) <= int(spark.conf.get("spark.sql.shuffle.partitions"))
    paths = [r.path for r in spark.read.parquet(*map(str, parts)).select("path").collect()]
    assert len(paths) == len(set(paths)) == sum(1 for p in SAMPLES.rglob("*.[jp][pn]g"))


def test_duplicates_table_groups_identical_files(spark, tmp_path):
    inp = tmp_path / "in"
    (inp / "a").mkdir(parents=True)
    (inp / "b").mkdir()
    for d in ("a", "b"):
        shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", inp / d / "flower.jpg")
    shutil.copy(SAMPLES / "landscape" / "sklearn-china.jpg", inp / "a" / "china.jpg")
    out = tmp_path / "out"
    assert run_job("--input", str(inp), "--output", str(out)) == 0
    dups = spark.read.parquet(str(out / "duplicates")).collect()
    assert {(r.kind, r.n_files) for r in dups} == {("exact", 2), ("dhash", 2)}
    assert all(sorted(local(p).parent.name for p in r.paths) == ["a", "b"] for r in dups)


def test_inputs_without_images_succeed_with_a_warning(spark, tmp_path, caplog):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")) == 0
    assert "has an image extension (--glob '*' takes every file)" in caplog.text
    assert spark.read.parquet(str(tmp_path / "out" / "images")).count() == 0


def test_a_failing_file_system_is_named_in_one_line_and_exits_1(tmp_path, caplog):
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    assert run_job("--input", str(SAMPLES), "--output", str(out)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert errors and all("\n" not in m for m in errors)  # no Java stack trace in the log
    # the JVM's own exception, not py4j's "An error occurred while calling o123.parquet"
    assert "ParentNotDirectoryException" in errors[-1] and "An error occurred" not in errors[-1]


def test_missing_input_exits_3(tmp_path):
    assert run_job("--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")) == 3


@pytest.mark.parametrize("bad", [["--max-side", "-1"], ["--retry-errors", "unreadable,late"]])
def test_bad_arguments_exit_2(tmp_path, bad):
    with pytest.raises(SystemExit) as e:
        run_job("--input", "x", "--output", str(tmp_path), *bad)
    assert e.value.code == 2


def test_report_prints_a_bounded_label_table(spark, tmp_path, capsys):
    from spark_jobs.config import parse_args
    from spark_jobs.image_features import PRINTED_LABELS, print_report

    out = tmp_path / "out"
    labels = [(f"folder{i:03d}", 2, 2, 0, 100.0) for i in range(PRINTED_LABELS + 5)]
    rows = [*labels, (None, 2 * len(labels), 2 * len(labels), 0, 100.0)]
    schema = "label string, n_files long, n_ok long, n_error long, mean_gray double"
    spark.createDataFrame(rows, schema).write.parquet(str(out / "summary" / "run_id=r1"))
    cfg = parse_args(["--input", str(SAMPLES), "--output", str(out)])
    counts = {"listed": 90, "processed": 90, "ok": 90, "error": 0, "skipped": 0, "deleted": 0, "gone": 2}
    print_report(spark, cfg, "r1", {**counts, "errors": {}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("0 deleted, 2 gone before they were read")
    printed = [line.split()[0] for line in lines if line.startswith("folder")]
    assert printed == [f"folder{i:03d}" for i in range(PRINTED_LABELS)]
    total = next(i for i, line in enumerate(lines) if line.startswith("(all)"))
    assert lines[total].split()[1] == str(2 * len(labels))
    assert lines[total - 1].startswith(f"folder{PRINTED_LABELS - 1:03d}")
    assert f"more labels than {PRINTED_LABELS}" in lines[total + 1]


def test_progress_line_says_what_is_done_and_the_time_left():
    from types import SimpleNamespace as Stage

    from spark_jobs.image_features import progress_line

    images = Stage(stageId=3, numTasks=100, numCompletedTasks=10)
    listing = Stage(stageId=4, numTasks=6, numCompletedTasks=0)
    seen = {}
    assert progress_line([images, listing], 1000.0, seen) == (
        "progress: 10/106 tasks done (9 %) in 2 running stage(s)")  # no pace yet
    images.numCompletedTasks = 40  # 30 tasks in 60 s: 60 left take 120 s
    assert progress_line([images, listing], 1060.0, seen) == (
        "progress: 40/106 tasks done (37 %) in 2 running stage(s), ~120 s left")
    assert progress_line([], 1075.0, seen) is None


def test_progress_knows_the_pace_by_its_first_line(caplog):
    """Stages are looked at more often than lines are logged: the first line has the time left."""
    import logging
    from types import SimpleNamespace as Stage

    from spark_jobs.image_features import Progress

    stage = Stage(stageId=0, numTasks=1000, numCompletedTasks=0)

    def active():
        stage.numCompletedTasks += 1  # a task done between two looks
        return [0]

    tracker = Stage(getActiveStageIds=active, getStageInfo=lambda i: stage)
    progress = Progress(Stage(sparkContext=Stage(statusTracker=lambda: tracker)), every=0.5, look=0.02)
    with caplog.at_level(logging.INFO, logger="spark_jobs.image_features"):
        progress.start()
        deadline = time.time() + 10
        while not caplog.records and time.time() < deadline:
            time.sleep(0.05)
        progress.stop()
        progress.join()
    assert caplog.records and "s left" in caplog.records[0].getMessage()


@pytest.mark.spark
def test_task_planning_leaves_the_spark_settings_given_on_the_command_line(spark):
    from spark_jobs.reading import OPEN_COST_BYTES, plan_tasks

    key = "spark.sql.files.maxPartitionBytes"
    try:
        spark.conf.set(key, "1048576")  # what --conf spark.sql.files.maxPartitionBytes=1m set
        plan_tasks(spark, 128 * 1024**2, {key: "1048576"})
        assert spark.conf.get(key) == "1048576"
        assert spark.conf.get("spark.sql.files.openCostInBytes") == str(OPEN_COST_BYTES)
        plan_tasks(spark, 128 * 1024**2)
        assert spark.conf.get(key) == str(128 * 1024**2)
    finally:
        spark.conf.unset(key)


@pytest.mark.spark
def test_task_planning_leaves_the_spark_settings_the_session_started_with(spark, monkeypatch):
    """spark-submit --conf, a profile or spark-defaults.conf: in the SparkConf, not in the
    job's own --conf."""
    from pyspark import SparkConf, SparkContext

    from spark_jobs.reading import plan_tasks

    key = "spark.sql.files.openCostInBytes"
    monkeypatch.setattr(SparkContext, "getConf", lambda self: SparkConf(loadDefaults=False).set(key, "2097152"))
    try:
        spark.conf.set(key, "2097152")  # what the session was started with
        plan_tasks(spark, 128 * 1024**2)
        assert spark.conf.get(key) == "2097152"
        assert spark.conf.get("spark.sql.files.maxPartitionBytes") == str(128 * 1024**2)
    finally:
        spark.conf.unset(key)
