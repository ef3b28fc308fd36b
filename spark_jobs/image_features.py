"""The image-feature ETL job: files in, Parquet tables out.

    python -m spark_jobs.image_features --input URI [URI ...] --output URI [options]
    python -m spark_jobs.image_features --demo
    ./submit.sh [spark-submit options] -- --input URI --output URI [options]

Extract lists the files (binaryFile metadata), transform computes one row per file in a
single vectorized Arrow pass (mapInArrow), load writes <output>/images/, then
<output>/summary/ and <output>/duplicates/ are aggregated in Spark from what was written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from spark_jobs import exit_codes
from spark_jobs.config import JobConfig, default_glob, parse_args
from udfs.errors import ERROR_KINDS

log = logging.getLogger("spark_jobs.image_features")
PRINTED_LABELS = 40  # rows of the per-label table printed at the end of a run


def new_run_id() -> str:
    """UTC time to the millisecond: run ids sort in the order runs started."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


class Progress(threading.Thread):
    """Logs a progress line (tasks done / total of the running stages) every ``every`` s.
    Stages are looked at every ``look`` s, so that the first line already knows their pace."""

    def __init__(self, spark, every: float = 15.0, look: float = 1.0):
        super().__init__(daemon=True, name="progress")
        self._tracker = spark.sparkContext.statusTracker()
        self._every = every
        self._look = look
        self._stop_event = threading.Event()

    def run(self) -> None:
        first_seen: dict[int, tuple[float, int]] = {}
        next_line = time.time() + self._every
        while not self._stop_event.wait(self._look):
            stages = [self._tracker.getStageInfo(s) for s in self._tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            now = time.time()
            for stage in stages:
                first_seen.setdefault(stage.stageId, (now, stage.numCompletedTasks))
            if now >= next_line:
                next_line = now + self._every
                line = progress_line(stages, now, first_seen)
                if line:
                    log.info("%s", line)

    def stop(self) -> None:
        self._stop_event.set()


def progress_line(stages, now: float, first_seen: dict[int, tuple[float, int]]) -> str | None:
    """'progress: 40/106 tasks done (37 %) in 2 running stage(s), ~120 s left': the time left
    at the pace of the largest running stage (a long run's images stage) since this was
    first asked about it (``first_seen``: stage id -> (time, tasks done then), kept here)."""
    if not stages:
        return None
    done = sum(s.numCompletedTasks for s in stages)
    total = sum(s.numTasks for s in stages)
    line = f"progress: {done}/{total} tasks done ({100 * done // max(total, 1)} %) in {len(stages)} running stage(s)"
    main = max(stages, key=lambda s: s.numTasks)
    since, done_then = first_seen.setdefault(main.stageId, (now, main.numCompletedTasks))
    if main.numCompletedTasks > done_then and now > since:
        pace = (main.numCompletedTasks - done_then) / (now - since)
        line += f", ~{(main.numTasks - main.numCompletedTasks) / pace:.0f} s left"
    return line


class StopOnSignal:
    """SIGTERM (a scheduler stopping the run) or SIGINT: Spark's jobs are cancelled from
    another thread until the run ends, so the driver's current call fails and the run ends
    as stopped (its record says so). Raising in the handler instead would interrupt a py4j
    call midway and leave its connection unusable. A second signal stops the driver at once."""

    def __init__(self, spark):
        self.signum: int | None = None
        self._spark = spark
        self._previous = {}
        self._closed = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)

    def close(self) -> None:
        """Put back the handlers found (main() may run inside a longer-lived process)."""
        self._closed.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        signal.signal(signum, signal.SIG_DFL)
        threading.Thread(target=self._cancel_jobs, daemon=True, name="stop").start()

    def _cancel_jobs(self) -> None:
        try:
            # Spark logs each cancelled job as an error with its stack trace: expected here,
            # and the job's own log line says what happened
            self._spark.sparkContext.setLogLevel("OFF")
            while not self._closed.is_set():
                self._spark.sparkContext.cancelAllJobs()
                self._closed.wait(0.2)
        except Exception:  # noqa: BLE001 - the session has stopped: nothing left to cancel
            pass


