#!/usr/bin/env python3
"""Benchmark the image-feature job side by side with the reference peers.

    .venv/bin/python benchmarks/run_benchmark.py [--suite standard|large|small|rerun|scale|folders] [--rounds N]

Suites (datasets are made on first use; benchmarks may use ../shared, product code may not):
  standard  /tmp/ds300 and /tmp/ds2000 (make_dataset.py --count 300|2000 --seed 7), both
            variants: reduced (--max-side 512) and full (--max-side 0). From the two sizes:
            fixed cost (intercept) and marginal ms / image of each system.
  large     /tmp/ds300_large20 (--count 300 --seed 7 --large 20: 20 extra 40-60 MP JPEGs):
            does memory stay bounded at default settings?
  small     /tmp/thumbs100k (make_thumbnails.py: 100,000 JPEGs of 64-160 px): per-file cost.
  rerun     /tmp/ds300 and /tmp/ds2000, a scheduled incremental rerun that finds nothing new
            (ours-noop): what a scheduler pays every time nothing changed.
  scale     /tmp/ds2000 and /tmp/ds20000 (--count 20000 --seed 7: 12 GB, its first 2000 files
            are ds2000's), both variants: the cost where the issue says "from ~20,000 images
            on", measured instead of extrapolated from 300 and 2000.
  folders   /tmp/thumbs10k_f1000 (make_thumbnails.py --count 10000 --folders 1000): listing
            many folders (ours), and an incremental run where Spark reads the bytes and finds
            half the files new, so that it names 5000 files to Spark (ours-increment).

Systems, run round-robin (the order rotates by one each round, so drift hits all alike):
  ours          python -m spark_jobs.image_features --input DS --output OUT --max-side 512|0
  ours-noop     the same with --incremental, timed on an output that already holds every file
                (made once per dataset and variant by an untimed incremental run)
  ours-increment  --incremental --read-mode spark, timed on a copy of an output that holds the
                files with an even number (made once by an untimed run with --glob '*[02468].jpg')
  pool2         ../shared/bench/peers/pool.py (multiprocessing.Pool(2) + Pillow)
  floor-pillow  ../shared/bench/peers/floor.py --decoder pillow (decode only, 2 processes)
  spark-naive   ../shared/bench/peers/spark_pandas_udf.py (binaryFile + pandas UDF; on request:
                --systems ours spark-naive)
  ray-data      ../shared/bench/peers/ray_data.py and daft_job.py, on request, run by
  daft          --peer-python (ray and daft are not dependencies of this project)

For every run: wall seconds (process start to exit), peak RSS of the whole process tree
(JVM + Python workers; the sum over the tree, sampled every 0.2 s with psutil; a JVM's child
caught between fork and exec is skipped, it shares the JVM's pages), CPU seconds of the tree
(own time of each process), and the load average of the machine before and after (it may be shared).
Then our output is compared with pool2's, column by column (features must be equal).
Our job runs as installed: with its JVM class-data archive (built first when missing;
--class-archive off measures without it).

Writes benchmarks/raw/<suite>-<UTC time>.jsonl (every run) and the suite's section of
benchmarks/RESULTS.md (medians; ratios paired by round).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import statistics as st
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = (ROOT / ".." / "shared" / "bench").resolve()
PEERS = SHARED / "peers"
PY = sys.executable
PEER_PY = PY  # --peer-python: a Python with ray / daft installed (not dependencies of the job)
ENGINE_PEERS = {"ray-data": "ray_data.py", "daft": "daft_job.py"}
VARIANTS = {"reduced": "512", "full": "0"}
EXTS = (".jpg", ".jpeg", ".png", ".webp")
MAKE_DATASET = SHARED / "make_dataset.py"
MAKE_THUMBNAILS = HERE / "make_thumbnails.py"
HALF = "*[02468].jpg"  # thumbnails with an even number: what ours-increment finds already done
SUITES = {
    # name: ([(dataset dir, (script that makes it, its arguments))], variants, systems, rounds)
    "standard": ([("/tmp/ds300", (MAKE_DATASET, ["--count", "300", "--seed", "7"])),
                  ("/tmp/ds2000", (MAKE_DATASET, ["--count", "2000", "--seed", "7"]))],
                 ["reduced", "full"], ["ours", "pool2", "floor-pillow"], 3),
    "large": ([("/tmp/ds300_large20", (MAKE_DATASET, ["--count", "300", "--seed", "7", "--large", "20"]))],
              ["reduced", "full"], ["ours", "pool2", "floor-pillow"], 1),
    "small": ([("/tmp/thumbs100k", (MAKE_THUMBNAILS, ["--count", "100000", "--seed", "7"]))],
              ["reduced"], ["ours", "pool2", "floor-pillow"], 1),
    "rerun": ([("/tmp/ds300", (MAKE_DATASET, ["--count", "300", "--seed", "7"])),
               ("/tmp/ds2000", (MAKE_DATASET, ["--count", "2000", "--seed", "7"]))], ["reduced"], ["ours-noop"], 3),
    "scale": ([("/tmp/ds2000", (MAKE_DATASET, ["--count", "2000", "--seed", "7"])),
               ("/tmp/ds20000", (MAKE_DATASET, ["--count", "20000", "--seed", "7"]))],
              ["reduced", "full"], ["ours", "pool2"], 1),
    "folders": ([("/tmp/thumbs10k_f1000", (MAKE_THUMBNAILS, ["--count", "10000", "--seed", "7",
                                                             "--folders", "1000"]))],
                ["reduced"], ["ours", "ours-increment"], 3),
}


def make_dataset(path: str, how: tuple[Path, list[str]] | None) -> None:
    if os.path.isdir(path):
        return
    if how is None:
        raise SystemExit(f"{path} does not exist, and no suite says how to make it")
    script, args = how
    argv = [PY, str(script), path, *args]
    print("making", path, ":", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def dataset_stats(root: str) -> dict:
    """Files, megapixels and bytes of the images under root; reads every file once, so that
    every run finds them in the page cache."""
    from PIL import Image

    n = px = nbytes = 0
    for d, _dirs, files in os.walk(root):
        for f in files:
            if f.lower().endswith(EXTS) and not f.startswith("."):
                p = os.path.join(d, f)
                with open(p, "rb") as fh:
                    data = fh.read()
                with Image.open(p) as im:
                    px += im.size[0] * im.size[1]
                nbytes += len(data)
                n += 1
    return {"files": n, "mp": round(px / 1e6, 1), "bytes": nbytes}


def command(system: str, dataset: str, variant: str, out: str, job_args: list[str]) -> list[str]:
    if system == "ours":
        return [PY, "-m", "spark_jobs.image_features", "--input", dataset, "--output", out,
                "--max-side", VARIANTS[variant], *job_args]
    if system == "ours-noop":
        return [*command("ours", dataset, variant, out, job_args), "--incremental"]
    if system == "ours-increment":
        return [*command("ours-noop", dataset, variant, out, job_args), "--read-mode", "spark"]
    if system == "pool2":
        return [PY, str(PEERS / "pool.py"), dataset, out, "--variant", variant]
    if system == "floor-pillow":
        return [PY, str(PEERS / "floor.py"), dataset, out, "--variant", variant,
                "--decoder", "pillow"]
    if system == "spark-naive":  # the straightforward binaryFile + pandas UDF job, as tuned in peers/
        return [PY, str(PEERS / "spark_pandas_udf.py"), dataset, out, "--variant", variant,
                "--max-records-per-batch", "16"]
    if system in ENGINE_PEERS:  # need their engine, installed apart (--peer-python)
        return [PEER_PY, str(PEERS / ENGINE_PEERS[system]), dataset, out, "--variant", variant]
    raise ValueError(system)


def prepare_output(system: str, dataset: str, variant: str, out: str, job_args: list[str],
                   first_round: bool, env: dict) -> None:
    """The state a timed run starts from, made by untimed runs: nothing, or for the scheduled
    runs what they find (ours-noop: every file done; ours-increment: the even half)."""
    if system == "ours-noop":  # a no-op run changes nothing: made once
        if first_round:
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(command(system, dataset, variant, out, job_args), env=env, check=True,
                           capture_output=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    if system == "ours-increment":  # each run commits the other half: start again from a copy
        base = out + "-base"
        if first_round:
            shutil.rmtree(base, ignore_errors=True)
            subprocess.run([*command(system, dataset, variant, base, job_args), "--glob", HALF],
                           env=env, check=True, capture_output=True)
        shutil.copytree(base, out)


def _forked_jvm(p: psutil.Process) -> bool:
    """A JVM's child caught between fork and exec (Hadoop runs chmod, Spark getconf): it shares
    the JVM's pages, so adding its RSS would count the JVM twice."""
    exe = p.exe()
    return exe.endswith("/java") and p.parent() is not None and p.parent().exe() == exe


