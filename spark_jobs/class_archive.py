"""A class-data archive of Spark's JVM, so that local runs start about 3 s sooner.

Every local run starts a JVM that loads ~18,000 classes from Spark's ~250 jars, parsing and
verifying each: about 3 s of CPU before the first task (2000 images: 22.0 -> 18.8 s). Java's
Application Class-Data Sharing (AppCDS) stores those classes, already parsed and verified, in
one file that later JVMs map at start. The archive belongs to one Java and one Spark install,
so it is built on the machine, once, and used by local runs whenever it matches:

    python -m spark_jobs.class_archive build     # about 45 s; ~200 MB in the cache folder
    python -m spark_jobs.class_archive status
    python -m spark_jobs.class_archive remove
    python -m spark_jobs.class_archive option    # the JVM option that maps it (submit.sh), or ""

The archive lives in $IMAGE_ETL_CACHE_DIR, else $XDG_CACHE_HOME/spark-image-etl, else
~/.cache/spark-image-etl. Its name carries the Java it is for and a key of that Java and
Spark's jars (paths, sizes, modification times), so an upgrade of either makes it unused
until rebuilt; each Java on the machine keeps its own. The JVM checks the archive again
itself and silently starts without it if it does not match.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "spark-jvm-"


def cache_dir() -> Path:
    if os.environ.get("IMAGE_ETL_CACHE_DIR"):
        return Path(os.environ["IMAGE_ETL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spark-image-etl"


def spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def install_key(java: str, spark: Path) -> str:
    """What the archive depends on: the Java install and Spark's jars (name, size, time)."""
    java_home = Path(os.path.realpath(java)).parent.parent
    files = [Path(os.path.realpath(java)), *sorted(java_home.glob("lib/server/libjvm.*")),
             *sorted((spark / "jars").glob("*.jar"))]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def java_id(java: str) -> str:
    """Which Java binary (by path): archives of other Javas on the machine are left alone."""
    return hashlib.sha256(os.path.realpath(java).encode()).hexdigest()[:8]


def archive_path() -> Path | None:
    """Where the archive of the current Java and Spark install is (or would be)."""
    from spark_jobs.session import java_executable

    java = java_executable()
    if java is None:
        return None
    return cache_dir() / f"{PREFIX}{java_id(java)}-{install_key(java, spark_home())}.jsa"


def java_option() -> str:
    """The JVM option that maps the archive, or "" when there is none for this install; quoted
    for an options string (spark.driver.extraJavaOptions, --driver-java-options)."""
    from spark_jobs.session import java_arg

    path = archive_path()
    if path is None or not path.is_file():
        return ""
    return java_arg(f"-XX:SharedArchiveFile={path}")


def build() -> Path:
    """Run the job on the bundled samples listing the classes it loads, then archive them.

    The archive is dumped by a JVM started through spark-submit exactly as PySpark starts
    its own (same class path, same module options), written under a temporary name and
    renamed, so a concurrent run never maps a half-written file.
    """
    from spark_jobs.session import java_arg, local_java_options

    target = archive_path()
    if target is None:
        raise RuntimeError("no java found: install Java 17+ or set JAVA_HOME")
    target.parent.mkdir(parents=True, exist_ok=True)
    base = local_java_options(with_archive=False)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes.lst"
        log.info("listing the classes a run loads (the job on the bundled samples)")
        _run([sys.executable, "-m", "spark_jobs.image_features", "--demo",
              "--output", str(Path(tmp) / "demo"), "--log-level", "WARNING",
              "--conf", f"spark.driver.extraJavaOptions={base} "
                        + java_arg(f"-XX:DumpLoadedClassList={classes}")])
        partial = Path(tmp) / "archive.jsa"
        log.info("archiving %d classes", sum(1 for _ in classes.open()))
        dump_opts = " ".join([base, "-Xshare:dump", java_arg(f"-XX:SharedClassListFile={classes}"),
                              java_arg(f"-XX:SharedArchiveFile={partial}"),
                              "-Xlog:cds=off -Xlog:cds+heap=off"])
        # -Xshare:dump makes the JVM write the archive and exit before running anything.
        _run([str(spark_home() / "bin" / "spark-submit"), "--master", "local[1]",
              "--conf", f"spark.driver.extraJavaOptions={dump_opts}", "pyspark-shell"])
        if not partial.is_file():
            raise RuntimeError("the JVM wrote no archive")
        os.replace(partial, target)
    drop_superseded(target)
    return target


def drop_superseded(target: Path) -> None:
    """Delete the archives of the same Java made for earlier installs (they can never match
    again); those of other Javas on the machine (JAVA_HOME switched per job) stay."""
    same_java = target.name.rsplit("-", 1)[0]
    for old in target.parent.glob(f"{same_java}-*.jsa"):
        if old != target:
            old.unlink()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{Path(argv[0]).name} exited with {done.returncode}:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.class_archive",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("action", choices=("build", "status", "remove", "option"))
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.action == "option":
        print(java_option())
        return 0
    path = archive_path()
    if a.action == "build":
        try:
            path = build()
        except (RuntimeError, OSError) as e:
            log.error("cannot build the class-data archive: %s", e)
            return 1
        print(f"built {path} ({path.stat().st_size / 2**20:.0f} MB)")
    elif a.action == "status":
        if path is not None and path.is_file():
            print(f"in use: {path} ({path.stat().st_size / 2**20:.0f} MB)")
        else:
            print(f"none for this Java and Spark install (would be {path}); "
                  "build one with: python -m spark_jobs.class_archive build")
    else:
        for old in cache_dir().glob(f"{PREFIX}*.jsa"):
            old.unlink()
            print(f"removed {old}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
