"""submit.sh against a real Spark standalone cluster (a master and two 1-core workers on
127.0.0.1, started from the installed PySpark by scripts/standalone_cluster.py).

What these tests prove:
- the job runs on the cluster in client deploy mode and its images/ and summary/ tables
  equal a local-mode run's on the same input (rows compared, not files);
- executors get the project's code only through what submit.sh ships: spark-submit runs
  from a temporary directory, without PYTHONPATH, and driver and executors use a Python
  ("deps-only") that has every dependency but cannot import the project from the checkout;
- failures are visible: a missing input exits 3, a master that is not there exits 1 within
  seconds, cluster deploy mode (unsupported for Python on standalone) exits 2.

The packed-environment mode (--package: venv-pack + --archives) runs when
IMAGE_ETL_TEST_PACKED=1 (it adds about a minute and a half; see docs/cluster.md).
"""

from __future__ import annotations

import importlib.util
import math
import os
import site
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_job

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SUBMIT = ROOT / "submit.sh"
_spec = importlib.util.spec_from_file_location("standalone_cluster",
                                               ROOT / "scripts" / "standalone_cluster.py")
standalone_cluster = sys.modules.setdefault("standalone_cluster",
                                           importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(standalone_cluster)  # scripts/ is not a package

# Sized for the test cluster's 1-core workers (the standalone profile asks for more).
SMALL_EXECUTORS = ("--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=512m",
                   "--conf", "spark.driver.memory=512m")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Master + 2 workers (1 core, 1 GB each); stopped afterwards whatever the tests did."""
    directory = tmp_path_factory.mktemp("standalone")
    c = standalone_cluster.start(workers=2, cores=1, memory="1g", directory=str(directory))
    try:
        yield c
    finally:
        c.stop()
        leftover = [pid for pid in c.pids if standalone_cluster._group_alive(pid)]
        assert not leftover, f"cluster processes still running: {leftover}"


@pytest.fixture(scope="module")
def deps_only_python(tmp_path_factory) -> str:
    """A Python with the test interpreter's packages but not the project, even when the
    project is installed editable (``pip install -e .`` adds a ``__editable__*.pth`` that
    puts the checkout, or an import finder for it, on every sys.path).

    A fresh venv lists our site-packages as a plain path in a .pth file: plain path lines are
    added to sys.path, but .pth files inside that directory (the editable hook among them)
    are not processed.
    """
    venv = tmp_path_factory.mktemp("deps-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = next(venv.glob("lib/python3*/site-packages"))
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = str(venv / "bin" / "python")
    neutral = tmp_path_factory.mktemp("neutral")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def imports(module: str) -> bool:
        return subprocess.run([python, "-c", f"import {module}"], cwd=neutral, env=env,
                              capture_output=True).returncode == 0

    assert imports("numpy, PIL, pillow_heif, pyarrow, pandas, pyspark")
    assert not imports("spark_jobs") and not imports("udfs"), "the project leaks into deps-only python"
    return python


def submit(*args: str, cwd: Path, python: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """./submit.sh run from ``cwd`` (outside the checkout), without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_DRIVER_PYTHON")}
    env.update(PYSPARK_PYTHON=python, SPARK_LOCAL_IP="127.0.0.1")
    return subprocess.run([str(SUBMIT), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_table(output: Path, table: str) -> list[dict]:
    """The table's rows without run_id, sorted: a comparison of contents, not of files."""
    import pyarrow.dataset as ds

    rows = ds.dataset(str(output / table), format="parquet", partitioning="hive").to_table().to_pylist()
    for r in rows:
        r.pop("run_id", None)
    return sorted(rows, key=lambda r: repr(sorted(r.items())))


def same(a, b) -> bool:
    """Equal, floats within 1e-9 relative (sums over differently ordered partitions)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def local_run(spark, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out)) == 0
    return out


def assert_same_tables(cluster_out: Path, local_out: Path) -> None:
    for table in ("images", "summary"):
        got, want = read_table(cluster_out, table), read_table(local_out, table)
        assert len(got) == len(want) > 0, table
        for g, w in zip(got, want, strict=True):
            assert same(g, w), f"{table} differs:\n cluster {g}\n local   {w}"


def test_client_mode_run_equals_local(cluster, deps_only_python, local_run, tmp_path):
    out = tmp_path / "out"
    r = submit("--master", cluster.master_url, "--env", "standalone", *SMALL_EXECUTORS,
               "--conf", f"spark.eventLog.dir=file:{tmp_path / 'events'}",
               "--", "--input", str(SAMPLES), "--output", str(out),
               cwd=tmp_path, python=deps_only_python)
    assert r.returncode == 0, r.stderr[-4000:]
    assert_same_tables(out, local_run)
    assert not (out / "_lock.json").exists()  # the driver released the output
    apps = cluster.status()["completedapps"]
    assert apps and all(a["state"] == "FINISHED" for a in apps)
    # Both workers ran executors, each fetched the shipped zip (and nothing of the checkout).
    for i in range(2):
        shipped = list(Path(cluster.directory, f"worker-{i}").glob("app-*/*/spark_image_etl.zip"))
        assert shipped, f"worker-{i} ran no executor with the shipped code"
    assert list((tmp_path / "events").iterdir()), "no event log for the history server"


@pytest.mark.skipif(os.environ.get("IMAGE_ETL_TEST_PACKED") != "1",
                    reason="packed env (venv-pack, ~110 MB) is slow: set IMAGE_ETL_TEST_PACKED=1 "
                    "(after pip install -e '.[test,pack]')")
def test_packed_env_run_equals_local(cluster, deps_only_python, local_run, tmp_path):
    out = tmp_path / "out"
    r = submit("--master", cluster.master_url, "--env", "standalone", "--package", *SMALL_EXECUTORS,
               "--conf", f"spark.eventLog.dir=file:{tmp_path / 'events'}",
               "--", "--input", str(SAMPLES), "--output", str(out),
               cwd=tmp_path, python=deps_only_python)
    assert r.returncode == 0, r.stderr[-4000:]
    assert_same_tables(out, local_run)
    with tarfile.open(ROOT / "build" / "env.tar.gz") as tar:
        names = tar.getnames()
    assert "bin/python" in names
    assert not [n for n in names if "/spark_jobs/" in n or "/udfs/" in n or "pyspark/" in n]
    unpacked = list(Path(cluster.directory).glob("worker-*/app-*/*/environment/bin/python"))
    assert len(unpacked) >= 2, "executors did not unpack the environment"


def test_missing_input_exits_3(cluster, deps_only_python, tmp_path):
    r = submit("--master", cluster.master_url, "--env", "standalone", *SMALL_EXECUTORS,
               "--conf", f"spark.eventLog.dir=file:{tmp_path / 'events'}",
               "--", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"),
               cwd=tmp_path, python=deps_only_python)
    assert r.returncode == 3, r.stderr[-4000:]
    assert "PATH_NOT_FOUND" in r.stdout + r.stderr and "nowhere" in r.stdout + r.stderr


def test_missing_master_fails_fast(deps_only_python, tmp_path):
    port = standalone_cluster.free_ports(1)[0]  # nobody listens there
    started = time.monotonic()
    r = submit("--master", f"spark://127.0.0.1:{port}", "--env", "standalone",
               "--", "--input", str(SAMPLES), "--output", str(tmp_path / "out"),
               cwd=tmp_path, python=deps_only_python, timeout=60)
    assert r.returncode == 1
    assert f"no Spark master is listening at spark://127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - started < 30


def test_cluster_deploy_mode_refused_on_standalone(cluster, deps_only_python, tmp_path):
    r = submit("--master", cluster.master_url, "--deploy-mode", "cluster",
               "--", "--input", str(SAMPLES), "--output", str(tmp_path / "out"),
               cwd=tmp_path, python=deps_only_python, timeout=60)
    assert r.returncode == 2
    assert "cluster deploy mode" in r.stderr