def run_one(argv: list[str], env: dict) -> dict:
    """Run argv in its own session; sample the RSS and CPU time of its process tree."""
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    peak, peak_detail = 0, []
    cpu: dict[int, float] = {}
    names: dict[int, str] = {}
    while proc.poll() is None:
        rss = 0
        detail = []
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                if p is not root and _forked_jvm(p):
                    continue
                m = p.memory_info().rss
                rss += m
                detail.append(f"{p.name()}:{m >> 20}")
                c = p.cpu_times()
                # own time only: a reaped child's time would otherwise count twice
                cpu[p.pid] = c.user + c.system
                names[p.pid] = p.name()
            except psutil.Error:
                pass
        if rss > peak:  # which processes hold the memory at the peak (JVM, Python workers)
            peak, peak_detail = rss, detail
        time.sleep(0.2)
    wall = time.monotonic() - t0
    try:  # anything left behind in the run's session (a stray JVM)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    reader.join(5)
    text = "".join(out)
    by_name: dict[str, float] = {}
    for pid, t in cpu.items():
        by_name[names[pid]] = round(by_name.get(names[pid], 0.0) + t, 1)
    rec = {"wall_s": round(wall, 3), "peak_rss_mb": round(peak / 2**20), "cpu_s": round(sum(cpu.values()), 1),
           "peak_detail_mb": " ".join(peak_detail), "cpu_by_name_s": by_name,
           "rc": proc.returncode, "load_before": round(load_before, 2),
           "load_after": round(os.getloadavg()[0], 2)}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            rec["result"] = json.loads(line[7:])
        elif "finished in" in line and "spark_jobs.image_features" in line:
            rec["job_s"] = float(line.split("finished in")[1].split()[0])
    if proc.returncode:
        rec["tail"] = text[-2000:]
    return rec


