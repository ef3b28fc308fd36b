"""One run at a time per output: <output>/_lock.json (spark_jobs/output_lock.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from spark_jobs.output_lock import (
    LOCK_FILE,
    OutputBusy,
    OutputLock,
    OutputLockLost,
    holder_gone,
    process_identity,
)
from tests.conftest import SAMPLES, run_job
from tests.test_incremental import _job, _staging, committed, records


def test_holder_gone_only_for_a_finished_process_of_this_machine():
    assert not holder_gone(process_identity())  # this very process
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        identity = process_identity(child.pid)
        assert not holder_gone(identity)
    finally:
        child.kill()
        child.wait()
    assert holder_gone(identity)  # its pid may come back, with another start time
    elsewhere = dict(identity, machine=["another-host", "boot", "pid:[1]"])
    assert not holder_gone(elsewhere)  # not ours to judge: the lease's age decides
    assert not holder_gone({})  # a lock caught mid-write


def _lock_of(out, run_id: str, **identity) -> None:
    """A lock held by run ``run_id`` of another process (``identity``: its process_identity)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_FILE).write_text(json.dumps({"run_id": run_id, "token": "theirs", **identity}))


@pytest.mark.spark
def test_a_live_runs_lock_makes_a_run_exit_5_and_write_nothing(spark, tmp_path):
    out = tmp_path / "out"
    _lock_of(out, "r1", **process_identity())  # a live process of this machine
    before = (out / LOCK_FILE).read_text()
    for run_id in ("r2", "r1"):  # also a retry of the holder's own run id
        assert run_job("--input", str(SAMPLES), "--output", str(out), "--run-id", run_id) == 5
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # not even a run record
    assert (out / LOCK_FILE).read_text() == before
    # --stale-lock-after 0: no lock taken or looked at
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--stale-lock-after", "0") == 0
    assert (out / LOCK_FILE).read_text() == before


def _as_killed(out, run_id: str) -> None:
    """Make run ``run_id``'s record what a SIGKILL leaves: 'running', no row in runs/."""
    record = out / "_runs" / f"{run_id}.json"
    data = json.loads(record.read_text())
    data.update(status="running", ended_at=None, exit_code=None, duration_s=None)
    record.write_text(json.dumps(data))
    (record.parent / f".{record.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum of it
    shutil.rmtree(out / "runs" / f"run_id={run_id}")


@pytest.mark.spark
def test_a_killed_runs_lock_is_taken_over_and_its_record_closed(spark, tmp_path, caplog):
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES / "flowers"), "--output", str(out), "--run-id", "killed") == 0
    _as_killed(out, "killed")
    gone = dict(process_identity(), pid_started="0")  # this pid, but not this process
    _lock_of(out, "killed", **gone)
    last_seen = float(int(time.time()) - 5)  # recent: only the process being gone frees it
    os.utime(out / LOCK_FILE, (last_seen, last_seen))
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--run-id", "a") == 0
    assert "taking over the lock of run killed" in caplog.text and "its process is gone" in caplog.text
    assert not (out / LOCK_FILE).exists()  # released at the end
    closed = records(out)["killed"]
    assert (closed["status"], closed["exit_code"], closed["ended_at"]) == ("failed", None, None)
    seen = datetime.fromtimestamp(last_seen, timezone.utc)
    assert closed["error"].startswith(f"killed: alive at {seen:%Y-%m-%d %H:%M:%S} UTC")
    assert "gone when run a took the output over" in closed["error"]
    row = spark.read.parquet(str(out / "runs")).where("run_id = 'killed'").first()
    assert (row.status, row.exit_code, row.error) == ("failed", None, closed["error"])
    # a lock of another machine: its age decides
    elsewhere = dict(gone, machine=["another-host", "boot", "pid:[1]"], stale_after=60)
    _lock_of(out, "remote", **elsewhere)
    args = ["--input", str(SAMPLES), "--output", str(out), "--stale-lock-after", "10"]
    old = time.time() - 30  # stale by this run's lease, not by the holder's own
    os.utime(out / LOCK_FILE, (old, old))
    assert run_job(*args, "--run-id", "b") == 5
    old = time.time() - 61
    os.utime(out / LOCK_FILE, (old, old))
    assert run_job(*args, "--run-id", "b") == 0
    assert "not renewed for 61 s" in caplog.text
    assert committed(out)["images"] == ["b"] and not (out / LOCK_FILE).exists()


