"""submit.sh in local mode, as a user runs it: ./submit.sh -- --input X --output Y."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.spark


def test_submit_sh_runs_the_demo_on_the_samples(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(ROOT / "submit.sh"), "--", "--demo", "--output", str(out), "--run-id", "s1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "9 files listed, 9 processed (6 ok, 3 with errors: 1 corrupt, 1 empty, " \
        "1 unsupported_format)" in proc.stdout
    images = ds.dataset(out / "images", format="parquet", partitioning="hive").to_table()
    assert images.num_rows == 9
    assert set(images.column("run_id").to_pylist()) == {"s1"}
    assert (out / "_runs" / "s1.json").exists()


def test_submit_sh_passes_the_job_exit_code(tmp_path):
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(ROOT / "submit.sh"), "--", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]


def test_submit_sh_takes_spark_submits_own_form(tmp_path):
    """As Airflow's SparkSubmitOperator calls it: [options] application.py [job options]."""
    out = tmp_path / "out"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(ROOT / "submit.sh"), "--name", "image_features", str(ROOT / "spark_jobs" / "image_features.py"),
         "--input", str(SAMPLES / "flowers"), "--output", str(out), "--run-id", "op"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "_runs" / "op.json").read_text())["counts"]["ok"] == 2
