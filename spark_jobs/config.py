"""Command line and configuration: conf/job.properties gives defaults, the command line wins."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from spark_jobs.globs import glob_regex, split_glob
from udfs.errors import ERROR_KINDS
from udfs.extract import ExtractOptions

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where a wheel puts conf/ and samples/ (pyproject.toml); a checkout has them at its root.
INSTALLED_DATA = Path(__file__).resolve().parent


def conf_file(name: str) -> Path:
    """The first ``name`` found in IMAGE_ETL_CONF_DIR, the checkout's conf/, the working
    directory (where spark-submit --files puts job.properties in cluster deploy mode), the
    copy installed with the package. Each file is looked up on its own, so a job.properties
    of the user's own does not hide the shipped Spark profiles. None holding it: the first
    of these (which the caller reports missing, or does without)."""
    dirs = [PROJECT_ROOT / "conf", Path.cwd(), INSTALLED_DATA / "conf"]
    if os.environ.get("IMAGE_ETL_CONF_DIR"):
        dirs.insert(0, Path(os.environ["IMAGE_ETL_CONF_DIR"]))
    return next((d / name for d in dirs if (d / name).is_file()), dirs[0] / name)


def _samples_dir() -> Path:
    """The bundled samples (--demo): IMAGE_ETL_SAMPLES_DIR when set (submit.sh sets it: under
    spark-submit this module is imported from the project's zip), else the checkout's, else
    the copy installed with the package."""
    if os.environ.get("IMAGE_ETL_SAMPLES_DIR"):
        return Path(os.environ["IMAGE_ETL_SAMPLES_DIR"])
    checkout = PROJECT_ROOT / "samples"
    return checkout if checkout.is_dir() else INSTALLED_DATA / "samples"


SAMPLES_DIR = _samples_dir()
READ_MODES = ("auto", "executor", "spark")

# File name extensions taken by default (any letter case): what Pillow and pillow-heif read.
IMAGE_EXTENSIONS = (
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "webp", "tif", "tiff", "bmp", "dib",
    "heic", "heif", "avif", "jp2", "j2k", "jpx", "ico", "ppm", "pgm", "pbm", "pnm", "tga",
    "psd", "mpo", "qoi", "pcx", "dds", "sgi", "ras", "icns", "hif", "pfm", "pam", "blp",
    "xbm", "msp", "im", "spi", "rgb", "rgba", "bw", "j2c", "jpc", "jpf", "icb", "vda", "vst",
)  # fmt: skip


def default_glob() -> str:
    """A Hadoop glob for the image extensions in any letter case: *.{[jJ][pP][gG],...}."""
    def any_case(ext: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)

    return "*.{" + ",".join(any_case(e) for e in IMAGE_EXTENSIONS) + "}"


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)


def format_size(n: int) -> str:
    """parse_size's inverse, in the largest unit that divides ``n``: 536870912 -> '512m'
    (a default given as a string is parsed by argparse, and --help shows it so)."""
    for exponent in (4, 3, 2, 1):
        if n and n % 1024**exponent == 0:
            return f"{n // 1024**exponent}{' kmgt'[exponent]}"
    return str(n)


def parse_size(text: str) -> int:
    """'512m' -> 536870912; plain digits are bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512m, 2g, 1048576)")
    return int(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " ")


COMPACTED = ".compacted"  # the id of a compacted run: the id of the latest run it holds + this


def has_scheme(uri: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) is not None


def absolute(uri: str) -> str:
    """A path without a scheme, made absolute against the working directory (as Spark does
    on the local file system)."""
    return uri if has_scheme(uri) else os.path.abspath(uri)


# Names of files the job writes under its output (Parquet parts, Spark's markers, run
# records, settings, the lock): what a --glob must not take when the output is under an input.
OWN_FILE_NAMES = ("part-00000-0c1d-c000.zstd.parquet", "_SUCCESS", "_settings.json",
                  "20261125T000000000Z.json", "_lock.json")


def own_output_error(inputs: list[str], output: str, glob: str) -> str | None:
    """What is wrong when ``output`` lies inside an input whose listing takes the job's own
    files (see reads_own_output), else None."""
    if outer := reads_own_output(inputs, output, glob):
        return (f"--output {output} lies inside --input {outer}, and --glob '{glob}' takes the "
                f"job's own files (Parquet, JSON): every later run would read its tables as "
                f"images. Write the output elsewhere, or narrow --glob")
    return None


