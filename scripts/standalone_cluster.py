"""A throwaway Spark standalone cluster on 127.0.0.1: one master, N workers, free ports.

    .venv/bin/python scripts/standalone_cluster.py start [--workers 2] [--cores 1] [--memory 1g] [--dir D]
    .venv/bin/python scripts/standalone_cluster.py stop --dir D

(any Python with pyspark installed, or with SPARK_HOME set).

``start`` prints the master URL (spark://127.0.0.1:PORT) and the web UI URL, writes
``D/cluster.json`` (URLs and process ids) and leaves the daemons running; ``stop`` kills
them. From Python (what the tests do)::

    with standalone_cluster.running(workers=2) as cluster:
        ... cluster.master_url ...

The daemons come from the installed PySpark (``pyspark/bin/spark-class``), each in its own
process group so that stopping kills the JVM and anything it started (executors, Python
workers). Every worker has its own work directory under the cluster's directory, which
also holds the daemons' logs (``master.log``, ``worker-N.log``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "cluster.json"


def spark_home() -> Path:
    """SPARK_HOME if set, else the pip-installed pyspark package (it has bin/ and jars/)."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now on 127.0.0.1 (all held open together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Cluster:
    master_url: str
    webui_url: str
    directory: str
    pids: list[int] = field(default_factory=list)  # each the leader of its process group

    def status(self, timeout: float = 2.0) -> dict:
        """The master's JSON status (workers, apps), as its web UI serves it at /json."""
        with urllib.request.urlopen(self.webui_url + "/json", timeout=timeout) as r:
            return json.load(r)

    def alive_workers(self) -> int:
        try:
            return sum(w.get("state") == "ALIVE" for w in self.status().get("workers", []))
        except (OSError, ValueError):
            return 0  # the master is not up yet

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every process group (workers first), SIGKILL what is left after ``grace`` s."""
        for pid in reversed(self.pids):
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.pids):
            time.sleep(0.2)
        for pid in self.pids:
            _signal_group(pid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # reap our own children (no zombies in long test runs)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still counts as a group member: reap it if it is our child
    with contextlib.suppress(ChildProcessError):
        pid, _ = os.waitpid(pgid, os.WNOHANG)
        if pid == pgid:
            return _group_alive(pgid)
    return True


def _daemon(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    """Start one daemon in a new session (its own process group); returns its pid."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    return proc.pid


def start(workers: int = 2, cores: int = 1, memory: str = "1g", directory: str | None = None,
          timeout: float = 90.0) -> Cluster:
    """Start a master and ``workers`` workers on free ports; return once all are registered.

    On any failure (a daemon dies, registration times out) everything started is stopped
    and RuntimeError names the log to read.
    """
    home = spark_home()  # first: without Spark, nothing is left behind
    base = Path(directory or tempfile.mkdtemp(prefix="spark-standalone-"))
    base.mkdir(parents=True, exist_ok=True)
    conf_dir = base / "conf"  # empty: no spark-defaults.conf from elsewhere leaks in
    conf_dir.mkdir(exist_ok=True)
    spark_class = str(home / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",  # master and worker JVMs; executors are sized apart
        "SPARK_LOG_DIR": str(base),
        # REST submission server off: no port 6066 to collide with other developers' runs
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    env.pop("PYTHONPATH", None)  # daemons and their executors must not inherit ours
    master_port, master_ui, *rest = free_ports(2 + 2 * workers)
    cluster = Cluster(master_url=f"spark://127.0.0.1:{master_port}",
                      webui_url=f"http://127.0.0.1:{master_ui}", directory=str(base))
    try:
        cluster.pids.append(_daemon(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(master_port), "--webui-port", str(master_ui)],
            base / "master.log", env))
        for i in range(workers):
            work = base / f"worker-{i}"
            work.mkdir(exist_ok=True)
            port, ui = rest[2 * i], rest[2 * i + 1]
            cluster.pids.append(_daemon(
                [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(ui), "--cores", str(cores),
                 "--memory", memory, "--work-dir", str(work), cluster.master_url],
                base / f"worker-{i}.log", {**env, "SPARK_WORKER_DIR": str(work)}))
        _save(cluster)
        deadline = time.monotonic() + timeout
        while cluster.alive_workers() < workers:
            for pid, name in zip(cluster.pids, ["master"] + [f"worker-{i}" for i in range(workers)],
                                 strict=False):
                if not _group_alive(pid):
                    raise RuntimeError(f"{name} exited during start-up: see {base}/{name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cluster.alive_workers()} of {workers} workers registered "
                                   f"after {timeout:.0f} s: see the logs in {base}")
            time.sleep(0.5)
    except BaseException:
        cluster.stop(grace=2.0)
        raise
    return cluster


@contextlib.contextmanager
def running(**kwargs):
    """A started cluster for a ``with`` block; always stopped afterwards, also on errors."""
    cluster = start(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


def _save(cluster: Cluster) -> None:
    (Path(cluster.directory) / STATE_FILE).write_text(json.dumps(asdict(cluster), indent=2))


def load(directory: str) -> Cluster:
    return Cluster(**json.loads((Path(directory) / STATE_FILE).read_text()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start master and workers, print the master URL")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--cores", type=int, default=1, help="cores per worker")
    s.add_argument("--memory", default="1g", help="memory per worker for its executors")
    s.add_argument("--dir", help="logs, work dirs and cluster.json (default: a new temp dir)")
    s.add_argument("--timeout", type=float, default=90.0)
    t = sub.add_parser("stop", help="stop the cluster started with --dir DIR")
    t.add_argument("--dir", required=True)
    a = p.parse_args(argv)
    if a.command == "start":
        try:
            c = start(a.workers, a.cores, a.memory, a.dir, a.timeout)
        except ImportError:
            print(f"standalone_cluster: no pyspark in {sys.executable}: run it with the project's "
                  f"Python (.venv/bin/python), or set SPARK_HOME", file=sys.stderr)
            return 1
        except RuntimeError as e:
            print(f"standalone_cluster: {e}", file=sys.stderr)
            return 1
        print(f"master:  {c.master_url}\nweb UI:  {c.webui_url}\ndir:     {c.directory}\n"
              f"stop:    {shlex.quote(sys.executable)} {shlex.quote(sys.argv[0])} stop "
              f"--dir {shlex.quote(str(c.directory))}")
        return 0
    load(a.dir).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
