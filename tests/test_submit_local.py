"""submit.sh in local mode, as a user runs it: ./submit.sh -- --input X --output Y."""

from __future__ import annotations

import json
import os
import shutil
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


@pytest.mark.parametrize("how", ["SIGTERM to submit.sh", "SIGINT to its group"])
def test_sigterm_to_submit_sh_stops_the_run_in_order(tmp_path, how):
    """Sent to spark-submit's JVM, SIGTERM stopped the SparkContext under the driver: the run's
    record said "running" for good and its lock stayed. submit.sh passes it to the driver.
    Ctrl-C (SIGINT to the terminal's whole group) reaches the driver itself."""
    import signal
    import time

    signum = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT

    from tests.test_incremental import _staging

    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(12):
        shutil.copytree(SAMPLES, inp / f"copy{i}")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.Popen(
        [str(ROOT / "submit.sh"), "--", "--input", str(inp), "--output", str(out), "--max-side", "0",
         "--run-id", "t1"],
        cwd=tmp_path, env=env, stdout=(tmp_path / "log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while not _staging(out, "t1") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the job finished before it could be stopped"
        if signum == signal.SIGTERM:
            proc.send_signal(signum)
        else:
            os.killpg(proc.pid, signum)
        assert proc.wait(timeout=60) == 128 + signum
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    record = json.loads((out / "_runs" / "t1.json").read_text())
    name = signal.Signals(signum).name
    assert (record["status"], record["exit_code"], record["error"]) == ("failed", 128 + signum, f"stopped by {name}")
    assert not (out / "_lock.json").exists() and not (out / "images").exists()
    log = (tmp_path / "log").read_text()  # the job's own line, not Spark's traces of cancelled jobs
    assert f"run t1 stopped by {name}" in log and "\tat " not in log, log[-3000:]


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


def test_submit_sh_builds_elsewhere_when_the_checkout_is_read_only(tmp_path):
    """A checkout deployed read-only (an image run by another user): the code's zip goes to
    the user's cache instead of failing on build/. (Simulated for root, who may write
    anywhere: build/ is a file there, so it cannot be made a folder.)"""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy2(ROOT / "submit.sh", checkout)  # a link would lead it back to this checkout
    for name in ("spark_jobs", "udfs", "conf", "samples"):
        (checkout / name).symlink_to(ROOT / name)
    (checkout / "build").write_text("not a folder")
    cache = tmp_path / "cache"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, XDG_CACHE_HOME=str(cache))
    env.pop("IMAGE_ETL_BUILD_DIR", None)
    proc = subprocess.run([str(checkout / "submit.sh"), "--", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage:" in proc.stdout
    assert (cache / "spark-image-etl" / "build" / "spark_image_etl.zip").is_file()

    env["IMAGE_ETL_BUILD_DIR"] = str(tmp_path / "chosen")  # set: used, and no fallback
    proc = subprocess.run([str(checkout / "submit.sh"), "--", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and (tmp_path / "chosen" / "spark_image_etl.zip").is_file()


def test_a_checkout_path_with_a_space_starts_the_jvm(tmp_path):
    """Spark splits driver JVM options on whitespace: the log4j option (a path in the checkout)
    must come through quoted, from submit.sh and from a plain python run alike."""
    checkout = tmp_path / "with space" / "checkout"
    checkout.mkdir(parents=True)
    shutil.copy2(ROOT / "submit.sh", checkout)  # a link would lead it back to this checkout
    for name in ("spark_jobs", "udfs", "conf", "samples"):
        (checkout / name).symlink_to(ROOT / name)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("IMAGE_ETL_CONF_DIR", None)
    proc = subprocess.run([str(checkout / "submit.sh"), "--", "--demo", "--output", str(tmp_path / "o1")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    env["IMAGE_ETL_CONF_DIR"] = str(checkout / "conf")  # the package resolves to this checkout
    proc = subprocess.run([sys.executable, "-m", "spark_jobs.image_features", "--demo",
                           "--output", str(tmp_path / "o2")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def fake_spark_home(tmp_path):
    """A SPARK_HOME whose spark-submit prints its arguments, one a line."""
    spark = tmp_path / "spark"
    (spark / "bin").mkdir(parents=True)
    (spark / "bin" / "spark-submit").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (spark / "bin" / "spark-submit").chmod(0o755)
    return spark


def test_submit_sh_needs_executors_python_only_on_the_nodes(tmp_path):
    """docs/cluster.md's form: PYSPARK_PYTHON names a Python that exists only on the nodes;
    submit.sh does its own work with this machine's and hands the nodes' to Spark."""
    env = dict(os.environ, PYSPARK_PYTHON="/opt/image-etl/bin/python", SPARK_HOME=str(fake_spark_home(tmp_path)),
               IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--master", "yarn", "--deploy-mode", "cluster", "--env", "yarn",
                           "--", "--input", "hdfs:///imgs", "--output", "hdfs:///out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "spark.pyspark.python=/opt/image-etl/bin/python" in proc.stdout.splitlines()
    assert (tmp_path / "build" / "spark_image_etl.zip").is_file()
    # the cluster's spark-defaults.conf applies too (--properties-file alone skips it)
    assert "--load-spark-defaults" in proc.stdout.splitlines()


@pytest.mark.parametrize(("master", "profile"), [
    ("yarn", "yarn"), ("k8s://https://api:6443", "kubernetes"), ("local[2]", "local"),
    ("mesos://m:5050", "cluster")])  # spark://: submit.sh first checks that a master listens
def test_submit_sh_takes_the_profile_of_the_master_unless_told(tmp_path, master, profile):
    """--master yarn without --env loaded spark-local.properties (UI off, 2 shuffle partitions)."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_HOME=str(fake_spark_home(tmp_path)),
               IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("IMAGE_ETL_ENV", None)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--master", master, "--", "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    given = proc.stdout.splitlines()
    assert given[given.index("--properties-file") + 1] == str(ROOT / "conf" / f"spark-{profile}.properties")
    env["IMAGE_ETL_ENV"] = "cluster"  # said: it wins
    proc = subprocess.run([str(ROOT / "submit.sh"), "--master", master, "--", "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    given = proc.stdout.splitlines()
    assert given[given.index("--properties-file") + 1] == str(ROOT / "conf" / "spark-cluster.properties")


def test_submit_sh_merges_the_users_files_with_its_own(tmp_path):
    """spark-submit keeps the last --files / --py-files: a user's dropped job.properties or
    the code's zip."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_HOME=str(fake_spark_home(tmp_path)),
               IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    proc = subprocess.run([str(ROOT / "submit.sh"), "--files", "/x/a.conf", "--py-files=/x/b.zip",
                           "--archives", "/x/c d.tgz#c", "--files", "/x/e.conf", "--", "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    given = proc.stdout.splitlines()
    after = {flag: [given[i + 1] for i, g in enumerate(given) if g == flag]
             for flag in ("--files", "--py-files", "--archives")}
    assert after == {"--files": [f"{ROOT}/conf/job.properties,/x/a.conf,/x/e.conf"],
                     "--py-files": [f"{tmp_path}/build/spark_image_etl.zip,/x/b.zip"],
                     "--archives": ["/x/c d.tgz#c"]}


def test_submit_sh_adds_to_the_drivers_java_options_spark_would_take(tmp_path):
    """--driver-java-options replaces spark.driver.extraJavaOptions: submit.sh's own options
    (log4j, class-data archive) dropped a cluster's (spark-defaults.conf: -Dhdp.version=...,
    a krb5.conf) and the caller's --conf."""
    spark = fake_spark_home(tmp_path)
    (spark / "conf").mkdir()
    (spark / "conf" / "spark-defaults.conf").write_text(
        "spark.master yarn\nspark.driver.extraJavaOptions   -Dhdp.version=3.1.5 -Dx=1\n")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_HOME=str(spark),
               IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("SPARK_CONF_DIR", None)

    def java_options(*args):
        proc = subprocess.run([str(ROOT / "submit.sh"), *args, "--", "--help"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        given = proc.stdout.splitlines()
        return given[given.index("--driver-java-options") + 1]

    assert java_options("--master", "yarn").startswith("-Dhdp.version=3.1.5 -Dx=1 -Dlog4j2.")
    assert java_options("--master", "yarn", "--conf", "spark.driver.extraJavaOptions=-Dmine=2"
                        ).startswith("-Dmine=2 -Dlog4j2.")
    assert java_options("--master", "yarn", "--conf=spark.driver.extraJavaOptions=-Dmine=3"
                        ).startswith("-Dmine=3 -Dlog4j2.")
    # the profile's (local: -XX:TieredStopAtLevel=1 ...) wins over spark-defaults.conf, as in Spark
    assert java_options("--master", "local[2]").startswith("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.")


def test_submit_sh_says_the_demo_needs_this_machines_disk(tmp_path):
    """--demo in cluster deploy mode sent a driver to a node without the samples."""
    env = dict(os.environ, PYSPARK_PYTHON="/opt/image-etl/bin/python", SPARK_HOME=str(fake_spark_home(tmp_path)),
               IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    submit = [str(ROOT / "submit.sh"), "--master", "yarn"]
    proc = subprocess.run([*submit, "--deploy-mode", "cluster", "--", "--demo"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--demo runs on this checkout's samples/" in proc.stderr
    proc = subprocess.run([*submit, "--", "--demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "executors on other machines cannot reach them" in proc.stderr


def test_submit_sh_in_cluster_deploy_mode_needs_the_nodes_python(tmp_path):
    """This machine's Python path was handed to the nodes, where the driver then failed."""
    env = dict(os.environ, SPARK_HOME=str(fake_spark_home(tmp_path)), IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        env.pop(name, None)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--master", "yarn", "--deploy-mode", "cluster", "--",
                           "--input", "hdfs:///imgs", "--output", "hdfs:///out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "set PYSPARK_PYTHON to the Python the nodes have" in proc.stderr


def test_submit_sh_finds_spark_submit_whatever_the_working_directory_holds(tmp_path):
    """`python -c` imports from the working directory first: a stray pyspark.py there made
    submit.sh say there was no spark-submit."""
    (tmp_path / "pyspark.py").write_text("raise ImportError('not this one')\n")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("SPARK_HOME", None)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--allow-empty-input" in proc.stdout, proc.stderr[-2000:]


def test_submit_sh_says_when_there_is_no_spark_submit(tmp_path):
    """No SPARK_HOME and a local Python without pyspark: one line, not a traceback."""
    bare = tmp_path / "bin" / "python3"  # a Python that cannot import pyspark
    bare.parent.mkdir()
    bare.write_text(f'#!/bin/sh\nPYTHONPATH= exec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    env = dict(os.environ, PYSPARK_PYTHON=str(bare), IMAGE_ETL_BUILD_DIR=str(tmp_path / "build"))
    for name in ("SPARK_HOME", "PYSPARK_DRIVER_PYTHON"):
        env.pop(name, None)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("submit.sh: no spark-submit") and len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("option", ["--master", "--env", "--deploy-mode"])
def test_submit_sh_says_when_an_option_lacks_its_value(option):
    """The last word of the command: it was 'unbound variable', exit 1 (retry)."""
    proc = subprocess.run([str(ROOT / "submit.sh"), option], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and f"{option} needs a value" in proc.stderr


@pytest.mark.parametrize("args", [["--demo"], ["--master", "local[2]", "--output=/tmp/x"]])
def test_submit_sh_says_when_job_options_come_before_the_separator(args):
    """spark-submit printed its whole usage and exited 1, which a scheduler retries."""
    proc = subprocess.run([str(ROOT / "submit.sh"), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"submit.sh: {args[-1]} is the job's option: put it after '--'")


def test_submit_sh_knows_every_job_option_spark_submit_does_not_share():
    from spark_jobs.config import build_parser

    script = (ROOT / "submit.sh").read_text()
    listed = set(script.split('job_options="', 1)[1].split('"', 1)[0].split())
    job = {o for a in build_parser({})._actions for o in a.option_strings if o.startswith("--")}
    assert listed == job - {"--conf", "--env", "--help", "--master"}


def test_submit_sh_help_is_its_whole_header():
    lines = (ROOT / "submit.sh").read_text().splitlines()[1:]
    header = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines[:next(
        i for i, ln in enumerate(lines) if not ln.startswith("#"))]]
    proc = subprocess.run([str(ROOT / "submit.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.splitlines() == header
