"""One run at a time per output: ``<output>/_lock.json``, a lease its run keeps renewing.

Two runs writing one output undo each other's work: each removes the other's staged files
(leftovers, as it sees them) and the runs its own run supersedes. So a run first creates
the lock file, if absent, and rewrites it every ``stale_after / 5`` seconds while it runs. A
run that finds the lock renewed within ``stale_after`` seconds by a live run exits with
OUTPUT_BUSY and touches nothing. A lock left by a run that was killed outright (SIGKILL, a
lost node) is taken over once it is older than the ``stale_after`` that run declared in
it, or at once when that run's process, on this same machine, is gone. The lock's age is
measured on the file system's clock (Storage.clock_ms), never against the driver's.

A run whose lock was taken over (its driver stalled longer than ``stale_after``) learns it
at its next renewal: its Spark jobs are cancelled and every later change to the output
(Storage.before_change) raises OutputLockLost, so it ends without committing. A change due
while the last renewal is overdue (the process was stopped, or its machine slept) renews
first, so a run waking from a stall cannot commit before it learns.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

from spark_jobs.storage import Storage

log = logging.getLogger(__name__)
LOCK_FILE = "_lock.json"


def _clock() -> float:
    """Seconds on a clock that also counts time spent suspended (Linux), else monotonic."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


class OutputBusy(Exception):
    """Another run holds the output's lock."""


class OutputLockLost(Exception):
    """This run's lock was taken over by another run: it must not change the output."""


def process_identity(pid: int | None = None) -> dict:
    """Who a process is: its machine (host name, boot and pid namespace, so that containers
    sharing a host name are told apart) and the pid with its start time (pids are reused)."""
    pid = os.getpid() if pid is None else pid

    def read(path: str) -> str | None:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    stat = read(f"/proc/{pid}/stat")
    # field 22 (start time in clock ticks since boot), counted after the ')' closing the name
    started = stat.rsplit(")", 1)[1].split()[19] if stat else None
    machine = [socket.gethostname(), read("/proc/sys/kernel/random/boot_id"), namespace]
    return {"machine": machine, "pid": pid, "pid_started": started}


def holder_gone(holder: dict) -> bool:
    """Whether ``holder`` (a lock's process_identity) was a process of this machine that no
    longer runs. Unknown (another machine, no /proc): False, the lease's age decides."""
    here = process_identity()
    pid = holder.get("pid")
    if holder.get("machine") != here["machine"] or None in here["machine"]:
        return False
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive (its /proc may be hidden from us)
        pass
    started = process_identity(pid)["pid_started"]
    return started is not None and started != holder.get("pid_started")


