"""The run record: <output>/_runs/<run_id>.json, written when a run starts and when it ends,
and the run's row of <output>/runs/ (one Parquet row per run: the history a scheduler's
runs leave, queryable like the other tables)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import datetime, timezone

from spark_jobs import __version__
from spark_jobs.config import JobConfig
from spark_jobs.exit_codes import first_line
from spark_jobs.storage import Storage
from udfs.errors import ERROR_KINDS

log = logging.getLogger(__name__)
RUNS_DIR = "_runs"
RUNS_TABLE = "runs"
ROW_FILE = "run.parquet"
# Spark settings worth recording next to the job's own configuration.
SPARK_KEYS = (
    "spark.master", "spark.app.id", "spark.submit.deployMode", "spark.executor.memory",
    "spark.executor.cores", "spark.driver.memory", "spark.sql.files.maxPartitionBytes",
    "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.sql.execution.arrow.maxBytesPerBatch",
)  # fmt: skip


COUNTS = ("listed", "processed", "skipped", "ok", "error", "deleted", "gone")


def _runs_schema():
    import pyarrow as pa

    return pa.schema([
        ("status", pa.string()), ("exit_code", pa.int32()), ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")), ("ended_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()), ("incremental", pa.bool_()), ("inputs", pa.list_(pa.string())),
        ("max_side", pa.int32()),
        *[(f"n_{k}", pa.int64()) for k in (*COUNTS, *ERROR_KINDS)],
        ("bytes_read", pa.int64()), ("megapixels_read", pa.float64()),
        ("stages_s", pa.map_(pa.string(), pa.float64())), ("version", pa.string()),
    ])  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunRecord:
    """Accumulates what a scheduler or an operator wants to know about one run."""

    def __init__(self, storage: Storage, cfg: JobConfig, run_id: str, spark_conf: dict):
        self._storage = storage
        self._keep = cfg.keep_run_records
        self._t0 = time.perf_counter()
        self.uri = f"{cfg.output}/{RUNS_DIR}/{run_id}.json"
        config = dataclasses.asdict(cfg)
        self.data = {
            "run_id": run_id,
            "status": "running",
            "started_at": now(),
            "ended_at": None,
            "inputs": cfg.inputs,
            "output": cfg.output,
            "incremental": cfg.incremental,
            "counts": {},
            "bytes_read": None,
            "megapixels_read": None,
            "duration_s": None,
            "stages_s": {},
            "exit_code": None,
            "error": None,
            "version": __version__,
            "config": {"job": config, "spark": {k: spark_conf.get(k) for k in SPARK_KEYS}},
        }

    def save(self) -> None:
        try:
            self._storage.write_text(self.uri, json.dumps(self.data, indent=2, default=str) + "\n")
        except Exception as e:  # noqa: BLE001 - the record must never be why a run fails
            log.warning("could not write run record %s: %s", self.uri, first_line(e))

    def finish(self, status: str, exit_code: int, error: str | None = None) -> None:
        self.data.update(status=status, ended_at=now(), exit_code=exit_code, error=error,
                         duration_s=round(time.perf_counter() - self._t0, 3))
        self.save()
        self._save_row()
        if self._keep:
            self._drop_older_records()

    def _drop_older_records(self) -> None:
        """Keep the records (_runs/ and runs/) of only the ``keep_run_records`` latest runs,
        this one among them: run ids sort by time."""
        from spark_jobs.writing import committed_runs, run_uri

        output, this = self.data["output"], self.data["run_id"]
        try:
            names = self._storage.list_dir(f"{output}/{RUNS_DIR}")
            recorded = {n[:-len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")}
            others = sorted((recorded | set(committed_runs(self._storage, output, RUNS_TABLE))) - {this})
            older = others[:max(0, len(others) - (self._keep - 1))]
            for run_id in older:
                self._storage.delete(f"{output}/{RUNS_DIR}/{run_id}.json")
                self._storage.delete(run_uri(output, RUNS_TABLE, run_id))
        except Exception as e:  # noqa: BLE001 - as for the record: never why a run fails
            log.warning("could not drop older run records: %s", first_line(e))
            return
        if older:
            log.info("removed the records of %d older run(s) (--keep-run-records %d)", len(older), self._keep)

    @staticmethod
    def succeeded(storage: Storage, output: str, run_id: str) -> bool:
        """Whether the record of run ``run_id`` says it succeeded (with errors or not)."""
        uri = f"{output}/{RUNS_DIR}/{run_id}.json"
        try:
            return storage.exists(uri) and json.loads(storage.read_text(uri)).get("status", "").startswith("succeeded")
        except Exception as e:  # noqa: BLE001 - a record we cannot read is not one to keep
            log.warning("could not read the record of run %s: %s", run_id, first_line(e))
            return False

    @classmethod
    def close_killed(cls, storage: Storage, output: str, run_id: str, last_seen: float,
                     taken_by: str) -> None:
        """A run killed outright left its record saying 'running': once another run took
        over its output lock, record it as failed, with its row in runs/. When it ended is
        not known (ended_at and duration_s stay null): only that it was alive at its lock's
        last renewal, ``last_seen`` (epoch seconds), which the error says."""
        record = cls.__new__(cls)
        record._storage = storage
        record.uri = f"{output}/{RUNS_DIR}/{run_id}.json"
        try:
            if not storage.exists(record.uri):
                return
            record.data = json.loads(storage.read_text(record.uri))
            if record.data.get("status") != "running":
                return
            seen = datetime.fromtimestamp(last_seen, timezone.utc)
            record.data.update(status="failed", error=(
                f"killed: alive at {seen:%Y-%m-%d %H:%M:%S} UTC (its lock's last renewal), "
                f"gone when run {taken_by} took the output over at {datetime.now(timezone.utc):%H:%M:%S}"))
        except Exception as e:  # noqa: BLE001 - a record we cannot read stays as it is
            log.warning("could not read the record of run %s: %s", run_id, first_line(e))
            return
        log.info("run %s was killed: its record now says failed", run_id)
        record.save()
        record._save_row()

    def _save_row(self) -> None:
        """The record as this run's row of runs/: one small Parquet file, written whole like
        the record (a Spark job for one row would cost the run ~0.2 s)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from spark_jobs.writing import run_uri

        uri = f"{run_uri(self.data['output'], RUNS_TABLE, self.data['run_id'])}/{ROW_FILE}"
        try:
            buffer = pa.BufferOutputStream()
            pq.write_table(runs_row(self.data), buffer, compression="zstd")
            self._storage.write_bytes(uri, buffer.getvalue().to_pybytes())
        except Exception as e:  # noqa: BLE001 - as for the record: never why a run fails
            log.warning("could not write run row %s: %s", uri, first_line(e))


def runs_row(data: dict):
    """A run record as the one-row Arrow table of runs/ (flat columns; counts null when the
    run ended before it counted anything)."""
    import pyarrow as pa

    counts = data["counts"]
    errors = counts.get("errors", {})

    def count(value) -> int | None:
        return value if counts else None

    def time_of(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    row = {
        "status": data["status"], "exit_code": data["exit_code"], "error": data["error"],
        "started_at": time_of(data["started_at"]), "ended_at": time_of(data["ended_at"]),
        "duration_s": data["duration_s"], "incremental": data["incremental"],
        "inputs": data["inputs"], "max_side": data["config"]["job"]["extract"]["max_side"],
        **{f"n_{k}": count(counts.get(k)) for k in COUNTS},
        **{f"n_{k}": count(errors.get(k, 0)) for k in ERROR_KINDS},
        "bytes_read": data["bytes_read"], "megapixels_read": data["megapixels_read"],
        "stages_s": list(data["stages_s"].items()), "version": data["version"],
    }
    return pa.Table.from_pylist([row], schema=_runs_schema())
