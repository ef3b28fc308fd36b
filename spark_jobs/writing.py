"""Load: every table holds one directory per run, ``<table>/run_id=<id>/``.

A run's table is written by Spark to ``<output>/_staging/<run_id>/<attempt>/<table>`` and
then moved into place with a directory rename, so readers (who skip names starting with
'_') never see a half-written run, a failed run leaves earlier runs untouched, and rerunning
a run id replaces that run's directory instead of adding to it.
"""

from __future__ import annotations

import json
import logging
import secrets

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.config import COMPACTED
from spark_jobs.globs import glob_escape
from spark_jobs.session import set_unless_given
from spark_jobs.storage import Storage

log = logging.getLogger(__name__)
RUN_PREFIX = "run_id="
STAGING = "_staging"
AGGREGATE_TABLES = ("summary", "duplicates")
SETTINGS_FILE = "_settings.json"  # in a run's directory: the settings its rows were made with
# Each driver process stages apart: a run that stalled and lost the output's lock to a retry
# of the same run id may still have Spark tasks writing, and they must not write into the
# staged files the retry commits.
ATTEMPT = secrets.token_hex(4)


def use_table_format(spark: SparkSession, given: dict[str, str] | None = None) -> None:
    """Timestamps written as Parquet INT64 microseconds marked UTC, which pyarrow, DuckDB and
    Trino read as instants, not as Spark's default INT96 (deprecated by Parquet, read as
    local times without a zone). A setting given to Spark wins: old Hive and Impala read
    INT96 only."""
    set_unless_given(spark, {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}, given)


def table_uri(output: str, table: str) -> str:
    return f"{output}/{table}"


def run_uri(output: str, table: str, run_id: str) -> str:
    return f"{output}/{table}/{RUN_PREFIX}{run_id}"


def read_parquet(spark: SparkSession, uri: str) -> DataFrame:
    """Our own table or staged run at ``uri``, read as named: Spark takes a path to read as
    a glob, and an output folder may hold glob characters ('out [2024]')."""
    return spark.read.parquet(glob_escape(uri))


def write_run(storage: Storage, df: DataFrame, output: str, table: str, run_id: str,
              settings: dict | None = None) -> None:
    """Write ``df`` as run ``run_id`` of ``table``, replacing that run if it exists."""
    commit_run(storage, stage_run(df, output, table, run_id), output, table, run_id, settings)


def stage_run(df: DataFrame, output: str, table: str, run_id: str) -> str:
    """Write ``df`` where readers do not look; returns that place for ``commit_run``."""
    staged = f"{output}/{STAGING}/{run_id}/{ATTEMPT}/{table}"
    df.write.mode("overwrite").parquet(staged)
    return staged


def stage_more(df: DataFrame, staged: str) -> None:
    """Add ``df``'s rows to a run staged by ``stage_run``."""
    df.write.mode("append").parquet(staged)


def commit_run(storage: Storage, staged: str, output: str, table: str, run_id: str,
               settings: dict | None = None) -> None:
    """Move a staged run into place, replacing that run if it exists (Storage.replace_dir);
    ``settings`` go with its rows as SETTINGS_FILE (readers skip names starting with '_')."""
    if settings is not None:
        storage.write_text(f"{staged}/{SETTINGS_FILE}", json.dumps(settings, sort_keys=True))
    storage.replace_dir(staged, run_uri(output, table, run_id))


def run_settings(storage: Storage, output: str, table: str, run_id: str) -> dict | None:
    """The settings committed with a run (None for a run written without them)."""
    uri = f"{run_uri(output, table, run_id)}/{SETTINGS_FILE}"
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def committed_runs(storage: Storage, output: str, table: str) -> list[str]:
    """Run ids with a committed directory in the table (sorted: ids sort by time)."""
    names = storage.list_dir(table_uri(output, table))
    return [n[len(RUN_PREFIX):] for n in names if n.startswith(RUN_PREFIX)]


def aggregates_current(storage: Storage, output: str) -> bool:
    """Whether summary/ and duplicates/ were written at or after the latest images/ run,
    so that they describe the current state (a run killed before its aggregates leaves
    them older)."""
    images = committed_runs(storage, output, "images")
    if not images:
        return False
    latest = [committed_runs(storage, output, table)[-1:] for table in AGGREGATE_TABLES]
    return all(runs and runs[0] >= images[-1] for runs in latest)


