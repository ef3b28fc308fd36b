#!/usr/bin/env python3
"""What one Spark task costs this job, apart from the images: wall and CPU per task.

    .venv/bin/python benchmarks/task_overhead.py /tmp/ds2000 [--task-bytes 128m 16m] [--conf k=v ...]
        [--images OUTPUT/images]

In one warm session built as the job builds it (spark_jobs.session), the listing of DATASET
is planned at each task size and written four ways, cheapest first: the listing alone to
Spark's ``noop`` sink, the listing to Parquet, the listing through a trivial Arrow UDF to
``noop``, and through the UDF to Parquet. The difference between two task sizes, divided by
the difference in task count, is the cost of one more task: JVM CPU, Python worker CPU and
wall (on all cores). With --images (an images table this job wrote), also the JVM's cost per
row of writing that table to Parquet, with and without its 256-value histograms.
Prints tables and writes the records to benchmarks/raw/tuning/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spark_jobs.config import parse_args  # noqa: E402
from spark_jobs.reading import OPEN_COST_BYTES  # noqa: E402
from spark_jobs.session import get_session  # noqa: E402

KINDS = ("scan-noop", "scan-parquet", "udf-noop", "udf-parquet")


def cpu_seconds(jvm: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of the JVM and of its Python workers (daemon and forks)."""
    t = jvm.cpu_times()
    python = 0.0
    for child in jvm.children(recursive=True):
        try:
            c = child.cpu_times()
            python += c.user + c.system
        except psutil.Error:
            pass
    return t.user + t.system, python


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("--task-bytes", nargs=2, default=["128m", "16m"], metavar=("BIG", "SMALL"))
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting k=v")
    p.add_argument("--rounds", type=int, default=4, help="rounds; the first warms the JVM and is not kept")
    p.add_argument("--images", help="an images table written by the job (one run or all)")
    p.add_argument("--out", default="/tmp/task_overhead_out")
    a = p.parse_args()

    cfg = parse_args(["--input", a.dataset, "--output", a.out, *[x for kv in a.conf for x in ("--conf", kv)]])
    spark, _ = get_session(cfg)
    from pyspark.sql import functions as F

    jvm = next(c for c in psutil.Process().children(recursive=True) if c.name() == "java")

    @F.arrow_udf("long")
    def identity(x: pa.Array) -> pa.Array:
        return x

    def run(task_bytes: str, kind: str) -> dict:
        spark.conf.set("spark.sql.files.maxPartitionBytes", task_bytes)
        spark.conf.set("spark.sql.files.openCostInBytes", str(OPEN_COST_BYTES))
        df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
              .load(a.dataset).select("path", "length"))
        tasks = df.rdd.getNumPartitions()
        if kind.startswith("udf"):
            df = df.select("path", identity("length").alias("length"))
        sink = "noop" if kind.endswith("noop") else "parquet"
        writer = df.write.mode("overwrite").format(sink)
        jvm0, py0 = cpu_seconds(jvm)
        t = time.perf_counter()
        writer.save(a.out) if sink == "parquet" else writer.save()
        wall = time.perf_counter() - t
        jvm1, py1 = cpu_seconds(jvm)
        return {"kind": kind, "task_bytes": task_bytes, "tasks": tasks, "wall_s": round(wall, 3),
                "jvm_cpu_s": round(jvm1 - jvm0, 3), "python_cpu_s": round(py1 - py0, 3)}

    kept = []
    for r in range(a.rounds):
        for kind in KINDS:
            for tb in a.task_bytes:
                rec = run(tb, kind)
                if r:
                    kept.append(rec)
    big, small = a.task_bytes
    print(f"per extra task ({small} tasks vs {big} tasks, median of {a.rounds - 1} rounds), ms:")
    print(f"{'kind':<13} {'tasks':>9} {'wall':>7} {'JVM CPU':>8} {'Python CPU':>11}")

    def med(kind: str, tb: str, key: str) -> float:
        xs = sorted(r[key] for r in kept if r["kind"] == kind and r["task_bytes"] == tb)
        return xs[len(xs) // 2]

    for kind in KINDS:
        n_big, n_small = med(kind, big, "tasks"), med(kind, small, "tasks")
        per = {k: (med(kind, small, k) - med(kind, big, k)) / (n_small - n_big) * 1000
               for k in ("wall_s", "jvm_cpu_s", "python_cpu_s")}
        print(f"{kind:<13} {n_big:>4}/{n_small:<4} {per['wall_s']:7.1f} {per['jvm_cpu_s']:8.1f} "
              f"{per['python_cpu_s']:11.1f}")
    if a.images:
        kept += row_costs(spark, a.images, a.out, a.rounds, jvm)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw = Path(__file__).resolve().parent / "raw" / "tuning" / f"task-overhead-{stamp}.jsonl"
    raw.parent.mkdir(parents=True, exist_ok=True)
    with raw.open("w") as fh:
        for rec in kept:
            fh.write(json.dumps({**rec, "dataset": a.dataset, "conf": a.conf}) + "\n")
    print("records:", raw.relative_to(ROOT))
    spark.stop()
    return 0


def row_costs(spark, images: str, out: str, rounds: int, jvm: psutil.Process) -> list[dict]:
    """JVM CPU per row of writing an images table (cached in memory first) to Parquet."""
    table = spark.read.parquet(images).drop("run_id").coalesce(2).cache()
    n = table.count()
    ways = {"noop": (table, "noop"), "parquet": (table, "parquet"),
            "parquet, no gray_hist": (table.drop("gray_hist"), "parquet")}
    recs = []
    for r in range(rounds):
        for name, (df, sink) in ways.items():
            writer = df.write.mode("overwrite").format(sink)
            jvm0, _ = cpu_seconds(jvm)
            writer.save(out) if sink == "parquet" else writer.save()
            jvm1, _ = cpu_seconds(jvm)
            if r:
                recs.append({"kind": f"rows {name}", "rows": n, "jvm_cpu_s": round(jvm1 - jvm0, 3)})
    print(f"writing {n} rows of {images} (median of {rounds - 1} rounds), JVM CPU:")
    for name in ways:
        xs = sorted(r["jvm_cpu_s"] for r in recs if r["kind"] == f"rows {name}")
        print(f"  {name:<22} {xs[len(xs) // 2]:6.2f} s  {xs[len(xs) // 2] / n * 1e6:6.1f} us/row")
    return recs


if __name__ == "__main__":
    sys.exit(main())
