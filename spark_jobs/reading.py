"""Extract: list the input files with Spark's binaryFile source (metadata first, bytes later)."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import quote

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.config import JobConfig

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
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
GONE_RETRIES = 20  # files deleted between an increment's listing and its read (_read_named)
_GLOB_CHARS = re.compile(r"[*?\[\]{}\\]")  # special in Hadoop's path globs


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


def plan_tasks(spark: SparkSession, task_bytes: int) -> None:
    """Size-balanced tasks straight from the listing: Spark packs files (largest first) into
    splits of about ``task_bytes``, so no shuffle is needed to spread the work.

    Every task has a fixed cost (Python worker set-up, its share of the rows written out:
    ~0.1 s of CPU in local mode), so tasks are large (task_bytes),
    but never fewer than MIN_TASKS_PER_CORE per core: Spark cuts splits at
    min(task_bytes, total bytes / minPartitionNum).
    """
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(task_bytes))
    spark.conf.set("spark.sql.files.openCostInBytes", str(OPEN_COST_BYTES))
    cores = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.files.minPartitionNum", str(MIN_TASKS_PER_CORE * cores))


class Listing(NamedTuple):
    """One listing of the inputs: the files to process, and the relation to read them from."""

    files: DataFrame  # path, length, modificationTime of every matching file, 0-byte ones too
    source: DataFrame  # the binaryFile relation listed; Spark reads ``content`` where selected
    # Files the listing found, counted on the driver; any that ``files`` does not yield were
    # gone (or forbidden) by the time the job read them (see _reader).
    found: int
    unnamable: list[str]  # paths in ``files`` that no reader can open (_unnamable_files)


def list_files(spark: SparkSession, cfg: JobConfig) -> Listing:
    """Every matching file's metadata; no content is read.

    Spark lists the inputs once, here (``source`` is read from without listing again). Its
    file index drops 0-byte files, so those are found by a second, metadata-only listing
    (``dropped_files``, with local files whose names are not UTF-8) and added: every file
    gets its row.
    """
    inputs = literal_inputs(spark, cfg.inputs)
    # Both listings wait on the file system (on an object store, pages of LIST requests):
    # run them side by side.
    with ThreadPoolExecutor(1) as pool:
        dropped_listing = pool.submit(dropped_files, inputs, cfg.glob)
        source = _reader(spark, cfg.glob).load(inputs)
        dropped = dropped_listing.result()
    files = source.select(*METADATA)
    if dropped.empty:
        log.info("%d empty file(s) listed", len(dropped.empty))
    if dropped.empty or dropped.unnamable:
        rows = _arrow_table(dropped.empty + dropped.unnamable)
        files = files.unionByName(spark.createDataFrame(rows, METADATA_SCHEMA))
    # The file index holds the 0-byte files too (its scan drops them), not the unnamable.
    found = len(source._jdf.inputFiles()) + len(dropped.unnamable)
    return Listing(files, source, found, [row[0] for row in dropped.unnamable])


def literal_inputs(spark: SparkSession, inputs: list[str]) -> list[str]:
    """The inputs as Spark's listing takes them: Spark matches every input as a glob, so
    one whose name holds glob characters (a folder 'photos [2024]', 'a{b}.jpg') matched
    nothing and failed the run ("Path does not exist"). Such an input that exists as named
    is escaped, so it is read as named; any other is a glob (/lake/*/2024)."""
    from spark_jobs.storage import Storage

    storage = Storage(spark)

    def exists(uri: str) -> bool:
        try:
            return storage.exists(uri)
        except Exception:  # noqa: BLE001 - a name Hadoop cannot take (a:b) is no literal input
            return False

    return [glob_escape(u) if _GLOB_CHARS.search(u) and exists(u) else u for u in inputs]


def _arrow_table(rows: list[tuple]):
    """Listing rows as an Arrow table: Spark makes a local relation of it in the JVM (a
    list of tuples would need Python workers to unpickle it, ~0.6 s per task measured)."""
    import pyarrow as pa

    paths, lengths, times = zip(*rows, strict=True)
    return pa.table({"path": pa.array(paths, pa.string()),
                     "length": pa.array(lengths, pa.int64()),
                     "modificationTime": pa.array(times, pa.timestamp("us", tz="UTC"))})


def glob_regex(glob: str) -> re.Pattern:
    """A Hadoop file-name glob (*, ?, [abc], {a,b}) as a compiled regular expression."""
    out, depth, i = [], 0, 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.index("]", i + 1)
            body = glob[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else re.escape(body).replace("\\-", "-")) + "]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class Dropped(NamedTuple):
    """(path, length, modificationTime) rows of the files Spark's listing drops."""

    empty: list[tuple]  # 0-byte files (Spark's file index holds them; its scan drops them)
    unnamable: list[tuple]  # local files whose names are not UTF-8 (see _unnamable_files)


def dropped_files(inputs: list[str], glob: str) -> Dropped:
    """The files Spark's listing drops, named as Spark names paths, found with pyarrow.fs
    (local, HDFS, S3, GCS, Azure); none where it cannot list.

    Inputs are matched as Spark matches them: a glob in an input (``/lake/*/2024``) selects
    files and folders, searched recursively; names starting with '.' below them are skipped.
    """
    from pyarrow import fs

    empty, unnamable = {}, {}  # by path: inputs may overlap
    for uri in inputs:
        scheme = uri.split("://", 1)[0] if "://" in uri else "file"
        base, pattern = _split_glob(uri)
        try:
            filesystem, root, info = _pyarrow_root(base)
            infos = (
                filesystem.get_file_info(fs.FileSelector(root, recursive=True))
                if info.type == fs.FileType.Directory else [info]
            )
        except Exception as e:  # noqa: BLE001 - Spark's own listing stays authoritative
            log.warning("cannot look for empty files under %s (%s): they get no row", uri, e)
            continue
        taken = _taken(root, pattern, glob)
        undecodable = False
        for f in infos:
            if f.type != fs.FileType.File:
                continue
            try:
                path = f.path
            except UnicodeDecodeError:  # pyarrow cannot name it either
                undecodable = True
                continue
            if f.size == 0 and taken(path):
                path = f"file:{path}" if scheme == "file" else f"{scheme}://{path}"
                empty[path] = (path, 0, f.mtime)
        if undecodable and scheme == "file":
            unnamable.update((row[0], row) for row in _unnamable_files(root, taken))
    if unnamable:
        log.warning("%d file(s) have names that are not UTF-8, which Spark cannot open (rename "
                    "them): their rows name them with \\x escapes and say unreadable (or empty)",
                    len(unnamable))
    return Dropped(list(empty.values()), list(unnamable.values()))


def _taken(root: str, pattern: str, glob: str):
    """path -> whether Spark's listing of ``root`` + ``pattern`` with ``glob`` takes it."""
    name_ok = (lambda name: True) if glob == "*" else glob_regex(glob).match
    matched = _matched_input(root, pattern)

    def taken(path: str) -> bool:
        top = matched(path)
        return (top is not None and bool(name_ok(path.rsplit("/", 1)[-1]))
                and not any(p.startswith(".") for p in path[len(top):].split("/") if p))

    return taken