def write_images(spark, storage, cfg: JobConfig, run_id: str) -> tuple[dict, bool]:
    """Extract and transform the (new) files, write them as this run of images/; returns
    what the run did, counted while writing (transform.run_metrics: no second pass), and
    whether images/ changed."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from spark_jobs import incremental, reading, transform, writing

    settings = dataclasses.asdict(cfg.extract)
    reading.plan_tasks(spark, cfg.task_bytes, cfg.spark_conf)
    writing.use_table_format(spark, cfg.spark_conf)
    files, source, found, unnamable, scope = reading.list_files(spark, cfg)
    if not (found or cfg.incremental or cfg.allow_empty_input) and [
            r for r in writing.committed_runs(storage, cfg.output, "images") if r != run_id]:
        raise empty_input(cfg, "every file in images/")
    current = gone = listing = None
    if cfg.incremental:
        listing = Observation("listing")
        current = incremental.current_files(spark, storage, cfg.output, run_id)
        gone = incremental.tombstones(files, current, scope)
        # counted as the new work is found: listing again for the count would double the
        # listing cost of every scheduled run (millions of objects on an object store)
        files = incremental.new_work(files.observe(listing, F.count(F.lit(1)).alias("n")), current,
                                     cfg.retry_errors)
    if cfg.partitions:
        files = files.repartition(cfg.partitions, "path")
    work = files
    files, counted, gone_when_named = reading.with_content(
        spark, cfg, work, source, subset=current is not None, unnamable=unnamable)
    images = transform.image_table(files, cfg.extract)
    if gone is not None:
        images = images.unionByName(gone)
    observed = Observation("run")
    # Written as it is, each image task would leave a file of a few hundred rows (a million
    # images: thousands of 100 KB files). The rows, never the image bytes, are shuffled into
    # spark.sql.shuffle.partitions files (2 locally), which adaptive execution (on in the
    # cluster profiles) merges further by size.
    rows = images.observe(observed, *transform.run_metrics()).repartition("path")
    staged = writing.stage_run(rows, cfg.output, "images", run_id)
    metrics = dict(observed.get)
    unread = counted.get["n"] - metrics["n_processed"] if counted is not None else 0
    if unread:
        log.warning("Spark could not read %d file(s): the Python workers read them again", unread)
        more = read_skipped(spark, cfg, work, staged)
        metrics = {k: (v or 0) + (more[k] or 0) for k, v in metrics.items()}
    # files named to Spark but gone by then were listed, then left out: gone, like any other
    metrics["n_listed"] = (listing.get["n"] - gone_when_named) if listing is not None else metrics["n_processed"]
    metrics["n_gone"] = max(0, found - metrics["n_listed"])
    if metrics["n_gone"]:
        log.warning("%d file(s) found by the listing were gone or forbidden when the job read "
                    "them: not in this run (--log-level DEBUG shows Spark's warnings naming "
                    "them)", metrics["n_gone"])
    if not (found or cfg.allow_empty_input) and metrics["n_deleted"]:
        storage.delete(staged)
        raise empty_input(cfg, f"the {metrics['n_deleted']} file(s) images/ holds there")
    if current is not None and not (metrics["n_processed"] or metrics["n_deleted"]):
        # Nothing new, changed or gone: no empty run is added (hourly runs would pile up
        # thousands); a rerun of this id that now finds nothing drops what it committed.
        storage.delete(staged)
        committed = writing.run_uri(cfg.output, "images", run_id)
        replaced = storage.exists(committed)
        if replaced:
            storage.delete(committed)
        return metrics, replaced
    # "incremental" tells a later run whether this one superseded the runs before it
    writing.commit_run(storage, staged, cfg.output, "images", run_id,
                       {**settings, "incremental": cfg.incremental})
    return metrics, True


def empty_input(cfg: JobConfig, what: str) -> exit_codes.InputEmpty:
    return exit_codes.InputEmpty(
        f"no file under {' '.join(cfg.inputs)}: this run would mark {what} as gone. An "
        f"unmounted or emptied input? If the files are really gone, run with --allow-empty-input")


def read_skipped(spark, cfg: JobConfig, work, staged: str) -> dict:
    """Add rows to the staged run for the files of ``work`` that Spark skipped, unable to
    read them (gone since the listing, forbidden, a name Hadoop cannot open): a Python
    worker reads each again, as in executor read mode, so a file gone or forbidden gets an
    ``unreadable`` row and a failing file system fails the run. Returns the rows' metrics."""
    from pyspark.sql import Observation

    from spark_jobs import reading, transform, writing
    from spark_jobs.dropped import python_can_read

    skipped = work.join(writing.read_parquet(spark, staged).select("path"), "path", "left_anti")
    observed = Observation("skipped")
    if python_can_read(cfg.inputs, warn=False):
        images = transform.image_table(reading.read_by_python(skipped), cfg.extract)
    else:  # pyarrow cannot reach the input (HDFS without libhdfs): trying would fail the run
        images = transform.unreadable_table(
            skipped, "Spark could not read it (its warnings say why), and pyarrow cannot reach the input")
    writing.stage_more(images.observe(observed, *transform.run_metrics()), staged)
    return observed.get