def reads_own_output(inputs: list[str], output: str, glob: str) -> str | None:
    """The input under which ``output`` lies when ``glob`` takes the job's own files there
    (every later run would read its tables as images), else None."""
    own = glob_regex(glob)
    if not any(own.match(name) for name in OWN_FILE_NAMES):
        return None

    def comparable(uri: str) -> str:
        return re.sub(r"^file:(//)?(?=/)", "", uri).rstrip("/") or "/"

    out = comparable(output)
    for uri in inputs:
        base = comparable(split_glob(uri)[0])
        if out == base or out.startswith(base.rstrip("/") + "/"):
            return uri
    return None


def load_properties(path: Path) -> dict[str, str]:
    """key=value (or key value) lines of a Java-style properties file; # and ! comment."""
    props = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"^([^=:\s]+)\s*[=:\s]?\s*(.*)$", line)
        props[m.group(1)] = m.group(2).strip()
    return props


@dataclass
class JobConfig:
    """Everything one run needs, validated."""

    inputs: list[str]
    output: str
    glob: str
    extract: ExtractOptions
    read_mode: str = "auto"
    spark_read_max_bytes: int = 16 * 1024**2
    task_bytes: int = 128 * 1024**2
    partitions: int = 0
    run_id: str | None = None
    incremental: bool = False
    retry_errors: tuple[str, ...] = ()
    compact: bool = False
    allow_empty_input: bool = False
    max_error_rate: float = 1.0
    stale_lock_after: float = 300.0
    keep_run_records: int = 0
    master: str | None = None
    env: str = "local"
    spark_conf: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"


