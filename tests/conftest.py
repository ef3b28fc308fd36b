"""Shared fixtures: one local Spark session for the whole run, the bundled samples."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_PHOTOS = sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".jpg", ".png") and p.parent.name != "broken")


@pytest.fixture(scope="session")
def spark():
    """local[2], UI off, few shuffle partitions, tiny Arrow batches (multi-batch path runs)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("spark-image-etl-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "3")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


def run_job(*argv: str) -> int:
    """Run the job in this process (it reuses the test session); returns its exit code."""
    from spark_jobs.image_features import main

    return main(list(argv))
