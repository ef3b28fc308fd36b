"""Extract: list the input files with Spark's binaryFile source (metadata first, bytes later)."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.config import JobConfig, absolute, has_scheme, own_output_error
from spark_jobs.dropped import EPOCH, dropped_files, python_can_read
from spark_jobs.exit_codes import BadArguments, first_line
from spark_jobs.globs import GLOB_CHARS, glob_escape, glob_regex, join_glob, split_glob
from spark_jobs.session import set_unless_given
from spark_jobs.storage import Storage

log = logging.getLogger(__name__)

# Planning cost of opening one file, in bytes: decoding has a small per-file cost, so tiny
# files are packed many to a task (Spark's 4 MB default makes 100,000 thumbnails 25,000 tasks).
OPEN_COST_BYTES = 64 * 1024
METADATA = ("path", "length", "modificationTime")
METADATA_SCHEMA = T.StructType([
    T.StructField("path", T.StringType()),
    T.StructField("length", T.LongType()),
    T.StructField("modificationTime", T.TimestampType()),
])
# Skip hidden names (.thumbnails/, .DS_Store) but, unlike Spark's default '^[._]', keep
# names starting with '_': cameras write _DSC0001.JPG.
IGNORED_NAMES = r"^\."
GONE_RETRIES = 20  # files deleted between an increment's listing and its read (_read_named)


def _reader(spark: SparkSession, glob: str):
    # A file Spark cannot read would fail the whole run: Spark skips it instead. If its
    # metadata cannot be read either (gone since the listing, forbidden), it is left out of
    # the run and counted as gone (Listing.found); if only its bytes cannot (forbidden, or a
    # name Hadoop's local file system cannot open: 'a:b.jpg'), a Python worker reads it
    # again (image_features.read_skipped), so it keeps its row.
    reader = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("ignoredPathSegmentRegex", IGNORED_NAMES)
        .option("ignoreMissingFiles", "true")
        .option("ignoreCorruptFiles", "true")
    )
    return reader if glob == "*" else reader.option("pathGlobFilter", glob)


# Small inputs are still cut into at least this many tasks per core, so that no core idles
# at the end behind one long task (decode cost is not proportional to bytes: PNG vs JPEG).
MIN_TASKS_PER_CORE = 2


def plan_tasks(spark: SparkSession, task_bytes: int, given: dict[str, str] | None = None) -> None:
    """Size-balanced tasks straight from the listing: Spark packs files (largest first) into
    splits of about ``task_bytes``, so no shuffle is needed to spread the work.

    Every task has a fixed cost (Python worker set-up, its share of the rows written out:
    ~0.1 s of CPU in local mode), so tasks are large (task_bytes),
    but never fewer than MIN_TASKS_PER_CORE per core: Spark cuts splits at
    min(task_bytes, total bytes / minPartitionNum). A setting given to Spark (the job's
    --conf, ``given``; spark-submit's --conf, a profile, spark-defaults.conf) is left as given.
    """
    set_unless_given(spark, {
        "spark.sql.files.maxPartitionBytes": task_bytes,
        "spark.sql.files.openCostInBytes": OPEN_COST_BYTES,
        "spark.sql.files.minPartitionNum": MIN_TASKS_PER_CORE * spark.sparkContext.defaultParallelism,
    }, given)


class Listing(NamedTuple):
    """One listing of the inputs: the files to process, and the relation to read them from."""

    files: DataFrame  # path, length, modificationTime of every matching file, 0-byte ones too
    source: DataFrame  # the binaryFile relation listed; Spark reads ``content`` where selected
    # Files the listing found, counted on the driver; any that ``files`` does not yield were
    # gone (or forbidden) by the time the job read them (see _reader).
    found: int
    unnamable: list[str]  # paths in ``files`` that no reader can open (see spark_jobs.dropped)
    scope: Column  # whether a ``path`` lies under the inputs (listed or not): see under_inputs


def list_files(spark: SparkSession, cfg: JobConfig) -> Listing:
    """Every matching file's metadata; no content is read.

    Spark lists the inputs once, here (``source`` is read from without listing again). Its
    file index drops 0-byte files, so those are found by a second, metadata-only listing
    (``dropped_files``, with local files whose names are not UTF-8; where pyarrow cannot
    list, through Spark's file index) and added: every file gets its row.
    """
    storage = Storage(spark)
    inputs = literal_inputs(storage, cfg.inputs)
    # Both listings wait on the file system (on an object store, pages of LIST requests):
    # run them side by side.
    with ThreadPoolExecutor(1) as pool:
        dropped_listing = pool.submit(dropped_files, inputs, cfg.glob)
        try:
            source = _reader(spark, cfg.glob).load(inputs)
        except Exception as e:
            if "Relative path in absolute URI" not in first_line(e):
                raise
            # 'a:b.jpg' on viewfs: (and object stores: a limit of Hadoop's paths; HDFS forbids
            # the name): no file of the input can be listed while it is there, whatever --glob says
            raise OSError(f"Hadoop cannot list {' '.join(inputs)}: a file name holds a ':', "
                          f"which its listing takes for a URI scheme ({first_line(e)}); rename "
                          f"or move that file") from e
        dropped = dropped_listing.result()
    empty = dropped.empty
    if dropped.unlisted:  # Spark's file index finds them instead (inputs may overlap)
        listed = {row[0] for row in empty}
        found_by_spark = _empty_files_in_index(spark, storage, source, dropped.unlisted)
        empty = empty + [row for row in found_by_spark if row[0] not in listed]
    files = source.select(*METADATA)
    if empty:
        log.info("%d empty file(s) listed", len(empty))
    if empty or dropped.unnamable:
        rows = _arrow_table(empty + dropped.unnamable)
        files = files.unionByName(spark.createDataFrame(rows, METADATA_SCHEMA))
    # The file index holds the 0-byte files too (its scan drops them), not the unnamable.
    found = len(source._jdf.inputFiles()) + len(dropped.unnamable)
    return Listing(files, source, found, [row[0] for row in dropped.unnamable],
                   under_inputs(storage, inputs, cfg.glob))


def resolve_paths(storage: Storage, cfg: JobConfig) -> JobConfig:
    """``cfg`` with its inputs and output resolved as Spark resolves them (on_default_fs), and
    an output inside an input whose listing would take the job's own files refused."""
    inputs = [on_default_fs(storage, u, glob=True) for u in cfg.inputs]
    output = on_default_fs(storage, cfg.output, glob=False)
    if error := own_output_error(inputs, output, cfg.glob):
        raise BadArguments(error)
    return dataclasses.replace(cfg, inputs=inputs, output=output)


def on_default_fs(storage: Storage, uri: str, glob: bool) -> str:
    """A path without a scheme lies on the default file system (fs.defaultFS), a relative
    one under its working directory (this folder locally, /user/<name> on HDFS). Locally such
    paths stay paths; elsewhere they get that file system's URI, so that '/data/images' is
    read from HDFS, not taken for a local folder (executor reads, pyarrow). ``glob``: the
    path is a Hadoop glob (an input), whose escapes stay escapes."""
    if has_scheme(uri):
        return uri
    if storage.default_scheme() == "file":
        return absolute(uri)
    if not uri.startswith("/"):
        home = storage.working_directory()
        uri = f"{glob_escape(home) if glob else home}/{uri}"
    if not glob:
        return storage.qualify(uri)
    base, pattern = split_glob(uri)
    return join_glob(storage.qualify(base or "/"), pattern)


def literal_inputs(storage: Storage, inputs: list[str]) -> list[str]:
    """The inputs as Spark's listing takes them: Spark matches every input as a glob, so
    one whose name holds glob characters (a folder 'photos [2024]', 'a{b}.jpg') matched
    nothing and failed the run ("Path does not exist"). Such an input that exists as named
    is escaped, so it is read as named; any other is a glob (/lake/*/2024)."""

    def exists(uri: str) -> bool:
        try:
            return storage.exists(uri)
        except Exception:  # noqa: BLE001 - a name Hadoop cannot take (a:b) is no literal input
            return False

    return [glob_escape(u) if GLOB_CHARS.search(u) and exists(u) else u for u in inputs]


def under_inputs(storage: Storage, inputs: list[str], name_glob: str) -> Column:
    """Whether a ``path`` lies under one of ``inputs`` (as ``literal_inputs`` gives them),
    named as Spark's listing names paths, with a file name ``name_glob`` takes: what an
    incremental run answers for. A file of the current state outside them (another day's
    folder, or a .jpg for a run of --glob '*.png') was not looked at, so it is not gone."""
    patterns = []
    for uri in inputs:
        base, pattern = split_glob(uri)
        glob = join_glob(storage.qualify(base or "/"), pattern)
        patterns.append(glob_regex(glob).pattern.removesuffix(r"\Z"))
    # Java's regular expressions, as Spark's rlike runs them: the whole path, or below it
    scope = F.col("path").rlike("(?s)^(?:" + "|".join(patterns) + r")(?:/.*)?\z")
    if name_glob == "*":
        return scope
    name = glob_regex(name_glob).pattern.removesuffix(r"\Z")
    return scope & F.col("path").rlike("(?s)(?:^|/)" + name + r"\z")


def _empty_files_in_index(spark: SparkSession, storage: Storage, source: DataFrame,
                          unlisted: list[str]) -> list[tuple]:
    """The 0-byte files of the listing, for inputs pyarrow cannot list (HDFS without
    libhdfs, viewfs:, a store pyarrow has no credentials for), found through Spark's own
    file index: it holds them and its scans drop them. The index says how many there are
    (no request); only if there are any does one metadata scan name the files it lacks,
    each then looked at once. Its own names for the files, so no glob or hidden-name rule
    needs repeating here."""
    jvm = spark.sparkContext._jvm
    try:  # Spark's internals (a binaryFile load is a LogicalRelation over a file index)
        index = source._jdf.queryExecution().analyzed().relation().location()
        nothing = jvm.PythonUtils.toSeq([])
        scanned = index.listFiles(nothing, nothing)
        n_empty = index.allFiles().size() - sum(scanned.apply(i).files().size()
                                                for i in range(scanned.size()))
    except Exception as e:  # noqa: BLE001 - another Spark version: the files go without rows
        log.warning("cannot look for empty files under %s (%s): they get no row",
                    " ".join(unlisted), first_line(e))
        return []
    if n_empty <= 0:
        return []
    uris = spark._jsparkSession.createDataset(
        jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(source._jdf.inputFiles()),
        jvm.org.apache.spark.sql.Encoders.STRING())
    # inputFiles() names files as URIs, the scan as Hadoop paths: 'file:///a%20b.jpg' is
    # 'file:/a b.jpg' (url_decode would read a '+' as a space)
    decoded = F.url_decode(F.replace("uri", F.lit("+"), F.lit("%2B")))
    named = DataFrame(uris.toDF(jvm.PythonUtils.toSeq(["uri"])), spark).select(
        F.regexp_replace(decoded, r"^([A-Za-z][A-Za-z0-9+.-]*):///", "$1:/").alias("path"))
    named = named.where(under_inputs(storage, unlisted, "*"))  # pyarrow listed the others
    rows = []
    for (path,) in named.join(source.select("path"), "path", "left_anti").collect():  # names, few
        status = storage.length_and_modified_ms(path)
        if status is not None and status[0] == 0:  # else gone since the listing
            rows.append((path, 0, EPOCH + timedelta(milliseconds=status[1])))
    return rows


def _arrow_table(rows: list[tuple]):
    """Listing rows as an Arrow table: Spark makes a local relation of it in the JVM (a
    list of tuples would need Python workers to unpickle it, ~0.6 s per task measured)."""
    import pyarrow as pa

    paths, lengths, times = zip(*rows, strict=True)
    return pa.table({"path": pa.array(paths, pa.string()),
                     "length": pa.array(lengths, pa.int64()),
                     "modificationTime": pa.array(times, pa.timestamp("us", tz="UTC"))})


def executor_reads(cfg: JobConfig) -> bool:
    """Whether Python workers read the bytes themselves (no JVM -> Python copy of images)."""
    if cfg.read_mode != "auto":
        return cfg.read_mode == "executor"
    return all(uri.startswith(("/", "file:")) for uri in cfg.inputs)


def read_by_python(files: DataFrame) -> DataFrame:
    """Add a null ``content`` column: the Python worker reads each file itself."""
    return files.withColumn("content", F.lit(None).cast("binary"))


class Content(NamedTuple):
    files: DataFrame  # the files with their ``content`` column
    counted: Observation | None  # when Spark reads: ``n`` files handed to the job, counted as it runs
    gone: int  # files named to Spark that were gone by then (left out of ``files``)


def with_content(spark: SparkSession, cfg: JobConfig, files: DataFrame, source: DataFrame,
                 subset: bool = False, unnamable: list[str] = ()) -> Content:
    """Add a ``content`` column: the bytes when Spark reads them, null when executors will.

    Spark reads only files of at most --spark-read-max-bytes: it holds each file's bytes
    several times in the JVM while handing them to Python (on the heap the bytes read and
    the scanned row, grown by doubling; off it the Arrow batch), so larger files, up to
    --max-file-bytes, are read by the Python worker as in executor mode, where pyarrow can
    reach the inputs (else by Spark too); larger ones still are never read. Spark pushes
    the ``length`` filter into the binaryFile scan, so the bytes of the files it skips are
    not read.
    ``source`` is the listing's binaryFile relation (``Listing.source``): Spark reads from it
    without listing the inputs again. When ``files`` is a subset of the listing (incremental
    runs after the first), Spark is pointed at those files by name instead, so no other
    file's content is read. The ``unnamable`` paths go to the Python worker, which gives
    them their row: Spark cannot be pointed at them.
    When Spark reads, ``counted`` counts ``files`` (``n``) as the job runs: Spark skips the
    files it cannot read, and fewer rows than that says so.
    """
    if executor_reads(cfg):
        return Content(read_by_python(files), None, 0)
    limit = cfg.extract.max_file_bytes
    if cfg.spark_read_max_bytes < limit and python_can_read(cfg.inputs):
        limit = cfg.spark_read_max_bytes
    by_spark = (F.col("length") > 0) & (F.col("length") <= limit)
    if unnamable:
        by_spark &= ~F.col("path").isin(*unnamable)
    counted = Observation("files")
    # counted before the filter: every file passes through this branch's scan of the listing
    rest = read_by_python(files.observe(counted, F.count(F.lit(1)).alias("n")).where(~by_spark))
    if subset:
        # Path strings of the new work only (never bytes): binaryFile can push down filters on
        # length and time but not on path, so naming the files is how Spark reads just these.
        paths = [glob_escape(r.path) for r in files.where(by_spark).select("path").collect()]
        if not paths:
            return Content(rest, counted, 0)
        source, gone = _read_named(spark, paths)
    else:
        gone = 0
    small = source.where(by_spark).select(*METADATA, "content")
    return Content(small.unionByName(rest), counted, gone)


def _read_named(spark: SparkSession, paths: list[str]) -> tuple[DataFrame, int]:
    """binaryFile over exactly these files (glob-escaped): PySpark's ``load(paths)``, except
    that the names cross to the JVM as one string, split there; py4j sends a list one
    element per call (100,000 names: 7.3 s, against 0.1 s as one string).

    Spark checks that each named file exists: one deleted since the listing is dropped from
    the names instead of failing the run (up to GONE_RETRIES of them; returns how many)."""
    from pyspark.errors import AnalysisException

    jvm = spark.sparkContext._jvm
    nul = "\0"  # the one character no file system allows in a name
    reader = _reader(spark, "*")
    paths = list(paths)
    for gone in range(GONE_RETRIES + 1):
        names = jvm.java.util.regex.Pattern.compile(nul).splitAsStream(nul.join(paths)).toList()
        try:
            return reader._df(reader._jreader.load(jvm.PythonUtils.toSeq(names))), gone
        except AnalysisException as e:
            missing = glob_escape((e.getMessageParameters() or {}).get("path") or "")
            if e.getCondition() != "PATH_NOT_FOUND" or missing not in paths:
                raise
            log.warning("%s is gone since the listing", e.getMessageParameters()["path"])
            paths.remove(missing)
    raise OSError(f"more than {GONE_RETRIES} new files were gone before Spark read them")