def job_stages(out: str) -> dict:
    """Stage seconds from our job's latest run record (<output>/_runs/<run_id>.json), if any."""
    import glob

    for f in sorted(glob.glob(os.path.join(out, "_runs", "*.json")), reverse=True):
        try:
            return json.load(open(f)).get("stages_s") or {}
        except (OSError, ValueError):
            pass
    return {}


# ------------------------------------------------------------------ feature comparison
COLS = ("width", "height", "gray_mean", "gray_std", "hist", "entropy", "sharpness", "dhash")


def _key(path: str) -> str:
    return "/".join(path.rstrip("/").split("/")[-2:])  # label/filename


def compare(ours_dir: str, pool_dir: str) -> dict:
    """Our images table vs pool.py's output: every feature must be equal (floats to 1e-12
    relative, everything else exactly); also counts floats that are bit-for-bit equal."""
    import pyarrow.dataset as pads

    ours = pads.dataset(os.path.join(ours_dir, "images"), format="parquet", partitioning="hive")
    ours = ours.to_table(columns=["path", "width", "height", "gray_mean", "gray_std", "gray_hist",
                                  "entropy", "sharpness", "dhash", "error_kind"]).to_pylist()
    ref = pads.dataset(pool_dir, format="parquet").to_table().to_pylist()
    a = {_key(r["path"]): dict(r, hist=r.pop("gray_hist")) for r in ours}
    b = {_key(r["path"]): r for r in ref}
    both = sorted(set(a) & set(b))
    bad: dict[str, list] = {c: [] for c in COLS}
    bad["error"] = []
    bitwise = floats = 0
    max_rel = 0.0
    for k in both:
        x, y = a[k], b[k]
        if (x["error_kind"] is None) != (y["error"] is None):
            bad["error"].append((k, x["error_kind"], y["error"]))
            continue
        for c in COLS:
            u, v = x[c], y[c]
            if isinstance(u, float) and isinstance(v, float):
                floats += 1
                bitwise += u == v
                rel = abs(u - v) / max(abs(u), abs(v), 1e-300)
                max_rel = max(max_rel, rel)
                ok = math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-12)
            else:
                ok = u == v
            if not ok:
                bad[c].append((k, u if c != "hist" else "...", v if c != "hist" else "..."))
    return {"rows_ours": len(a), "rows_ref": len(b), "unmatched": len(set(a) ^ set(b)),
            "mismatches": {c: len(v) for c, v in bad.items() if v},
            "examples": {c: v[:3] for c, v in bad.items() if v},
            "floats_bitwise_equal": f"{bitwise}/{floats}", "max_rel_diff": max_rel}


