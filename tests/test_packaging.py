"""The wheel a user installs (pip install spark-image-etl): it runs without a checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.spark


def _tracked(folder: str = ".") -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", folder], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        pytest.fail(f"git ls-files: {out.stderr}")
    return out.stdout.strip("\0").split("\0")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel of the checkout's files, built as pip builds it (from a copy: the build
    writes build/ and *.egg-info beside the sources) and unpacked as pip installs it."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in _tracked():
        if (ROOT / name).is_file():  # a file deleted but not yet committed is still listed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = dist.glob("spark_image_etl-*.whl")
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


@pytest.mark.parametrize("folder", ["conf", "samples"])
def test_the_wheel_carries_every_file_of(folder, installed):
    copy = installed / "spark_jobs" / folder
    shipped = {str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()}
    assert shipped == {name.split("/", 1)[1] for name in _tracked(folder)}


def test_an_installed_job_runs_its_demo_with_its_own_settings(installed, tmp_path):
    """From a folder that is not a checkout: conf/ and samples/ come from the package, but
    for a job.properties of the user's own in the working directory (which does not hide the
    package's Spark profile and log configuration)."""
    (tmp_path / "job.properties").write_text("max_side=256\n")
    env = dict(os.environ, PYTHONPATH=str(installed), PYSPARK_PYTHON=sys.executable)
    for name in ("IMAGE_ETL_CONF_DIR", "IMAGE_ETL_SAMPLES_DIR"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "spark_jobs.image_features", "--demo",
         "--output", str(tmp_path / "out"), "--run-id", "w1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "9 files listed, 9 processed" in proc.stdout
    record = json.loads((tmp_path / "out" / "_runs" / "w1.json").read_text())
    assert all(p.startswith(str(installed)) for p in record["inputs"]), record["inputs"]
    assert record["config"]["job"]["extract"]["max_side"] == 256
    # conf/spark-local.properties was read (Spark's own default is 10000)
    assert record["config"]["spark"]["spark.sql.execution.arrow.maxRecordsPerBatch"] == "256"
    # and conf/log4j2.properties: Spark says nothing below errors (no NativeCodeLoader warning,
    # no "Setting default log level" banner), so the job's own log lines are what is read
    spark_lines = [line for line in proc.stderr.splitlines() if " spark_jobs." not in line
                   and not line.startswith("WARNING: Using incubator modules")]
    assert not spark_lines, spark_lines
