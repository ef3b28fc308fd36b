"""Hostile input through Spark: bombs and a 3 GB file cost neither memory nor time, and the
per-image time budget really works inside Spark's Python workers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pytest

from tests import corpus
from tests.conftest import run_job

pytestmark = pytest.mark.spark

THREE_GB = 3 * 1024**3


class PeakRss(threading.Thread):
    """Samples the resident memory of this process and all its descendants (JVM, workers)."""

    def __init__(self, every: float = 0.05):
        super().__init__(daemon=True)
        self.every, self.peak, self._stop_event = every, 0, threading.Event()
        self.peak_by_kind: dict[str, int] = {}
        # Growth of each Python worker (where images are decoded) since first seen: workers
        # are reused across jobs, so their absolute size reflects earlier tests.
        self.first: dict[int, int] = {}
        self.peak_worker = 0

    def tree_rss(self) -> int:
        me = psutil.Process()
        total = 0
        by_kind: dict[str, int] = {}
        for p in [me, *me.children(recursive=True)]:
            try:
                rss, name = p.memory_info().rss, p.name()
            except psutil.Error:  # exited between listing and reading
                continue
            kind = "driver" if p.pid == me.pid else ("jvm" if "java" in name else "python workers")
            if kind == "python workers":
                first = self.first.setdefault(p.pid, rss)
                self.peak_worker = max(self.peak_worker, rss - first)
            by_kind[kind] = by_kind.get(kind, 0) + rss
            total += rss
        for kind, rss in by_kind.items():
            self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), rss)
        return total

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.tree_rss())
            self._stop_event.wait(self.every)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def test_map_in_arrow_runs_in_the_worker_main_thread_where_the_time_budget_works(spark):
    """SIGALRM only reaches the main thread: check Spark's mapInArrow path (how the job runs
    the features) runs there, and that time_limit interrupts a busy loop in the worker."""

    def probe(batches):
        import threading as th

        from udfs.extract import _OverBudget, time_limit

        for batch in batches:
            out = []
            for _ in range(batch.num_rows):
                main = th.current_thread() is th.main_thread()
                t = time.perf_counter()
                try:
                    with time_limit(0.1):
                        while True:
                            pass
                except _OverBudget:
                    out.append(f"main={main} stopped_after={time.perf_counter() - t:.2f}")
            yield pa.RecordBatch.from_pydict({"line": out})

    got = [r.line for r in spark.range(4).mapInArrow(probe, "line string").collect()]
    assert len(got) == 4
    for line in got:
        main, stopped = line.split()
        assert main == "main=True"
        assert 0.05 < float(stopped.split("=")[1]) < 1.0


def test_bombs_and_a_3gb_file_finish_fast_with_bounded_memory(spark, tmp_path):
    folder = tmp_path / "in" / "hostile"
    corpus.write(folder, {
        "bomb-20000.png": corpus.png_bomb(20000, 20000),
        "bomb-gigapixel.png": corpus.png_bomb(200000, 100000),
        "bomb-screen.gif": corpus.gif_bomb(),
        "gps.jpg": corpus.gps_jpeg(),
        "photo.png": corpus.encode(corpus.photo(0, (640, 480)), "PNG"),
        "empty.jpg": b"",
    })  # fmt: skip
    huge = folder / "huge.jpg"
    with open(huge, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")  # looks like a JPEG; the rest is a hole
    os.truncate(huge, THREE_GB)
    assert huge.stat().st_size == THREE_GB and huge.stat().st_blocks * 512 < 1024**2  # sparse

    sampler = PeakRss()
    baseline = sampler.tree_rss()  # also records the reused workers' current sizes
    sampler.start()
    t = time.perf_counter()
    code = run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                   "--glob", "*", "--run-id", "hostile")  # fmt: skip
    seconds = time.perf_counter() - t
    peak = sampler.stop()
    print(f"hostile run: {seconds:.1f} s, tree RSS {baseline / 2**20:.0f} MiB before, "
          f"{peak / 2**20:.0f} MiB peak (+{(peak - baseline) / 2**20:.0f} MiB); peaks: "
          + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sampler.peak_by_kind.items())
          + f", largest worker growth {sampler.peak_worker / 2**20:.0f} MiB")

    assert code == 0
    rows = {Path(r.path).name: r.asDict() for r in
            spark.read.parquet(str(tmp_path / "out" / "images")).collect()}  # fmt: skip
    kinds = {name: r["error_kind"] for name, r in rows.items()}
    assert kinds == {
        "bomb-20000.png": "decompression_bomb",
        "bomb-gigapixel.png": "decompression_bomb",
        "bomb-screen.gif": "decompression_bomb",
        "huge.jpg": "too_large",
        "empty.jpg": "empty",
        "gps.jpg": None,
        "photo.png": None,
    }
    assert rows["huge.jpg"]["size_bytes"] == THREE_GB and "not read" in rows["huge.jpg"]["error"]
    assert rows["huge.jpg"]["content_sha256"] is None  # its content was never read
    run = spark.read.parquet(str(tmp_path / "out" / "runs")).first()  # nor counted as read
    assert run.bytes_read == sum(r["size_bytes"] for r in rows.values()
                                 if r["error_kind"] not in ("empty", "too_large"))
    # Privacy: without --keep-gps the GPS position is not written (the camera make is).
    assert rows["gps.jpg"]["camera_make"] == "TestCam"
    assert rows["gps.jpg"]["gps_latitude"] is None and rows["gps.jpg"]["gps_longitude"] is None
    # Bounded: decoding the 20000 x 20000 bomb alone would take 400 MB in one worker, reading
    # the big file 3 GB; a new worker importing numpy, Pillow and pyarrow grows ~150 MB.
    assert sampler.peak_worker < 300 * 2**20
    assert peak - baseline < 1024**3
    assert seconds < 60


def test_large_files_in_spark_read_mode_leave_the_jvm_heap_alone(spark, tmp_path):
    """Spark holds a file's bytes several times in the JVM while handing them to Python: in
    spark read mode, four 100 MB files exhaust a 1 GB heap (the run dies; four of 64 MB
    already did). Files above --spark-read-max-bytes are read by the Python worker instead."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        with open(folder / f"scan-{i}.jpg", "wb") as f:
            f.write(b"\xff\xd8\xff\xe0" + bytes([i]))  # a JPEG header; the rest is a hole
        os.truncate(folder / f"scan-{i}.jpg", 100 * 1024**2)
    code = run_job("--input", str(folder), "--output", str(tmp_path / "out"), "--read-mode",
                   "spark", "--run-id", "big")  # fmt: skip
    assert code == 0
    rows = spark.read.parquet(str(tmp_path / "out" / "images")).collect()
    assert sorted(Path(r.path).name for r in rows) == [f"scan-{i}.jpg" for i in range(4)]
    assert {r.error_kind for r in rows} == {"corrupt"}  # read and decoded, by Python
    assert len({r.content_sha256 for r in rows}) == 4