def write_aggregates(spark, storage, cfg: JobConfig, run_id: str) -> None:
    """summary/ and duplicates/ of the current state, from the images/ just written."""
    from pyspark.sql import functions as F

    from spark_jobs import transform, writing

    current = writing.current_rows(spark, storage, cfg.output).where(~F.col("deleted")).drop("run_id")

    def write(name: str, make) -> None:
        writing.write_run(storage, make(current).coalesce(1), cfg.output, name, run_id)
        writing.drop_runs_except(storage, cfg.output, name, run_id)

    # Two small jobs, each mostly planning and scheduling latency: run side by side.
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write, "summary", transform.summarize),
                     pool.submit(write, "duplicates", transform.find_duplicates)]:
            done.result()
    writing.clean_staging(storage, cfg.output)


def run_counts(metrics: dict, record) -> dict:
    """What this run did, from the metrics observed while its images/ rows were written."""
    errors = {k: metrics[f"n_{k}"] for k in sorted(ERROR_KINDS) if metrics[f"n_{k}"]}
    counts = {
        "processed": metrics["n_processed"],
        "ok": metrics["n_ok"],
        "errors": errors,
        "deleted": metrics["n_deleted"],
        "error": sum(errors.values()),
        "listed": metrics["n_listed"],
        "gone": metrics["n_gone"],
    }
    counts["skipped"] = counts["listed"] - counts["processed"]
    record.data["counts"] = counts
    record.data["bytes_read"] = metrics["bytes_read"] or 0
    record.data["megapixels_read"] = round(metrics["megapixels_read"] or 0.0, 3)
    return counts


def prepare(storage, cfg: JobConfig, run_id: str) -> None:
    """Under the output's lock, before this run's record is written: finish what a killed run
    left, then refuse an increment that cannot go on with what the output holds
    (exit_codes.RunRefused), so that a refused rerun leaves the record of that run as it is."""
    from spark_jobs import incremental, writing

    writing.finish_commits(storage, cfg.output)
    writing.drop_superseded(storage, cfg.output, run_id)
    if cfg.incremental:
        incremental.check_order(storage, cfg.output, run_id)
        incremental.check_settings(storage, cfg.output, run_id, dataclasses.asdict(cfg.extract))