@pytest.mark.spark
def test_the_lease_is_measured_on_the_file_systems_clock(spark, tmp_path, monkeypatch):
    """A driver whose clock runs an hour ahead must not find a live run's fresh lock stale."""
    from spark_jobs.storage import Storage

    out = tmp_path / "out"
    _lock_of(out, "live", **dict(process_identity(), machine=["another-host", "boot", "pid:[1]"]))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    with pytest.raises(OutputBusy, match="run live .* renewed [0-9] s ago"):
        OutputLock(Storage(spark), str(out), "ahead", stale_after=300).acquire()


@pytest.mark.spark
def test_a_live_run_renews_its_lock_while_it_works(spark, tmp_path):
    """The lease is renewed by a thread of its own, not only before a change: a run busy in a
    long Spark stage keeps its lock (a driver on another host is judged by the lease alone)."""
    from spark_jobs.storage import Storage

    out = tmp_path / "out"
    lock = OutputLock(Storage(spark), str(out), "busy", stale_after=2)  # renewed every 0.4 s
    lock.acquire()
    try:
        first = (out / LOCK_FILE).stat().st_mtime_ns
        time.sleep(3)  # longer than the lease, and not one change asked for
        assert (out / LOCK_FILE).stat().st_mtime_ns > first
        with pytest.raises(OutputBusy, match="run busy .* holds"):
            OutputLock(Storage(spark), str(out), "other", stale_after=2).acquire()
    finally:
        lock.release()


@pytest.mark.spark
def test_a_run_that_lost_its_lock_changes_nothing_more(spark, tmp_path):
    from spark_jobs.storage import Storage

    out = tmp_path / "out"
    storage = Storage(spark)
    lost = []
    lock = OutputLock(storage, str(out), "slow", stale_after=3600, on_lost=lambda: lost.append(1))
    lock.acquire()
    try:
        with pytest.raises(OutputBusy, match="run slow .* holds"):
            OutputLock(Storage(spark), str(out), "other", stale_after=3600).acquire()
        lock.renew()  # still ours: rewritten
        assert json.loads((out / LOCK_FILE).read_text())["run_id"] == "slow"
        storage.write_text(str(out / "kept.txt"), "x")
        # taken over (through Hadoop, like any run) while this run stalled
        storage.overwrite(str(out / LOCK_FILE), json.dumps({"run_id": "taker", "token": "t"}).encode())
        lock.renew()
        assert lock.lost_to == "run taker" and lost == [1]
        for change in (lambda: storage.write_text(str(out / "x.txt"), "x"),
                       lambda: storage.delete(str(out / "kept.txt")),
                       lambda: storage.replace_dir(str(out / "a"), str(out / "b"))):
            with pytest.raises(OutputLockLost, match="run taker took over"):
                change()
    finally:
        lock.release()
    assert json.loads((out / LOCK_FILE).read_text())["run_id"] == "taker"  # theirs: left alone
    assert (out / "kept.txt").exists()


