"""Failures outside the job are reported clearly, with the infrastructure exit code."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_missing_java_is_said_clearly_and_exits_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env.update(JAVA_HOME=str(tmp_path / "no-jdk"), PATH=os.path.dirname(sys.executable))
    proc = subprocess.run(
        [sys.executable, "-m", "spark_jobs.image_features", "--demo", "--output", str(tmp_path / "o")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Java 17+ is required" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_java_version_is_parsed_from_both_styles(monkeypatch):
    from spark_jobs import session

    for text, major in [('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_292"', 8),
                        ('openjdk version "21" 2023-09-19', 21)]:
        monkeypatch.setattr(session.subprocess, "run",
                            lambda *a, out=text, **k: subprocess.CompletedProcess(a, 0, "", out))
        monkeypatch.setattr(session.os.path, "exists", lambda p: True)
        monkeypatch.setenv("JAVA_HOME", "/jdk")
        assert session.java_major_version() == major


class FakeJavaException:
    """What py4j hands over for an exception the JVM raised: toString, getCause, equals."""

    def __init__(self, text: str, cause=None):
        self.text, self.cause = text, cause

    def toString(self):  # noqa: N802 - Java's names
        return self.text

    def getCause(self):  # noqa: N802
        return self.cause

    def equals(self, other):
        return other is self


def test_jvm_failures_are_named_by_the_java_exception_and_its_root_cause():
    from spark_jobs.exit_codes import first_line

    root = FakeJavaException("java.io.IOException: No space left on device\n\tat ...")
    wrapped = FakeJavaException("org.apache.spark.SparkException: Job aborted.\n\tat ...",
                                FakeJavaException("org.apache.spark.SparkException: Task failed", root))
    error = Exception("An error occurred while calling o431.parquet.\n: trace")
    error.java_exception = wrapped
    assert first_line(error) == ("org.apache.spark.SparkException: Job aborted. "
                                 "(cause: java.io.IOException: No space left on device)")
    error.java_exception = root
    assert first_line(error) == "java.io.IOException: No space left on device"
    assert first_line(ValueError("two\nlines")) == "ValueError: two"


def test_python_worker_failures_are_named_by_the_error_their_traceback_ends_with():
    from spark_jobs.exit_codes import first_line

    traceback = ('Traceback (most recent call last):\n  File "/w/worker.py", line 1, in main\n'
                 '    import numpy\nModuleNotFoundError: No module named \'numpy\'\n')

    class PythonException(Exception):  # pyspark.errors.PythonException, as str() shows it
        pass

    error = PythonException(f"An exception was thrown from the Python worker:\n{traceback}")
    assert first_line(error) == "PythonException: ModuleNotFoundError: No module named 'numpy'"

    java = "org.apache.spark.api.python.PythonException: " + traceback + "\n\tat org.apache.spark.X.y(X.scala:1)"
    root = FakeJavaException(java)
    wrapped = FakeJavaException("org.apache.spark.SparkException: Job aborted due to stage failure: "
                                "Lost task 0.0: " + java + "\n\nDriver stacktrace:\n\tat z", root)
    error = Exception("An error occurred while calling o431.parquet.\n: trace")
    error.java_exception = wrapped
    assert first_line(error) == ("org.apache.spark.SparkException: Job aborted due to stage failure: "
                                 "Lost task 0.0: org.apache.spark.api.python.PythonException: "
                                 "ModuleNotFoundError: No module named 'numpy'")


def test_local_workers_run_this_python_whatever_the_shell_exports(monkeypatch, caplog):
    from spark_jobs import session

    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/python3")  # not this venv's: no Pillow there
    session.use_this_python()
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    assert "PYSPARK_PYTHON=/usr/bin/python3 is not this Python" in caplog.text
    caplog.clear()
    session.use_this_python()  # this one: nothing to say
    monkeypatch.setattr(sys, "executable", os.path.join(os.path.dirname(sys.executable), "..",
                                                        os.path.basename(os.path.dirname(sys.executable)),
                                                        os.path.basename(sys.executable)))
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # called as ../.venv/bin/python
    session.use_this_python()
    assert not caplog.text


def test_a_local_event_log_directory_is_made_before_spark_needs_it(tmp_path):
    from spark_jobs.session import make_event_log_dir

    make_event_log_dir({"spark.eventLog.dir": f"file://{tmp_path}/off"})  # logging off
    make_event_log_dir({"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file://{tmp_path}/a/b"})
    make_event_log_dir({"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"{tmp_path}/c"})
    make_event_log_dir({"spark.eventLog.enabled": "true", "spark.eventLog.dir": "hdfs:///spark-history"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"] and (tmp_path / "a" / "b").is_dir()
