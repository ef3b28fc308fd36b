"""The JVM class-data archive: keyed to the Java and Spark install, built, and really mapped."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from spark_jobs import class_archive

ROOT = Path(__file__).resolve().parent.parent


def fake_install(tmp_path: Path) -> tuple[Path, Path]:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    (tmp_path / "jdk" / "lib" / "server").mkdir(parents=True)
    (tmp_path / "jdk" / "lib" / "server" / "libjvm.so").write_bytes(b"jvm")
    jars = tmp_path / "spark" / "jars"
    jars.mkdir(parents=True)
    for name in ("spark-core.jar", "scala-library.jar"):
        (jars / name).write_bytes(b"classes")
    return java, tmp_path / "spark"


def test_key_follows_the_java_and_spark_install(tmp_path):
    java, spark = fake_install(tmp_path)
    key = class_archive.install_key(str(java), spark)
    assert class_archive.install_key(str(java), spark) == key  # stable

    jar = spark / "jars" / "spark-core.jar"
    os.utime(jar, ns=(1, 1))  # an upgraded jar: other time (or size)
    assert class_archive.install_key(str(java), spark) != key
    key = class_archive.install_key(str(java), spark)
    (spark / "jars" / "extra.jar").write_bytes(b"x")  # a jar added
    assert class_archive.install_key(str(java), spark) != key
    key = class_archive.install_key(str(java), spark)
    (tmp_path / "jdk" / "lib" / "server" / "libjvm.so").write_bytes(b"another jvm")
    assert class_archive.install_key(str(java), spark) != key


def test_each_java_keeps_its_own_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ETL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    java17, spark = fake_install(tmp_path / "17")
    java25, _ = fake_install(tmp_path / "25")
    paths = {}
    for name, java in (("17", java17), ("25", java25)):
        monkeypatch.setenv("JAVA_HOME", str(java.parent.parent))
        monkeypatch.setattr(class_archive, "spark_home", lambda: spark)
        paths[name] = class_archive.archive_path()
        paths[name].write_bytes(b"")
    assert paths["17"] != paths["25"]

    (spark / "jars" / "extra.jar").write_bytes(b"x")  # Spark upgraded; rebuilt with Java 25
    rebuilt = class_archive.archive_path()
    assert rebuilt != paths["25"]
    rebuilt.write_bytes(b"")
    class_archive.drop_superseded(rebuilt)
    assert sorted((tmp_path / "cache").iterdir()) == sorted([paths["17"], rebuilt])


def test_no_archive_no_option(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ETL_CACHE_DIR", str(tmp_path))
    assert class_archive.java_option() == ""
    path = class_archive.archive_path()
    assert path.parent == tmp_path and path.name.startswith(class_archive.PREFIX)
    path.write_bytes(b"")  # present for this install: used
    assert class_archive.java_option() == f"-XX:SharedArchiveFile={path}"


def test_option_survives_a_cache_path_with_a_space(tmp_path, monkeypatch):
    """Spark splits JVM option strings on whitespace, honouring shell-like quotes."""
    monkeypatch.setenv("IMAGE_ETL_CACHE_DIR", str(tmp_path / "ca che"))
    path = class_archive.archive_path()
    path.parent.mkdir()
    path.write_bytes(b"")
    assert shlex.split(class_archive.java_option()) == [f"-XX:SharedArchiveFile={path}"]


@pytest.mark.spark
def test_built_archive_is_mapped_by_the_jobs_jvm(tmp_path):
    """Build an archive, then run the job and read the JVM's own class-loading log: Spark's
    classes come from the archive ("shared objects file"), not from the jars."""
    env = {**os.environ, "IMAGE_ETL_CACHE_DIR": str(tmp_path / "cache")}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "spark_jobs.class_archive", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)

    assert "none for this Java and Spark install" in cli("status").stdout
    built = cli("build")
    assert built.returncode == 0, built.stderr
    archives = list((tmp_path / "cache").glob("*.jsa"))
    assert len(archives) == 1 and archives[0].stat().st_size > 20 * 2**20
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".build-")]
    assert "in use:" in cli("status").stdout

    def spark_context_source(argv: list[str], name: str) -> str:
        """Run argv; where the driver's JVM loaded SparkContext from, by its own log."""
        logs = tmp_path / f"logs-{name}"
        logs.mkdir()
        run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env={
            **env, "PYSPARK_PYTHON": sys.executable,
            "JAVA_TOOL_OPTIONS": f"-Xlog:class+load=info:file={logs}/%p.log"})
        assert run.returncode == 0, run.stderr
        spark_jvm = [p.read_text() for p in logs.iterdir() if "org.apache.spark.SparkContext " in p.read_text()]
        assert len(spark_jvm) == 1
        return next(x for x in spark_jvm[0].splitlines() if " org.apache.spark.SparkContext " in x)

    line = spark_context_source([sys.executable, "-m", "spark_jobs.image_features", "--demo",
                                 "--output", str(tmp_path / "out")], "local")
    assert "source: shared objects file" in line, line
    line = spark_context_source([str(ROOT / "submit.sh"), "--", "--demo",
                                 "--output", str(tmp_path / "out-submit")], "submit")
    assert "source: shared objects file" in line, line  # submit.sh, client mode

    assert cli("remove").returncode == 0
    assert not list((tmp_path / "cache").glob("*.jsa"))