@pytest.mark.spark
def test_a_run_waking_from_a_stall_learns_it_lost_the_lock_before_any_change(spark, tmp_path,
                                                                            monkeypatch):
    """Its renewal thread may not have run yet: a change due while a renewal is overdue
    renews first. A lock removed meanwhile (by a taker that has ended) is lost too."""
    from spark_jobs import output_lock
    from spark_jobs.storage import Storage

    out = tmp_path / "out"
    storage = Storage(spark)
    real = output_lock._clock
    for taken_over, lost_to in ((True, "run taker"), (False, "whoever removed it")):
        lock = OutputLock(storage, str(out), "stalled", stale_after=3600)
        lock.acquire()
        try:
            storage.write_text(str(out / "early.txt"), "x")  # renewed at acquire: no look
            storage.remove(str(out / LOCK_FILE))
            if taken_over:
                storage.create_new(str(out / LOCK_FILE),
                                   json.dumps({"run_id": "taker", "token": "t"}).encode())
            storage.write_text(str(out / "early.txt"), "y")  # not overdue: not looked at
            monkeypatch.setattr(output_lock, "_clock", lambda: real() + 901)  # stopped 15 min
            with pytest.raises(OutputLockLost, match=f"{lost_to} took over"):
                storage.write_text(str(out / "late.txt"), "x")
            assert lock.lost_to == lost_to
        finally:
            lock.release()
            monkeypatch.setattr(output_lock, "_clock", real)
        assert not (out / "late.txt").exists()
        storage.remove(str(out / LOCK_FILE))
    # a renewal overdue with the lock still this run's: renewed, the change goes ahead
    lock = OutputLock(storage, str(out), "slow", stale_after=3600)
    lock.acquire()
    try:
        before = storage.modified_ms(str(out / LOCK_FILE))
        time.sleep(0.05)
        monkeypatch.setattr(output_lock, "_clock", lambda: real() + 901)
        storage.write_text(str(out / "late.txt"), "x")
        assert lock.lost_to is None and storage.modified_ms(str(out / LOCK_FILE)) > before
    finally:
        lock.release()


def test_a_run_stalled_while_renewing_does_not_put_its_lock_back(spark, tmp_path, monkeypatch):
    """Stopped between reading the lock (its own) and rewriting it, past its lease: meanwhile
    its retry took the lock over, committed and removed it. The rewrite that follows must not
    leave the stalled run holding the output (it then committed a second time and exited 0:
    seen once, in the stalled-run test below during a full suite)."""
    from spark_jobs import output_lock
    from spark_jobs.storage import Storage

    out = tmp_path / "out"
    storage, real, lost = Storage(spark), output_lock._clock, []
    lock = OutputLock(storage, str(out), "r1", stale_after=3600, on_lost=lambda: lost.append(1))
    lock.acquire()
    write = storage.overwrite

    def stalled_write(uri: str, content: bytes) -> None:
        storage.remove(str(out / LOCK_FILE))  # the retry took over, committed and ended
        monkeypatch.setattr(output_lock, "_clock", lambda: real() + 3601)
        write(uri, content)

    monkeypatch.setattr(storage, "overwrite", stalled_write)
    try:
        lock.renew()
        assert lock.lost_to is not None and lost == [1]
        assert not (out / LOCK_FILE).exists()
        with pytest.raises(OutputLockLost):
            storage.write_text(str(out / "late.txt"), "x")
    finally:
        monkeypatch.setattr(output_lock, "_clock", real)
        lock.release()


@pytest.mark.spark
def test_a_second_job_while_one_runs_exits_5(spark, tmp_path):
    """Two real jobs on one output: the second exits 5 and the first commits as if alone."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(6):
        shutil.copytree(SAMPLES, inp / f"copy{i}")
    proc = _job("--input", str(inp), "--output", str(out), "--max-side", "0", "--run-id", "first")
    try:
        deadline = time.time() + 120
        while not (out / LOCK_FILE).exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the first job ended before the second started"
        assert run_job("--input", str(SAMPLES), "--output", str(out), "--run-id", "second") == 5
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert committed(out) == {"images": ["first"], "summary": ["first"], "duplicates": ["first"]}
    assert set(records(out)) == {"first"} and not (out / LOCK_FILE).exists()
    assert spark.read.parquet(str(out / "images")).count() == 6 * 9


@pytest.mark.spark
def test_a_stalled_run_and_its_retry_under_the_same_run_id_leave_the_tables_of_one_run(
        spark, tmp_path):
    """A run stopped mid-stage (driver, JVM and workers) past its lease; the scheduler's
    retry, same run id, takes the output over and commits. Resumed, the stalled run learns it
    lost the lock (removed by the retry at its end) and exits 5: it neither takes the lock
    back nor commits what it staged (its own directory: the retry removed its staged files)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(12):
        shutil.copytree(SAMPLES, inp / f"copy{i}")
    args = ["--input", str(inp), "--output", str(out), "--max-side", "0", "--run-id", "r1",
            "--stale-lock-after", "3"]
    proc = _job(*args)
    try:
        deadline = time.time() + 120
        while not _staging(out, "r1") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # into the feature stage
        assert proc.poll() is None, "the job finished before it could be stopped"
        os.killpg(proc.pid, signal.SIGSTOP)
        time.sleep(3.5)  # past its lease
        assert run_job(*args) == 0
        os.killpg(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=120) == 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert committed(out) == {"images": ["r1"], "summary": ["r1"], "duplicates": ["r1"]}
    paths = [r.path for r in spark.read.parquet(str(out / "images")).select("path").collect()]
    assert len(paths) == len(set(paths)) == 12 * 9
    assert records(out)["r1"]["status"] == "succeeded" and not (out / LOCK_FILE).exists()