def _unnamable_files(root: str, taken) -> list[tuple]:
    """Rows for the files under local folder ``root`` whose names are not UTF-8 (legacy
    encodings, archives unpacked as-is): Java, so Hadoop and Spark, cannot name them and
    its listing silently drops them. Each is named here with backslash escapes for the
    bytes that are not UTF-8 (as `ls -b` shows them): no reader can open that name, so the
    file gets an ``unreadable`` row (an ``empty`` one if it has no bytes) instead of none."""
    import os

    rows = []
    # A driver-side walk, but only of a local input in which pyarrow met such a name: no
    # other listing (Hadoop's, pyarrow's) can name these files at all.
    for folder, _, names in os.walk(os.fsencode(root)):
        for name in names:
            raw = os.path.join(folder, name)
            try:
                raw.decode()
                continue
            except UnicodeDecodeError:
                pass
            path = raw.decode(errors="backslashreplace")
            if taken(path):
                try:
                    st = os.stat(raw)
                except OSError:  # gone since os.walk saw it
                    continue
                mtime = EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
                rows.append((f"file:{path}", st.st_size, mtime))
    return rows


def _split_glob(uri: str) -> tuple[str, str]:
    """(the leading folders of ``uri`` free of glob characters, unescaped; the rest, a glob:
    '' if none). A character after a backslash is literal (``photos \\[2024\\]``)."""
    i, cut = 0, None
    while i < len(uri):
        if uri[i] == "\\":
            i += 2
            continue
        if uri[i] in "*?[{":
            cut = uri.rfind("/", 0, i)
            break
        i += 1
    if cut is None:
        return _unescape(uri), ""
    return _unescape(uri[:cut]), uri[cut + 1:]


def _unescape(glob: str) -> str:
    return re.sub(r"\\(.)", r"\1", glob, flags=re.DOTALL)


def _matched_input(root: str, pattern: str):
    """path -> the input it lies under (itself or a folder above it), None if none: ``root``
    itself when there is no glob ``pattern``, else the ancestor the pattern matches."""
    if not pattern:
        return lambda path: root
    regex = glob_regex(glob_escape(root.rstrip("/")) + "/" + pattern)
    depth = root.rstrip("/").count("/") + 1

    def matched(path: str) -> str | None:
        parts = path.split("/")
        for i in range(depth + 1, len(parts) + 1):
            if regex.match(top := "/".join(parts[:i])):
                return top
        return None

    return matched


def _pyarrow_root(uri: str):
    """(pyarrow file system, path, FileInfo) of an input named as Spark names it."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(_pyarrow_uri(uri))
    return filesystem, root, filesystem.get_file_info(root)


def _pyarrow_uri(uri: str) -> str:
    """An input named as Spark names it (not percent-encoded: 'My Photos') as the URI pyarrow
    parses (percent-encoded: pyarrow refused a space or a brace, and missed the empty files)."""
    if uri.startswith("file:") or "://" not in uri:
        path = uri[5:] if uri.startswith("file:") else uri
        return "file://" + quote("/" + path.lstrip("/"), safe="/")
    scheme, rest = uri.split("://", 1)
    authority, _, path = rest.partition("/")
    scheme = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}.get(scheme, scheme)
    return f"{scheme}://{authority}/{quote(path, safe='/')}"


def python_can_read(inputs: list[str]) -> bool:
    """Whether pyarrow's file systems reach every input from here (one metadata request
    each): the Python workers read files through them (udfs.spark_udf.read_uri)."""
    for uri in inputs:
        try:
            _pyarrow_root(uri)
        except Exception as e:  # noqa: BLE001 - no credentials, no libhdfs, unknown scheme...
            log.warning("pyarrow cannot reach %s (%s): Spark reads every file up to "
                        "--max-file-bytes, and a file needs several times its size of "
                        "executor heap", uri, e)
            return False
    return True


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


def glob_escape(path: str) -> str:
    """A file name made literal for Spark's path globbing (which treats *?[]{} specially)."""
    return _GLOB_CHARS.sub(r"\\\g<0>", path)
