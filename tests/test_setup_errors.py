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
