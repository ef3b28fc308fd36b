"""The one place that builds the SparkSession (and checks what Spark needs first)."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys

from spark_jobs.config import JobConfig, conf_file, load_properties

log = logging.getLogger(__name__)
MIN_JAVA = 17


class SetupError(RuntimeError):
    """Something outside the job (Java, Spark) is missing or broken."""


def java_executable() -> str | None:
    """The java that Spark will start (JAVA_HOME first, then PATH), if there is one."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return java if java and os.path.exists(java) else None


def java_major_version() -> int | None:
    """Major version of the java that Spark will use."""
    java = java_executable()
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major  # "1.8" -> 8


def check_java() -> None:
    major = java_major_version()
    if major is None:
        raise SetupError(
            f"Java {MIN_JAVA}+ is required by Spark but no java was found: install a JDK "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    if major < MIN_JAVA:
        raise SetupError(f"Java {MIN_JAVA}+ is required by Spark, found Java {major}: "
                         "install a newer JDK or point JAVA_HOME at one.")


def started_by_spark_submit() -> bool:
    """spark-submit starts the Python driver with a gateway to its already running JVM."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_properties(env: str = "local") -> dict[str, str]:
    """Spark settings of conf/spark-<env>.properties (empty, with a warning, if missing)."""
    props_file = conf_file(f"spark-{env}.properties")
    props = load_properties(props_file) if props_file.exists() else {}
    if not props:
        log.warning("no %s: using Spark's defaults", props_file)
    return props


def java_arg(arg: str) -> str:
    """One JVM option as Spark's launcher reads an options string: it splits on whitespace but
    honours shell-like quotes (CommandBuilderUtils.parseOptionString), so a path with a space
    stays one option."""
    return shlex.quote(arg)


def local_java_options(props: dict[str, str] | None = None, with_archive: bool = True) -> str:
    """The JVM options of a local run: the properties file's, plus our log4j configuration
    and, when one was built for this install, the class-data archive (class_archive.py)."""
    from spark_jobs import class_archive

    opts = (local_properties() if props is None else props).get("spark.driver.extraJavaOptions", "")
    log4j = conf_file("log4j2.properties")
    if log4j.exists() and "log4j2.configurationFile" not in opts:
        opts += " " + java_arg(f"-Dlog4j2.configurationFile=file:{log4j}")
    if with_archive:
        archive = class_archive.java_option()
        if archive:
            log.info("JVM classes from the class-data archive (%s)", shlex.split(archive)[0].split("=", 1)[1])
            opts += f" {archive}"
        else:
            log.info("no JVM class-data archive for this Java and Spark: "
                     "'python -m spark_jobs.class_archive build' makes local runs start ~3 s sooner")
    return opts.strip()


def get_session(cfg: JobConfig, app_name: str = "spark-image-etl"):
    """Reuse the active session or build one: under spark-submit, from what it was given;
    otherwise from conf/spark-<env>.properties, --master and --conf, plus (local mode) the
    class-data archive and the Python daemon that imports compiled PySpark (python_daemon.py)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in cfg.spark_conf.items():
            active.conf.set(key, value)
        return active, False
    # Executors must run the driver's Python (same numpy, Pillow, pyarrow).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if not started_by_spark_submit():
        check_java()
        props = local_properties(cfg.env)
        props["spark.driver.extraJavaOptions"] = local_java_options(props)
        for key, value in props.items():
            builder = builder.config(key, value)
        master = cfg.master or "local[*]"
        builder = builder.master(master)
        if master.startswith("local"):  # workers run here, where this package is installed
            use_this_python()
            builder = builder.config("spark.python.daemon.module", "spark_jobs.python_daemon")
        make_event_log_dir({**props, **cfg.spark_conf})
    elif cfg.master:
        builder = builder.master(cfg.master)
    for key, value in cfg.spark_conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN" if cfg.log_level == "DEBUG" else "ERROR")
    return spark, True


def set_unless_given(spark, settings: dict, given: dict[str, str] | None = None) -> None:
    """Set the job's own SQL settings on the session, except those given to Spark: the job's
    --conf (``given``), spark-submit's --conf, a profile, spark-defaults.conf."""
    started_with = spark.sparkContext.getConf()
    for key, value in settings.items():
        if key not in (given or {}) and not started_with.contains(key):
            spark.conf.set(key, str(value))


def use_this_python() -> None:
    """Local workers run this very Python: a PYSPARK_PYTHON inherited from the shell (another
    project's, a cluster's) would lack this package, or other versions of its libraries."""
    given = os.environ["PYSPARK_PYTHON"]
    if os.path.abspath(shutil.which(given) or given) != os.path.abspath(sys.executable):
        log.warning("PYSPARK_PYTHON=%s is not this Python: local workers run %s", given,
                    sys.executable)
        os.environ["PYSPARK_PYTHON"] = sys.executable


def make_event_log_dir(conf: dict[str, str]) -> None:
    """With event logging on, Spark refuses to start when its directory is missing (the
    standalone profile's /tmp/spark-events, on a fresh machine): a local one is made, as
    submit.sh does."""
    if conf.get("spark.eventLog.enabled", "false").strip().lower() != "true":
        return
    uri = conf.get("spark.eventLog.dir", "file:///tmp/spark-events").strip()
    if uri.startswith(("file:", "/")):
        os.makedirs("/" + uri.removeprefix("file:").lstrip("/"), exist_ok=True)


def stop_session(spark) -> None:
    """Stop a session that get_session built, at the end of a run.

    SparkSession.stop() stops the JVM side in ~0.1 s, then waits for PySpark's accumulator
    server thread, whose handler polls its socket once a second (0.9 s per run, measured).
    The job uses no accumulators: the server is told to end and is not waited for; its
    daemon thread ends with the process.
    """
    server = getattr(spark.sparkContext, "_accumulatorServer", None)
    if server is not None and hasattr(server, "server_shutdown"):
        server.server_shutdown = True  # its handler returns at its next poll
        spark.sparkContext._accumulatorServer = None  # so stop() does not wait for it
    spark.stop()