def test_an_image_above_the_python_workers_memory_limit_gets_a_row(tmp_path):
    """The cluster profiles cap each Python worker (spark.executor.pyspark.memory, Arrow on
    the system allocator): an image above the cap is a decompression_bomb row naming the
    setting, the others are processed, and the run succeeds."""
    import subprocess
    import sys

    import numpy as np
    import pyarrow.dataset as ds
    from PIL import Image

    inp = tmp_path / "in"
    inp.mkdir()
    ramp = (np.arange(8000, dtype=np.uint16)[None, :] + np.arange(6000, dtype=np.uint16)[:, None]) % 256
    Image.fromarray(np.repeat(ramp.astype(np.uint8)[..., None], 3, axis=2)).save(inp / "big.png",
                                                                                 compress_level=1)
    (inp / "small.png").write_bytes(corpus.encode(corpus.photo(0), "PNG"))
    proc = subprocess.run(
        [sys.executable, "-m", "spark_jobs.image_features", "--input", str(inp), "--output",
         str(tmp_path / "out"), "--conf", "spark.executor.pyspark.memory=450m",
         "--conf", "spark.executorEnv.ARROW_DEFAULT_MEMORY_POOL=system", "--conf", "spark.ui.enabled=false"],
        env=dict(os.environ, PYSPARK_PYTHON=sys.executable), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {Path(r["path"]).name: r for r in ds.dataset(
        str(tmp_path / "out" / "images"), format="parquet", partitioning="hive").to_table().to_pylist()}
    assert rows["small.png"]["error_kind"] is None and rows["small.png"]["width"] == corpus.photo(0).width
    assert rows["big.png"]["error_kind"] == "decompression_bomb"
    assert "spark.executor.pyspark.memory" in rows["big.png"]["error"]
