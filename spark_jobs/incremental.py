"""Incremental runs: compare the listing with the current images table, on metadata only.

A file is new work when its (path, modification_time, size_bytes) has no current row; a
changed file is processed again and its new row supersedes the old one. A current path that
is no longer listed, under the run's inputs, gets a tombstone row (``deleted`` true,
features null).
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import writing
from spark_jobs.exit_codes import RunRefused
from spark_jobs.storage import Storage
from spark_jobs.transform import IMAGE_COLUMNS

log = logging.getLogger(__name__)
# The settings that change a processed row's features. The limits (--max-pixels,
# --max-file-bytes, --time-budget) only decide which files get an error row.
FEATURE_SETTINGS = {"max_side": "--max-side", "keep_gps": "--keep-gps"}


def check_order(storage: Storage, output: str, run_id: str) -> None:
    """Refuse an increment whose id sorts before a run already in images/: a file's current
    row is the one of the latest run id, so this run's rows would stay hidden behind older
    ones, and every later run would find those files changed again."""
    later = [r for r in writing.committed_runs(storage, output, "images") if r > run_id]
    if later:
        raise RunRefused(
            f"run id {run_id} sorts before run {later[-1]} of {output}/images: a file's current "
            f"row is the one of the latest run id, so this run's rows would stay hidden. Run ids "
            f"must sort in run order: leave --run-id out (UTC time), or give one after {later[-1]}")


def check_settings(storage: Storage, output: str, run_id: str, settings: dict) -> None:
    """Refuse an increment whose feature settings differ from those of the current rows:
    rows computed both ways would mix in one table (sharpness, for one, depends on
    --max-side). The latest earlier run stands for them all: each increment (and its
    compaction) was checked against the run before it, and a full run recomputes every row."""
    earlier = [r for r in writing.committed_runs(storage, output, "images") if r != run_id]
    if not earlier:
        return
    known = writing.run_settings(storage, output, "images", earlier[-1])
    if known is None:
        log.warning("images/ run %s does not say how its rows were computed: this run's "
                    "settings cannot be checked against it", earlier[-1])
        return

    def say(key: str, value) -> str:
        return f"{FEATURE_SETTINGS[key]} {('on' if value else 'off') if isinstance(value, bool) else value}"

    changed = [key for key in FEATURE_SETTINGS if known.get(key) != settings[key]]
    if changed:
        raise RunRefused(
            f"the current rows of {output}/images were computed with "
            f"{', '.join(say(k, known.get(k)) for k in changed)} (run {earlier[-1]}), this run "
            f"asks for {', '.join(say(k, settings[k]) for k in changed)}: rows computed both ways "
            "would mix in one table. Run once without --incremental to recompute every file "
            "with the new settings, or keep the earlier ones.")


def current_files(spark: SparkSession, storage: Storage, output: str, run_id: str) -> DataFrame | None:
    """Current, not deleted rows of the images table as they were before run ``run_id``
    (None when there are none), so that rerunning a run id redoes the same work."""
    if not [r for r in writing.committed_runs(storage, output, "images") if r != run_id]:
        return None
    return writing.current_rows(spark, storage, output, before_run=run_id).where(~F.col("deleted"))


def new_work(files: DataFrame, current: DataFrame | None, retry_errors=()) -> DataFrame:
    """Listed files without a current row of the same path, size and modification time, or
    whose current row has one of the error kinds ``retry_errors``."""
    if current is None:
        return files
    if retry_errors:
        current = current.where(F.col("error_kind").isNull() | ~F.col("error_kind").isin(*retry_errors))
    known = current.select(
        "path", F.col("size_bytes").alias("length"), F.col("modification_time").alias("modificationTime")
    )
    return files.join(known, ["path", "length", "modificationTime"], "left_anti")


def tombstones(files: DataFrame, current: DataFrame | None, scope: Column) -> DataFrame | None:
    """One row per current path under the inputs (``scope``) that is no longer listed: its
    last metadata, deleted=true. Rows outside the inputs stay current: an increment over
    one day's folder says nothing of the other days'."""
    if current is None:
        return None
    gone = current.join(files.select("path"), "path", "left_anti").where(scope)
    kept = {"path", "label", "size_bytes", "modification_time"}
    return gone.select(
        *[F.col(c) if c in kept else F.lit(None).cast(current.schema[c].dataType).alias(c)
          for c in IMAGE_COLUMNS if c != "deleted"],
        F.lit(True).alias("deleted"),
    )