def run(spark, storage, cfg: JobConfig, run_id: str, record) -> dict:
    """Extract, transform, load, compact (--compact), aggregate; times each stage into ``record``."""
    from spark_jobs import writing

    stages = record.data["stages_s"]
    t = time.perf_counter()
    metrics, changed = write_images(spark, storage, cfg, run_id)
    if not cfg.incremental:  # a full run describes every file: earlier runs are superseded
        writing.drop_runs_except(storage, cfg.output, "images", run_id)
    counts = run_counts(metrics, record)
    stages["images"] = round(time.perf_counter() - t, 3)
    if cfg.compact and cfg.incremental:  # a full run is one run already: nothing to merge
        t = time.perf_counter()
        writing.compact_images(spark, storage, cfg.output, run_id, dataclasses.asdict(cfg.extract))
        stages["compact"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    if changed or not writing.aggregates_current(storage, cfg.output):
        write_aggregates(spark, storage, cfg, run_id)
    else:
        log.info("nothing new, changed or gone: images/, summary/ and duplicates/ unchanged")
        writing.clean_staging(storage, cfg.output)
    stages["aggregates"] = round(time.perf_counter() - t, 3)
    return counts


def print_report(spark, cfg: JobConfig, run_id: str, counts: dict) -> None:
    """A short human summary on stdout: counts, per-label table, where the tables are."""
    from spark_jobs import writing

    kinds = ", ".join(f"{n} {kind}" for kind, n in counts["errors"].items())
    files = "file" if counts["listed"] == 1 else "files"
    print(f"run {run_id}: {counts['listed']} {files} listed, {counts['processed']} processed "
          f"({counts['ok']} ok, {counts['error']} with errors{f': {kinds}' if kinds else ''}), "
          f"{counts['skipped']} unchanged, {counts['deleted']} deleted"
          + (f", {counts['gone']} gone before they were read" if counts["gone"] else ""))
    from pyspark.sql import functions as F

    summary = writing.read_parquet(spark, writing.table_uri(cfg.output, "summary"))
    # The total row (label null) and the first labels by name: a lake can hold millions of
    # folders, so the driver takes a bounded number of rows; the rest stay in summary/.
    rows = (
        summary.select("label", "n_files", "n_ok", "n_error", "mean_gray")
        .orderBy(F.col("label").isNotNull(), "label")
        .limit(PRINTED_LABELS + 2)
        .collect()
    )
    total, labels = rows[:1], rows[1:]
    print(f"{'label':<16} {'files':>6} {'ok':>6} {'errors':>6} {'mean gray':>10}")
    for r in labels[:PRINTED_LABELS] + total:
        mean = "" if r["mean_gray"] is None else f"{r['mean_gray']:.1f}"
        print(f"{r['label'] or '(all)':<16} {r['n_files']:>6} {r['n_ok']:>6} {r['n_error']:>6} {mean:>10}")
    if len(labels) > PRINTED_LABELS:
        print(f"(more labels than {PRINTED_LABELS}: every one is in summary/)")
    for name in ("images", "summary", "duplicates", "runs"):
        print(f"{name + ':':<12} {writing.table_uri(cfg.output, name)}")


def release(lock) -> None:
    """Release the output's lock; where that fails, the lock goes stale in its time."""
    try:
        lock.release()
    except Exception as e:  # noqa: BLE001 - the run's outcome stands
        log.warning("could not remove %s (the next run takes it over after --stale-lock-after "
                    "seconds): %s", lock.uri, exit_codes.first_line(e))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)  # exits with code 2 on bad arguments
    logging.basicConfig(level=cfg.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # py4j logs every connection it closes at INFO, and every command to the JVM and its
    # answer at DEBUG (~1 MB for the demo, drowning the job's own lines)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if not cfg.incremental and (cfg.compact or cfg.retry_errors):
        log.warning("--compact and --retry-errors are for --incremental runs: a full run reads "
                    "every file and leaves one run of images/")
    from spark_jobs.output_lock import OutputBusy, OutputLock
    from spark_jobs.reading import resolve_paths
    from spark_jobs.run_record import RunRecord
    from spark_jobs.session import SetupError, get_session, stop_session
    from spark_jobs.storage import Storage

    try:
        spark, owned = get_session(cfg)
    except SetupError as e:
        log.error("%s", e)
        return exit_codes.INFRASTRUCTURE
    run_id = cfg.run_id or new_run_id()
    storage = Storage(spark)
    try:
        cfg = resolve_paths(storage, cfg)
    except Exception as e:  # noqa: BLE001 - an output inside the input, an unreachable file system
        log.error("run %s not started: %s", run_id, exit_codes.first_line(e))
        if owned:
            stop_session(spark)
        return exit_codes.classify(e)
    record = RunRecord(storage, cfg, run_id, dict(spark.sparkContext.getConf().getAll()))
    lock = (OutputLock(storage, cfg.output, run_id, cfg.stale_lock_after,
                       on_lost=spark.sparkContext.cancelAllJobs)
            if cfg.stale_lock_after else None)
    stop = StopOnSignal(spark)
    progress = Progress(spark)
    started = time.perf_counter()
    try:
        if lock is not None:
            lock.acquire()
            if lock.took_over and lock.took_over[0] != run_id:  # a retry rewrites its own record
                RunRecord.close_killed(storage, cfg.output, *lock.took_over, taken_by=run_id)
        prepare(storage, cfg, run_id)
        record.save()
        progress.start()
        log.info("run %s: %s -> %s", run_id, " ".join(cfg.inputs), cfg.output)
        counts = run(spark, storage, cfg, run_id, record)
        if not counts["listed"] + counts["gone"]:
            wanted = ("has an image extension (--glob '*' takes every file)"
                      if cfg.glob == default_glob() else f"matches --glob '{cfg.glob}'")
            log.warning("no file under %s %s", " ".join(cfg.inputs), wanted)
        log.info("run %s finished in %.1f s", run_id, time.perf_counter() - started)
        try:
            print_report(spark, cfg, run_id, counts)
        except BrokenPipeError:  # stdout closed (| head): the run has committed all the same
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice
            log.warning("stdout was closed: the report was not printed")
        if counts["processed"] and counts["error"] / counts["processed"] > cfg.max_error_rate:
            log.error("%d of %d files have errors, above --max-error-rate %g",
                      counts["error"], counts["processed"], cfg.max_error_rate)
            record.finish("succeeded_with_errors", exit_codes.TOO_MANY_ERRORS)
            return exit_codes.TOO_MANY_ERRORS
        record.finish("succeeded", exit_codes.SUCCESS)
        return exit_codes.SUCCESS
    except OutputBusy as e:  # nothing written, not even the record (its id may be the holder's)
        log.error("run %s not started: %s", run_id, e)
        return exit_codes.OUTPUT_BUSY
    except exit_codes.RunRefused as e:  # a refused rerun of a run that succeeded leaves its record
        log.error("run %s not started: %s", run_id, e)
        if not RunRecord.succeeded(storage, cfg.output, run_id):
            record.finish("failed", exit_codes.BAD_ARGUMENTS, exit_codes.first_line(e))
        return exit_codes.BAD_ARGUMENTS
    except Exception as e:  # noqa: BLE001 - classified into an exit code for the scheduler
        if lock is not None and lock.lost_to is not None:
            log.error("run %s stopped: %s took over the output", run_id, lock.lost_to)
            return exit_codes.OUTPUT_BUSY
        if stop.signum is not None:
            name = signal.Signals(stop.signum).name
            log.error("run %s stopped by %s: what it committed stays; a rerun completes it",
                      run_id, name)
            record.finish("failed", exit_codes.SIGNAL_BASE + stop.signum, f"stopped by {name}")
            return exit_codes.SIGNAL_BASE + stop.signum
        code = exit_codes.classify(e)
        log.error("run %s failed: %s", run_id, exit_codes.first_line(e))
        log.debug("traceback", exc_info=True)
        record.finish("failed", code, exit_codes.first_line(e))
        return code
    finally:
        stop.close()
        progress.stop()
        if lock is not None:
            release(lock)
        if owned:
            stop_session(spark)


if __name__ == "__main__":
    sys.exit(main())