# ------------------------------------------------------------------ report
def prepare_class_archive(mode: str, env: dict, work: str) -> str:
    """Our job's JVM class-data archive: built if missing ("build"), or hidden ("off")."""
    if mode == "off":
        env["IMAGE_ETL_CACHE_DIR"] = os.path.join(work, "no-class-archive")
        return "off"
    cli = [PY, "-m", "spark_jobs.class_archive"]
    status = subprocess.run([*cli, "status"], cwd=ROOT, env=env, capture_output=True, text=True)
    if "in use:" not in status.stdout:
        t = time.perf_counter()
        subprocess.run([*cli, "build"], cwd=ROOT, env=env, check=True)
        print(f"class-data archive built in {time.perf_counter() - t:.0f} s", flush=True)
    return "on"


def summarize(recs: list[dict], suite: str, datasets: list[dict], compares: list[dict], argv: str,
              archive: str = "on") -> str:
    groups: dict[tuple, list] = {}
    for r in recs:
        groups.setdefault((r["dataset"], r["variant"], r["system"]), []).append(r)
    wall = {(r["dataset"], r["variant"], r["system"], r["round"]): r["wall_s"] for r in recs}

    def paired(ds, v, name, ref):
        xs = [w / wall[(ds, v, ref, rd)] for (d2, v2, n2, rd), w in wall.items()
              if (d2, v2, n2) == (ds, v, name) and (ds, v, ref, rd) in wall]
        return f"{st.median(xs):.2f}" if xs else ""

    stats = {d["dataset"]: d for d in datasets}
    loads = [x for r in recs for x in (r["load_before"], r["load_after"])]
    lines = [f"<!-- suite:{suite} -->", f"### Suite `{suite}`", "",
             f"Command: `{argv}`  ",
             f"Finished {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GB; load average (1 min) during the runs: "
             f"median {st.median(loads):.1f}, max {max(loads):.1f} (shared machine: walls are noisy). "
             f"Our job's JVM class-data archive: {archive}. Ratio columns: this row's wall time over "
             "that system's in the same round (median), so `x ours` = how many times faster our job is.", "",
             "| dataset | files | MP | variant | system | runs | wall s median [min-max] | images/s | MP/s "
             "| CPU s | peak RSS tree MB | x pool2 | x floor | x ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    medians = {}
    order = {"ours": 0, "ours-noop": 0, "ours-increment": 0, "pool2": 1, "floor-pillow": 2, "spark-naive": 3, "ray-data": 4, "daft": 5}
    for key in sorted(groups, key=lambda k: (stats[k[0]]["files"], k[1] != "reduced", order.get(k[2], 9))):
        ds, v, name = key
        rs = groups[key]
        walls = [r["wall_s"] for r in rs]
        w = st.median(walls)
        medians[key] = w
        s = stats[ds]
        flag = " (rc!=0)" if any(r["rc"] for r in rs) else ""
        lines.append(
            f"| {os.path.basename(ds)} | {s['files']} | {s['mp']:.0f} | {v} | {name}{flag} | {len(rs)} | "
            f"{w:.1f} [{min(walls):.1f}-{max(walls):.1f}] | {s['files'] / w:.1f} | {s['mp'] / w:.0f} | "
            f"{st.median(r['cpu_s'] for r in rs):.0f} | {st.median(r['peak_rss_mb'] for r in rs):.0f} "
            f"(max {max(r['peak_rss_mb'] for r in rs)}) | {paired(ds, v, name, 'pool2')} | "
            f"{paired(ds, v, name, 'floor-pillow')} | {paired(ds, v, name, 'ours')} |")
    sizes = sorted({k[0] for k in medians}, key=lambda d: stats[d]["files"])
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        n1, n2 = stats[small]["files"], stats[big]["files"]
        mp1, mp2 = stats[small]["mp"], stats[big]["mp"]
        lines += ["", f"Fixed and marginal cost from the two sizes (wall = fixed + n x marginal; "
                  f"{os.path.basename(small)} and {os.path.basename(big)}):", "",
                  "| variant | system | fixed s | marginal ms / image | ms / MP |", "|---|---|---|---|---|"]
        for (ds, v, name), w2 in sorted(medians.items(), key=lambda kv: (kv[0][1] != "reduced", order.get(kv[0][2], 9))):
            if ds != big or (small, v, name) not in medians:
                continue
            w1 = medians[(small, v, name)]
            per = (w2 - w1) / (n2 - n1)
            lines.append(f"| {v} | {name} | {w1 - per * n1:.1f} | {per * 1000:.1f} | "
                         f"{(w2 - w1) / (mp2 - mp1) * 1000:.2f} |")
    if suite == "small":
        lines += ["", "Per-file cost on small files (wall / files):", ""]
        for (ds, _v, name), w in medians.items():
            lines.append(f"- {name}: {w / stats[ds]['files'] * 1000:.2f} ms/file")
    if compares:
        lines += ["", "Features of ours vs pool2 (path key label/file; floats to 1e-12 relative):", "",
                  "| dataset | variant | rows ours/ref | unmatched | mismatching values | floats bit-equal | max rel diff |",
                  "|---|---|---|---|---|---|---|"]
        for c in compares:
            lines.append(f"| {os.path.basename(c['dataset'])} | {c['variant']} | {c['rows_ours']}/{c['rows_ref']} | "
                         f"{c['unmatched']} | {c['mismatches'] or 0} | {c['floats_bitwise_equal']} | "
                         f"{c['max_rel_diff']:.1e} |")
            if c["examples"]:
                lines.append(f"|  | e.g. | {json.dumps(c['examples'])[:300]} | | | | |")
    lines.append(f"<!-- /suite:{suite} -->")
    return "\n".join(lines)


def write_section(md: Path, suite: str, section: str) -> None:
    text = md.read_text() if md.exists() else "# Benchmark results\n\nWritten by `benchmarks/run_benchmark.py`.\n"
    start, end = f"<!-- suite:{suite} -->", f"<!-- /suite:{suite} -->"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    md.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=SUITES, default="standard")
    p.add_argument("--rounds", type=int, help="rounds (default: 3 standard, rerun and folders, 1 large, small and scale)")
    p.add_argument("--datasets", nargs="+", help="override the suite's dataset folders")
    p.add_argument("--variants", nargs="+", choices=VARIANTS)
    p.add_argument("--systems", nargs="+",
                   choices=("ours", "ours-noop", "ours-increment", "pool2", "floor-pillow", "spark-naive", *ENGINE_PEERS))
    p.add_argument("--peer-python", default=PY, help="Python that runs the ray-data and daft peers "
                   "(e.g. a venv with: pip install 'ray[data]' daft pillow numpy pyarrow pandas imagehash)")
    p.add_argument("--job-args", default="", help="extra arguments for our job, e.g. '--conf k=v'")
    p.add_argument("--work", default="/tmp/bench_work", help="where outputs go (overwritten)")
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--no-compare", action="store_true", help="skip the feature comparison")
    p.add_argument("--class-archive", choices=("build", "off"), default="build",
                   help="build: our job runs with the JVM class-data archive, built first if "
                        "missing (python -m spark_jobs.class_archive build, a one-time step of "
                        "installing the job); off: without it")
    a = p.parse_args()
    global PEER_PY
    PEER_PY = a.peer_python
    sets, variants, systems, rounds = SUITES[a.suite]
    if a.datasets:
        sets = [(d, next((h for x, h in sets if x == d), None)) for d in a.datasets]
    variants, systems = a.variants or variants, a.systems or systems
    rounds = a.rounds or rounds
    peers = [s for s in systems if not s.startswith("ours")]
    to_make = [d for d, how in sets if how and how[0] == MAKE_DATASET and not Path(d).is_dir()]
    if (peers or to_make) and not SHARED.is_dir():
        p.error(f"{SHARED} is missing: the peers ({', '.join(peers) or 'none asked'}) and "
                f"make_dataset.py (for {', '.join(to_make) or 'no dataset'}) live there, beside "
                f"this checkout. Without it: --systems ours --datasets DIR [DIR]")
    for d, how in sets:
        make_dataset(d, how)
    datasets = []
    for d, _ in sets:
        s = dataset_stats(d)
        datasets.append({"dataset": d, **s})
        print(f"{d}: {s['files']} files, {s['mp']} MP, {s['bytes'] / 1e9:.2f} GB", flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw = HERE / "raw" / f"{a.suite}-{stamp}.jsonl"
    raw.parent.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    archive = prepare_class_archive(a.class_archive, env, a.work)
    job_args = shlex.split(a.job_args)
    recs = []
    with raw.open("w") as fh:
        for r in range(rounds):
            for ds in datasets:
                for v in variants:
                    k = r % len(systems)
                    for system in systems[k:] + systems[:k]:
                        out = f"{a.work}/{os.path.basename(ds['dataset'])}/{v}/{system}"
                        argv = command(system, ds["dataset"], v, out, job_args)
                        prepare_output(system, ds["dataset"], v, out, job_args, r == 0, env)
                        rec = run_one(argv, env)
                        if system.startswith("ours"):
                            rec["stages_s"] = job_stages(out)
                        rec.update(suite=a.suite, round=r, dataset=ds["dataset"], variant=v, system=system,
                                   files=ds["files"], mp=ds["mp"], job_args=a.job_args,
                                   class_archive=archive if system == "ours" else None)
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        recs.append(rec)
                        print(f"[r{r}] {os.path.basename(ds['dataset']):<18} {v:<8} {system:<13} wall "
                              f"{rec['wall_s']:7.2f}s cpu {rec['cpu_s']:7.1f}s rss {rec['peak_rss_mb']:6d}MB "
                              f"load {rec['load_before']:.1f}/{rec['load_after']:.1f} rc {rec['rc']}"
                              + (f" job {rec['job_s']}s {rec.get('stages_s')}" if "job_s" in rec else ""),
                              flush=True)
                        if rec["rc"]:
                            print(rec.get("tail", ""), flush=True)
    compares = []
    if not a.no_compare and {"ours", "pool2"} <= set(systems):
        for ds in datasets:
            for v in variants:
                base = f"{a.work}/{os.path.basename(ds['dataset'])}/{v}"
                c = compare(f"{base}/ours", f"{base}/pool2")
                c.update(dataset=ds["dataset"], variant=v)
                compares.append(c)
                print("compare", json.dumps(c)[:600], flush=True)
        with raw.open("a") as fh:
            for c in compares:
                fh.write(json.dumps({"compare": c}) + "\n")
    argv = "benchmarks/run_benchmark.py " + " ".join(sys.argv[1:])
    section = summarize(recs, a.suite, datasets, compares, argv.strip(), archive)
    print(section)
    write_section(Path(a.results), a.suite, section)
    bad = sum(sum(c["mismatches"].values()) + c["unmatched"] for c in compares)
    return 1 if bad or any(r["rc"] for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
