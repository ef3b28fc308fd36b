"""The local Python daemon: workers import PySpark's installed, compiled modules."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spark_jobs import python_daemon

ROOT = Path(__file__).resolve().parent.parent


def test_only_the_installed_packages_own_zip_is_dropped(tmp_path):
    import pyspark

    own = Path(pyspark.__file__).parent / "python" / "lib" / "pyspark.zip"
    assert own.exists()
    assert python_daemon._own_zip(str(own))
    other = tmp_path / "spark-4.1" / "python" / "lib" / "pyspark.zip"  # a separate Spark
    other.parent.mkdir(parents=True)
    zipfile.ZipFile(other, "w").close()
    assert not python_daemon._own_zip(str(other))
    assert not python_daemon._own_zip(str(own.parent / "py4j-0.10.9.9-src.zip"))


WORKER_PYSPARK = """
import sys
import pyarrow as pa
from pyspark.sql import functions as F
from spark_jobs.config import parse_args
from spark_jobs.session import get_session, stop_session

spark, _ = get_session(parse_args(["--demo", "--log-level", "WARNING"] + sys.argv[1:]))

@F.arrow_udf("string")
def where(x: pa.Array) -> pa.Array:
    import pyspark
    return pa.array([pyspark.__file__] * len(x))

print("WORKER", spark.range(0, 2, 1, 2).select(where("id")).first()[0])
stop_session(spark)
"""


@pytest.mark.spark
@pytest.mark.parametrize("conf, in_zip", [((), False),
                                          (("--conf", "spark.python.daemon.module=pyspark.daemon"), True)])
def test_local_workers_import_pyspark_from_the_installed_package(conf, in_zip):
    run = subprocess.run([sys.executable, "-c", WORKER_PYSPARK, *conf], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    where = next(line.split(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith("WORKER "))
    assert ("pyspark.zip" in where) == in_zip, where