def compact_images(spark: SparkSession, storage: Storage, output: str, run_id: str,
                   settings: dict) -> bool:
    """Rewrite the runs of images/ before ``run_id`` as one run holding the state this run
    started from (the latest row per path, tombstones dropped), then delete them; False when
    there was nothing to do. This run's own rows stay as they are.

    The compacted run is ``<the latest of them>.compacted`` (or that latest itself, when it
    is a compacted run that a killed compaction left beside the runs), so it sorts after them and
    before this run, and a retry of this run id still finds the state it started from
    (compacted into this run's own id, a retry found no earlier state and replaced it with
    only its own inputs' files). A path whose tombstone is dropped has no row in the new run,
    and the older runs go oldest first, so that path's latest remaining row is its tombstone
    until all are gone: killed at any point, this leaves the state as it was, or compacted.
    """
    runs = committed_runs(storage, output, "images")
    if runs and runs[-1] > run_id:
        log.warning("images/: not compacted by run %s, a later run %s exists", run_id, runs[-1])
        return False
    earlier = [r for r in runs if r < run_id]
    if len(earlier) < 2:
        return False
    # a compaction killed before it deleted the runs it merged is redone into its own run
    into = earlier[-1] if earlier[-1].endswith(COMPACTED) else f"{earlier[-1]}{COMPACTED}"
    if into >= run_id:  # ids that sort too close ('r1' then 'r1-b'): no id between them
        log.warning("images/: not compacted by run %s: no run id sorts between %s and it",
                    run_id, earlier[-1])
        return False
    state = current_rows(spark, storage, output, before_run=run_id).where(~F.col("deleted"))
    write_run(storage, state.drop("run_id"), output, "images", into, settings)
    for run in earlier:
        if run != into:
            storage.delete(run_uri(output, "images", run))
    log.info("images/: %d runs compacted into run %s", len(earlier), into)
    return True


def finish_commits(storage: Storage, output: str) -> None:
    """Put back a committed run that a run killed while replacing it (a rerun of its id)
    had moved aside (Storage.replace_dir); runs are one at a time per output, so the next
    run does it before it reads anything."""
    for table in ("images", *AGGREGATE_TABLES):
        for name in storage.finish_replaces(table_uri(output, table)):
            log.warning("%s/%s: put back, its rerun stopped while replacing it", table, name)


def drop_superseded(storage: Storage, output: str, run_id: str) -> None:
    """Delete the runs of images/ older than the latest one if that was a full run killed
    between its commit and deleting them (runs are one at a time per output, so the next
    run finishes it). ``run_id``'s own committed run is not looked at: this run replaces it."""
    runs = [r for r in committed_runs(storage, output, "images") if r != run_id]
    if len(runs) < 2 or (run_settings(storage, output, "images", runs[-1]) or {}).get(
            "incremental") is not False:
        return
    log.warning("images/: run %s was full, but stopped before removing the runs before it: "
                "removing them now", runs[-1])
    drop_runs_except(storage, output, "images", runs[-1])


def drop_runs_except(storage: Storage, output: str, table: str, keep: str) -> list[str]:
    """Delete every run of ``table`` but ``keep``, oldest first (once ``keep`` has committed)."""
    dropped = [r for r in committed_runs(storage, output, table) if r != keep]
    for run in dropped:
        storage.delete(run_uri(output, table, run))
    if dropped:
        log.info("%s: removed %d superseded run(s)", table, len(dropped))
    return dropped


def clean_staging(storage: Storage, output: str) -> None:
    """Remove staged leftovers, also those of killed runs (one run at a time per output)."""
    storage.delete(f"{output}/{STAGING}")


def current_rows(spark: SparkSession, storage: Storage, output: str,
                 before_run: str | None = None) -> DataFrame:
    """The images table's latest row for every path (run ids sort by time); rows with
    ``deleted`` true say the file is gone (README "Reading the current state").

    ``before_run``: ignore that run's own rows, so a rerun of it sees what it saw the first time.
    """
    images = read_parquet(spark, table_uri(output, "images"))
    runs = [r for r in committed_runs(storage, output, "images") if r != before_run]
    if before_run is not None:
        images = images.where(F.col("run_id") != before_run)
    if len(runs) <= 1:
        return images  # a single run (every full run): no window, no shuffle
    latest = Window.partitionBy("path").orderBy(F.col("run_id").desc())
    return (
        images.withColumn("_rank", F.row_number().over(latest))
        .where("_rank = 1")
        .drop("_rank")
    )