def _at_once(work, n: int = 4) -> list:
    """``work(i)`` for i in 0..n-1, in n threads released together; their results."""
    start, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.spark
def test_creating_the_lock_on_a_local_disk_has_one_winner(spark, tmp_path):
    """Hadoop's local file system checks, then creates: racing runs could both create the
    lock. Four threads at once, many times over: exactly one creates it each time."""
    from spark_jobs.storage import Storage

    storage = Storage(spark)
    for round_ in range(30):
        uri = str(tmp_path / f"r{round_}" / LOCK_FILE)
        created = _at_once(lambda i, uri=uri: storage.create_new(uri, f"run {i}".encode()))
        won = [i for i, ok in enumerate(created) if ok]
        assert len(won) == 1, f"round {round_}: {won} all created the lock"
        assert storage.read_text(uri) == f"run {won[0]}"
    # a lock deleted by hand leaves Hadoop's checksum of it: the next lock still reads back
    uri = str(tmp_path / LOCK_FILE)
    storage.overwrite(uri, b"old run's lock, renewed through Hadoop")
    assert (tmp_path / f".{LOCK_FILE}.crc").exists()
    os.remove(uri)
    assert storage.create_new(uri, b"new") and storage.read_text(uri) == "new"
    assert not storage.create_new(uri, b"again")


@pytest.mark.spark
def test_runs_taking_over_a_stale_lock_at_once_leave_one_holder(spark, tmp_path):
    """Each would remove the stale lock, then the lock another had just created: a marker
    lets one of them remove it. One left by a run killed midway stops takeovers for a
    minute, not for ever."""
    from spark_jobs.storage import Storage

    storage = Storage(spark)
    dead = {"run_id": "dead", "token": "x", "stale_after": 1, **process_identity(),
            "machine": ["another-host", "boot", "pid:[1]"]}

    def stale_lock(out) -> int:
        storage.overwrite(str(out / LOCK_FILE), json.dumps(dead).encode())
        old = time.time() - 10
        os.utime(out / LOCK_FILE, (old, old))
        return storage.modified_ms(str(out / LOCK_FILE))

    for round_ in range(10):
        out = tmp_path / f"r{round_}"
        stale_lock(out)

        def take(i: int, out=out) -> OutputLock | None:
            lock = OutputLock(storage, str(out), f"run{i}", stale_after=600)
            try:
                lock.acquire()
            except OutputBusy:
                return None
            return lock

        holders = [lock for lock in _at_once(take) if lock is not None]
        for lock in holders:
            lock.release()
        assert len(holders) == 1, f"round {round_}: {len(holders)} runs hold the lock"
        assert holders[0].took_over[0] == "dead"  # the holder closes the dead run's record
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []

    out = tmp_path / "killed-taker"
    marker = out / f"{LOCK_FILE}.{stale_lock(out)}.takeover"
    marker.write_text("a taker killed while it took over")
    with pytest.raises(OutputBusy, match="keeps changing hands"):
        OutputLock(storage, str(out), "next", stale_after=600).acquire()
    old = time.time() - 61
    os.utime(marker, (old, old))
    lock = OutputLock(storage, str(out), "next", stale_after=600)
    lock.acquire()
    lock.release()
    assert not marker.exists()