class OutputLock:
    """The lease on one output for the run ``run_id``; ``stale_after`` seconds > 0."""

    def __init__(self, storage: Storage, output: str, run_id: str, stale_after: float,
                 on_lost=lambda: None):
        self.uri = f"{output}/{LOCK_FILE}"
        self._output = output
        self.stale_after = stale_after
        self.lost_to: str | None = None  # who took the lock over ("run <id>"), once known
        # the run whose stale lock this one took over, and when it last renewed it
        self.took_over: tuple[str, float] | None = None
        self._storage = storage
        self._on_lost = on_lost
        self._token = secrets.token_hex(8)
        self._content = json.dumps({"run_id": run_id, "token": self._token,
                                    "stale_after": stale_after, **process_identity()}).encode()
        self._released = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="output-lock")
        self._renewing = threading.Lock()  # the renewal thread and a check before a change
        self._renewed_at = 0.0  # _clock() when the lock was last known to be this run's

    def acquire(self) -> None:
        """Take the lock (taking over a stale one) and start renewing it; OutputBusy when a
        live run holds it."""
        for _ in range(3):  # a lock released or taken over between our looks: look again
            if self._storage.create_new(self.uri, self._content):
                holder = self._holder()  # where create-if-absent is not atomic, the last writer wins
                if holder.get("token") != self._token:
                    raise OutputBusy(self._busy_message(holder, 0.0, self.stale_after))
                self._renewed_at = _clock()
                self._storage.before_change = self._check
                self._renewer.start()
                return
            modified = self._storage.modified_ms(self.uri)
            if modified is None:
                continue
            holder = self._holder()
            age = (self._storage.clock_ms(self._output) - modified) / 1000
            # the holder renews at its own pace: judge it by the lease it took
            lease = float(holder.get("stale_after") or self.stale_after)
            if age < lease and not holder_gone(holder):
                raise OutputBusy(self._busy_message(holder, age, lease))
            if holder.get("run_id"):  # whichever run ends up holding the lock closes its record
                self.took_over = (str(holder["run_id"]), modified / 1000)
            if not self._remove_stale(modified):
                continue  # another run is taking it over, or it was renewed: look again
            why = "its process is gone" if age < lease else f"not renewed for {age:.0f} s"
            log.warning("taking over the lock of run %s on %s (%s)", holder.get("run_id", "?"),
                        self.uri, why)
        raise OutputBusy(f"{self.uri} keeps changing hands: another run is starting")

    def _remove_stale(self, modified: int) -> bool:
        """Remove the stale lock last modified at ``modified`` (ms), unless another run is
        doing so: runs taking over at once would each remove the lock, then the lock another
        created (22 of 40 races of 4 threads left several holders). A marker named after that
        time, created only if absent, lets one of them do it; one left by a run killed in
        those milliseconds is removed once a minute old."""
        marker = f"{self.uri}.{modified}.takeover"
        if not self._storage.create_new(marker, self._content):
            made = self._storage.modified_ms(marker)
            if made is None or self._storage.clock_ms(self._output) - made < 60_000:
                return False
            self._storage.remove(marker)
            if not self._storage.create_new(marker, self._content):
                return False
        try:
            if self._storage.modified_ms(self.uri) != modified:
                return False  # renewed, released or taken over since this run looked
            self._storage.remove(self.uri)
            return True
        finally:
            self._storage.remove(marker)

    def release(self) -> None:
        """Stop renewing and remove the lock, unless another run took it over."""
        self._released.set()
        if self._renewer.is_alive():
            self._renewer.join()
        if self.lost_to is None and self._holder().get("token") == self._token:
            self._storage.remove(self.uri)

    def renew(self) -> None:
        """Rewrite the lock (its modification time is the lease), or learn it was taken over."""
        with self._renewing:
            if self.lost_to is not None:
                return
            holder = self._read_holder()
            expires = self._renewed_at + self.stale_after
            read_in_time = _clock() < expires
            if holder.get("token") != self._token:
                # taken over, or removed (by a run that took it over and has ended, or by
                # hand): either way no longer this run's
                self.lost_to = (f"run {holder.get('run_id', '?')}" if holder
                                else "whoever removed it")
                log.error("%s took over %s: this run stops without committing", self.lost_to,
                          self.uri)
                self._on_lost()
                return
            self._storage.overwrite(self.uri, self._content)
            if read_in_time and _clock() >= expires:
                # stalled between reading and rewriting the lock, past the lease: a run may
                # have taken it over (or taken it and ended) in between, and this write put
                # this run's lock back over it. Stop, and remove what was put back.
                self.lost_to = "another run (this one stalled past its lease while renewing)"
                log.error("this run stalled past its lease while renewing %s: it stops "
                          "without committing", self.uri)
                if self._holder().get("token") == self._token:
                    self._storage.remove(self.uri)
                self._on_lost()
                return
            self._renewed_at = _clock()

    def _renew_loop(self) -> None:
        while not self._released.wait(self.stale_after / 5) and self.lost_to is None:
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 - a storage hiccup: the next renewal tries again
                log.warning("could not renew %s: %s", self.uri, e)

    def _check(self) -> None:
        # renewals come every fifth of the lease: one overdue means this process stalled
        if self.lost_to is None and _clock() - self._renewed_at > self.stale_after / 4:
            self.renew()
        if self.lost_to is not None:
            raise OutputLockLost(f"{self.lost_to} took over {self.uri}: nothing more is "
                                 f"written by this run")

    def _holder(self) -> dict:
        """The lock's content; {} when it is gone, caught mid-write or unreadable."""
        try:
            return self._read_holder()
        except Exception:  # noqa: BLE001 - a storage error: nothing known
            return {}

    def _read_holder(self) -> dict:
        """The lock's content; {} when it is gone or not (yet) JSON: being written by another
        run, as this run's own writes come one at a time. Storage errors propagate."""
        try:
            text = self._storage.read_text(self.uri)
        except Exception:
            if self._storage.exists(self.uri):
                raise
            return {}
        try:
            holder = json.loads(text)
        except ValueError:
            return {}
        return holder if isinstance(holder, dict) else {}

    def _busy_message(self, holder: dict, age: float, lease: float) -> str:
        machine = (holder.get("machine") or ["?"])[0]
        return (f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {machine}) "
                f"holds {self.uri}, renewed {age:.0f} s ago: one run at a time per output. "
                f"Retry later; a lock not renewed for {lease:.0f} s is taken over "
                f"(delete the file if you are sure that run is dead)")