def build_parser(defaults: dict[str, str]) -> argparse.ArgumentParser:
    """The command line, with defaults from job.properties' keys (``p.property_keys``: the
    keys it reads)."""
    asked = set()

    def d(key: str, default: str | None = None, convert=str):
        asked.add(key)
        value = defaults.get(key, default)
        try:
            return None if value is None else convert(value)
        except (ValueError, argparse.ArgumentTypeError) as e:
            raise ValueError(f"{key}={value}: {e}") from None

    p = argparse.ArgumentParser(
        prog="python -m spark_jobs.image_features",
        description="Turn a folder or bucket of images into Parquet tables of image features:\n"
        "<output>/images/ (one row per file), summary/ (per label), duplicates/ (identical\n"
        "or look-alike files) and runs/ (one row per run).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults come from conf/job.properties. Exit codes: 0 success; 1 infrastructure\n"
        "failure (retry); 2 bad arguments, or an increment asking for other feature settings\n"
        "than the current rows', or with a run id that sorts before a committed run's; 3 input\n"
        "missing, or empty where the output holds rows (--allow-empty-input); 4 committed, but\n"
        "more error rows than --max-error-rate; 5 another run holds the output (retry later);\n"
        "130, 143 stopped "
        "by SIGINT, SIGTERM (nothing half-written).",
    )
    io = p.add_argument_group("input and output")
    # extend: --input a --input b reads both (a plain nargs="+" kept only the last, silently)
    io.add_argument("--input", nargs="+", action="extend", metavar="URI", help="folders or "
                    "files to read (any Hadoop file system URI: file:, hdfs:, s3a:, abfss:, gs:), "
                    "searched recursively; repeat it or give several")
    io.add_argument("--output", metavar="URI", help="where the tables go")
    io.add_argument("--demo", action="store_true", help="run on the bundled sample images "
                    "(samples/) and write to ./output/demo unless --output is given")
    io.add_argument("--glob", default=d("glob") or "", metavar="PATTERN", help="which file "
                    "names to take, e.g. '*.jpg' or '*' for every file; empty: common image "
                    "extensions in any letter case")
    im = p.add_argument_group("image analysis")
    im.add_argument("--max-side", type=int, default=d("max_side", "512", int), metavar="N",
                    help="long side of the analysis image in pixels; 0 = full resolution (default: %(default)s)")
    im.add_argument("--max-pixels", type=int, default=d("max_pixels", "178956970", int),
                    metavar="N", help="declared pixel count above which a file is a "
                    "decompression_bomb (checked from the header, before decoding) (default: %(default)s)")
    im.add_argument("--max-file-bytes", type=parse_size, default=format_size(d("max_file_bytes", "512m", parse_size)),
                    metavar="SIZE", help="files larger than this are too_large: listed and "
                    "given a row, never read (default: %(default)s)")
    im.add_argument("--time-budget", type=float, default=d("time_budget", "120", float),
                    metavar="SECONDS", help="time one image may take; 0 = unlimited (default: %(default)s)")
    im.add_argument("--keep-gps", action="store_true", help="write EXIF GPS coordinates "
                    "(personal data: off by default)")
    run = p.add_argument_group("run")
    run.add_argument("--run-id", metavar="ID", help="identifier of this run (default: UTC "
                     "time); ids must sort in run order; rerunning an id replaces that run's "
                     "output (with --incremental, the latest run's only)")
    run.add_argument("--incremental", action="store_true", help="only read files whose "
                     "(path, modification_time, size_bytes) are not yet in <output>/images/")
    run.add_argument("--retry-errors", action="append", metavar="KIND[,KIND]",
                     help="with --incremental, also read again the files whose current row has "
                     "one of these error kinds, e.g. 'unreadable' (a file forbidden, then "
                     "allowed) or 'too_large' (after raising --max-file-bytes); their metadata "
                     "did not change, so an increment would not otherwise (kinds: "
                     + ", ".join(ERROR_KINDS) + "); may be repeated")
    run.add_argument("--compact", action="store_true", help="with --incremental, then rewrite "
                     "the earlier runs of <output>/images/ as one run holding the state this "
                     "run started from (latest row per path, tombstones dropped) and delete "
                     "them: keeps scheduled incremental runs from piling up (their history is "
                     "dropped); a full run is one run already")
    run.add_argument("--allow-empty-input", action="store_true", help="let a run that finds "
                     "no file under its inputs mark the files the output holds there as gone "
                     "(without it, it exits with code 3: an unmounted or emptied input would "
                     "otherwise empty the tables)")
    run.add_argument("--max-error-rate", type=float, default=d("max_error_rate", "1.0", float),
                     metavar="F", help="exit with code 4 (the run is committed) when more "
                     "than this fraction of the files this run processed has an error row "
                     "(default: %(default)s)")
    run.add_argument("--stale-lock-after", type=float, default=d("stale_lock_after", "300", float),
                     metavar="SECONDS", help="a run holds <output>/_lock.json while it runs, "
                     "renewing it; another run finding it exits with code 5, unless it was "
                     "not renewed for this long (its run was killed) or its process on this "
                     "machine is gone; 0 = no lock (default: %(default)s)")
    run.add_argument("--keep-run-records", type=int, default=d("keep_run_records", "0", int),
                     metavar="N", help="when a run ends, delete the records (runs/ rows, "
                     "_runs/ files) of all but the N latest runs; 0 = keep every run's "
                     "(default: %(default)s)")
    sp = p.add_argument_group("spark")
    sp.add_argument("--master", help="Spark master (default: local[*], or what spark-submit set)")
    sp.add_argument("--env", default=os.environ.get("IMAGE_ETL_ENV", "local"), help="which "
                    "conf/spark-<env>.properties to load when not started by spark-submit (default: %(default)s)")
    sp.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Spark setting (repeatable)")
    sp.add_argument("--read-mode", choices=READ_MODES, default=d("read_mode", "auto"),
                    help="who reads image bytes: executor (Python reads the file directly), "
                    "spark (binaryFile content through the JVM), auto (executor for local "
                    "files, spark otherwise) (default: %(default)s)")
    sp.add_argument("--spark-read-max-bytes", type=parse_size,
                    default=format_size(d("spark_read_max_bytes", "16m", parse_size)), metavar="SIZE",
                    help="when Spark reads the bytes, larger files are read by the Python "
                    "worker instead, where pyarrow reaches the input: Spark holds several copies of each file in the "
                    "JVM heap (default: %(default)s)")
    sp.add_argument("--task-bytes", type=parse_size, default=format_size(d("task_bytes", "128m", parse_size)),
                    metavar="SIZE", help="input bytes per task when planning tasks (default: %(default)s)")
    sp.add_argument("--partitions", type=int, default=0, metavar="N", help="repartition the "
                    "file list into N tasks (0: plan tasks by --task-bytes, no shuffle) "
                    "(default: %(default)s)")
    sp.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                    help="the job's log on stderr; Spark's own is kept to errors, and to "
                    "warnings with DEBUG (default: %(default)s)")
    p.property_keys = asked
    return p


