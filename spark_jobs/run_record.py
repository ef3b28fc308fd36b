"""The run record: <output>/_runs/<run_id>.json, written when a run starts and when it ends."""

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

log = logging.getLogger(__name__)
RUNS_DIR = "_runs"
# Spark settings worth recording next to the job's own configuration.
SPARK_KEYS = (
    "spark.master", "spark.app.id", "spark.submit.deployMode", "spark.executor.memory",
    "spark.executor.cores", "spark.driver.memory", "spark.sql.files.maxPartitionBytes",
    "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.sql.execution.arrow.maxBytesPerBatch",
)  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunRecord:
    """Accumulates what a scheduler or an operator wants to know about one run."""

    def __init__(self, storage: Storage, cfg: JobConfig, run_id: str, spark_conf: dict):
        self._storage = storage
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