def parse_args(argv: list[str] | None = None, conf_dir: Path | None = None) -> JobConfig:
    """Parse and validate the command line; exits with code 2 (argparse) on bad arguments."""
    props = conf_dir / "job.properties" if conf_dir else conf_file("job.properties")
    defaults = load_properties(props) if props.exists() else {}
    try:
        parser = build_parser(defaults)
    except (ValueError, argparse.ArgumentTypeError) as e:  # a default that does not parse
        build_parser({}).error(f"{props}: {e}")
    known = parser.property_keys | {"retry_errors"}  # read below, with the command line's
    if unknown := sorted(set(defaults) - known):  # a misspelt key would be ignored silently
        parser.error(f"{props}: unknown key(s) {', '.join(unknown)} (known: "
                     f"{', '.join(sorted(known))})")
    a = parser.parse_args(argv)
    if a.demo:
        a.input = a.input or [str(SAMPLES_DIR)]
        a.output = a.output or str(Path.cwd() / "output" / "demo")
    if not a.input or not a.output:
        parser.error("--input and --output are required (or --demo)")
    spark_conf = {}
    for kv in a.conf:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            parser.error(f"--conf wants KEY=VALUE, got {kv!r}")
        spark_conf[key.strip()] = value.strip()
    if a.stale_lock_after < 0 or a.keep_run_records < 0:
        parser.error("--stale-lock-after and --keep-run-records must be >= 0")
    if not 0.0 <= a.max_error_rate <= 1.0:
        parser.error("--max-error-rate must be between 0 and 1")
    if a.partitions < 0 or a.task_bytes <= 0 or a.spark_read_max_bytes <= 0:
        parser.error("--partitions must be >= 0, --task-bytes and --spark-read-max-bytes > 0")
    given = ",".join(a.retry_errors) if a.retry_errors else defaults.get("retry_errors", "")
    retry_errors = tuple(dict.fromkeys(k.strip() for k in given.split(",") if k.strip()))
    if unknown := [k for k in retry_errors if k not in ERROR_KINDS]:
        parser.error(f"--retry-errors: unknown error kind(s) {', '.join(unknown)} "
                     f"(kinds: {', '.join(ERROR_KINDS)})")
    profile = conf_file(f"spark-{a.env}.properties")
    if a.env != "local" and "PYSPARK_GATEWAY_PORT" not in os.environ and not profile.is_file():
        have = sorted(p.stem[len("spark-"):] for p in profile.parent.glob("spark-*.properties"))
        parser.error(f"--env {a.env}: no {profile.name} (have: {', '.join(have) or 'none'})")
    if a.run_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", a.run_id):
        parser.error("--run-id may only hold letters, digits, '.', '_' and '-'")
    if a.run_id is not None and a.run_id.endswith(COMPACTED):
        parser.error(f"--run-id may not end with '{COMPACTED}': --compact names the runs it "
                     "writes so, and a run of that id would replace one")
    # kept as given: a path without a scheme is resolved once the session knows the default
    # file system (reading.resolve_paths): relative to /user/<name> on HDFS, not to this folder
    inputs, output = a.input, a.output.rstrip("/") or "/"
    glob = a.glob or default_glob()
    try:
        glob_regex(glob)
    except (ValueError, re.error) as e:
        parser.error(f"--glob '{glob}' is not a glob ({e}): *, ?, [abc], {{a,b}} and \\ to escape")
    # checked here, before Spark starts, where no path is relative; on the resolved paths again
    # in reading.resolve_paths
    if all(u.startswith("/") or has_scheme(u) for u in [*inputs, output]):
        if error := own_output_error(inputs, output, glob):
            parser.error(error)
    try:
        extract = ExtractOptions(
            max_side=a.max_side,
            max_pixels=a.max_pixels,
            max_file_bytes=a.max_file_bytes,
            time_budget_s=a.time_budget,
            keep_gps=a.keep_gps,
        )
    except ValueError as e:
        parser.error(str(e))
    return JobConfig(
        inputs=inputs,
        output=output,
        glob=glob,
        extract=extract,
        read_mode=a.read_mode,
        spark_read_max_bytes=a.spark_read_max_bytes,
        task_bytes=a.task_bytes,
        partitions=a.partitions,
        run_id=a.run_id,
        incremental=a.incremental,
        retry_errors=retry_errors,
        compact=a.compact,
        allow_empty_input=a.allow_empty_input,
        max_error_rate=a.max_error_rate,
        stale_lock_after=a.stale_lock_after,
        keep_run_records=a.keep_run_records,
        master=a.master,
        env=a.env,
        spark_conf=spark_conf,
        log_level=a.log_level,
    )
