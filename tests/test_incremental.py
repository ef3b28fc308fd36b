"""Scheduled runs: incremental, idempotent, crash-safe, with a run record and exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spark_jobs.storage import ASIDE
from tests.conftest import ROOT, SAMPLES, run_job

pytestmark = pytest.mark.spark


def current_state(spark, out: Path) -> list[tuple]:
    """One current row per path (the README's reading recipe), without run_id, sorted."""
    from spark_jobs.storage import Storage
    from spark_jobs.writing import current_rows

    df = current_rows(spark, Storage(spark), str(out)).where("NOT deleted").drop("run_id")
    return sorted((tuple(r) for r in df.collect()), key=lambda t: t[0])


def records(out: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (out / "_runs").glob("*.json")}


def scramble_keeping_metadata(path: Path) -> None:
    """Same size and modification time, different bytes: only a content read would notice."""
    st = path.stat()
    path.write_bytes(b"\x00" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("read_mode", ["executor", "spark"])
def test_incremental_runs_do_only_new_work(spark, tmp_path, read_mode):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--read-mode", read_mode]
    assert run_job(*args, "--run-id", "r1") == 0
    first = current_state(spark, out)
    assert len(first) == 9

    # unchanged listing: no content is read (scrambled bytes go unnoticed), tables equal
    for p in (inp / "flowers").iterdir():
        scramble_keeping_metadata(p)
    assert run_job(*args, "--run-id", "r2") == 0
    assert current_state(spark, out) == first
    assert records(out)["r2"]["counts"] | {"errors": None} == {
        "listed": 9, "processed": 0, "skipped": 9, "ok": 0, "error": 0, "deleted": 0, "gone": 0,
        "errors": None}
    assert committed(out) == {"images": ["r1"], "summary": ["r1"], "duplicates": ["r1"]}

    # a new file, a changed file (new size and time), one with a new time only, a deleted file
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "people" / "copy.png")
    changed = inp / "landscape" / "sklearn-china.jpg"
    changed.write_bytes((SAMPLES / "flowers" / "sklearn-flower.jpg").read_bytes())
    os.utime(changed, (time.time() + 5, time.time() + 5))
    touched = inp / "flowers" / "mate-freshflower.jpg"  # scrambled, same size: a new time alone
    os.utime(touched, (time.time() + 5, time.time() + 5))
    (inp / "people" / "matplotlib-grace_hopper.jpg").unlink()
    assert run_job(*args, "--run-id", "r3") == 0
    rec = records(out)["r3"]["counts"]
    assert (rec["listed"], rec["processed"], rec["skipped"], rec["deleted"]) == (9, 3, 6, 1)
    state = {Path(t[0].removeprefix("file:")).name: t for t in current_state(spark, out)}
    assert state[touched.name][4] == hashlib.sha256(touched.read_bytes()).hexdigest()
    assert "matplotlib-grace_hopper.jpg" not in state and "copy.png" in state
    flower = {t[0]: t for t in first}[next(t[0] for t in first if t[0].endswith("sklearn-flower.jpg"))]
    assert state["sklearn-china.jpg"][4] == flower[4]  # content_sha256 of the new bytes
    summary = spark.read.parquet(str(out / "summary")).where("label IS NULL").first()
    assert summary.n_files == 9  # the summary describes the current state

    # rerunning a run id replaces it: no duplicates
    assert run_job(*args, "--run-id", "r3") == 0
    images = spark.read.parquet(str(out / "images"))
    assert images.where("run_id = 'r3'").count() == 4


def test_spark_reads_new_files_by_name_only_when_some_are_known(spark, tmp_path, monkeypatch):
    """The first incremental run reads the listing as a full run does; later runs name the
    new files to Spark (their paths, never the whole listing, reach the driver)."""
    from spark_jobs import reading

    named = []
    real = reading._read_named
    monkeypatch.setattr(reading, "_read_named", lambda spark, paths: named.extend(paths) or real(spark, paths))
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--read-mode", "spark"]
    assert run_job(*args) == 0
    assert named == [] and len(current_state(spark, out)) == 9
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "people" / "copy.png")
    assert run_job(*args) == 0
    assert [Path(p).name for p in named] == ["copy.png"] and len(current_state(spark, out)) == 10


@pytest.mark.parametrize("read_mode", ["spark", "executor"])
def test_files_that_cannot_be_read_never_fail_a_run(spark, tmp_path, monkeypatch, read_mode):
    """A file Spark cannot read no longer fails the run, in a run that reads the listing and
    in an increment named to Spark: one gone since the listing is left out and counted as
    gone; one whose bytes Spark cannot open (a ':' in its name, on Hadoop's local file
    system) is read by a Python worker and keeps its row."""
    from spark_jobs import reading

    vanishing = []
    list_files = reading.list_files

    def list_then_delete(*args):
        listing = list_files(*args)
        for path in vanishing:
            path.unlink()
        return listing

    monkeypatch.setattr(reading, "list_files", list_then_delete)
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    flower = SAMPLES / "flowers" / "sklearn-flower.jpg"
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--read-mode", read_mode]
    for run_id, (colon, gone) in [("r1", ("10:30.jpg", "gone.jpg")), ("r2", ("12:00.jpg", "gone-too.jpg"))]:
        for name in (colon, gone):
            shutil.copy(flower, inp / "flowers" / name)
        vanishing[:] = [inp / "flowers" / gone]
        assert run_job(*args, "--run-id", run_id) == 0
        rows = spark.read.parquet(str(out / "images")).where(f"run_id = '{run_id}'")
        state = {Path(r.path).name: r for r in rows.collect()}
        assert gone not in state
        assert state[colon].error_kind is None
        assert state[colon].content_sha256 == hashlib.sha256(flower.read_bytes()).hexdigest()
        counts = records(out)[run_id]["counts"]
        assert counts["gone"] == 1 and counts["processed"] == len(state)
    assert counts["processed"] == 1  # the increment: its one new file left


def test_files_gone_before_spark_is_pointed_at_them_never_fail_an_increment(spark, tmp_path, monkeypatch):
    """An increment names its new files to Spark, which checks that each exists: one deleted
    between the listing and that check is left out and counted as gone, as in any run,
    instead of failing the run with 'path does not exist' (exit 3)."""
    from spark_jobs import reading

    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES / "flowers", inp / "flowers")
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--read-mode", "spark"]
    assert run_job(*args, "--run-id", "r1") == 0
    new = [inp / "flowers" / f"new{i}.jpg" for i in range(3)]
    for path in new:
        shutil.copy(SAMPLES / "flowers" / "sklearn-flower.jpg", path)
    read_named = reading._read_named

    def delete_then_read(spark, paths):
        new[0].unlink()
        new[2].unlink()
        return read_named(spark, paths)

    monkeypatch.setattr(reading, "_read_named", delete_then_read)
    assert run_job(*args, "--run-id", "r2") == 0
    rows = spark.read.parquet(str(out / "images")).where("run_id = 'r2'").collect()
    assert {Path(r.path).name: r.error_kind for r in rows} == {"new1.jpg": None}
    counts = records(out)["r2"]["counts"]
    assert (counts["processed"], counts["gone"]) == (1, 2)


def committed(out: Path) -> dict[str, list[str]]:
    """Run ids committed in each table."""
    return {t: sorted(p.name.removeprefix("run_id=") for p in (out / t).glob("run_id=*"))
            for t in ("images", "summary", "duplicates")}


@pytest.mark.parametrize("narrowed", ["{inp}/flowers", "file://{inp}/flowers/", "{inp}/[f]lowers"])
def test_an_increment_answers_only_for_its_inputs(spark, tmp_path, narrowed):
    """Files outside an increment's inputs were not looked at: they are not gone (an
    increment over one day's folder leaves the other days' rows current)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--output", str(out), "--incremental"]
    assert run_job("--input", str(inp), *args, "--run-id", "r1") == 0
    (inp / "flowers" / "sklearn-flower.jpg").unlink()
    (inp / "people" / "skimage-astronaut.png").unlink()  # outside the next run's inputs
    assert run_job("--input", narrowed.format(inp=inp), *args, "--run-id", "r2") == 0
    assert records(out)["r2"]["counts"]["deleted"] == 1
    rows = {Path(r.path).name: r.deleted for r in spark.read.parquet(str(out / "images")).collect()
            if r.run_id == "r2"}
    assert rows == {"sklearn-flower.jpg": True}
    assert len(current_state(spark, out)) == 8  # the astronaut stays current until listed again
    assert run_job("--input", str(inp), *args, "--run-id", "r3") == 0
    assert records(out)["r3"]["counts"]["deleted"] == 1 and len(current_state(spark, out)) == 7


def test_a_full_run_killed_before_removing_older_runs_is_finished_by_the_next_run(spark, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    assert run_job("--input", str(inp), "--output", str(out), "--incremental", "--run-id", "r1") == 0
    shutil.copytree(out / "images" / "run_id=r1", tmp_path / "r1")
    (inp / "people" / "skimage-astronaut.png").unlink()
    assert run_job("--input", str(inp), "--output", str(out), "--run-id", "r2") == 0  # full
    state = current_state(spark, out)
    # killed between its commit and removing r1: r1 is back, and with it the astronaut
    shutil.copytree(tmp_path / "r1", out / "images" / "run_id=r1")
    assert len(current_state(spark, out)) == len(state) + 1

    # the next run, an increment over one folder that knows nothing of the astronaut
    assert run_job("--input", str(inp / "flowers"), "--output", str(out), "--incremental",
                   "--run-id", "r3") == 0
    assert committed(out)["images"] == ["r2"] and current_state(spark, out) == state


def test_a_rerun_killed_while_replacing_its_committed_run_leaves_that_run(spark, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    shutil.copy(inp / "people" / "skimage-astronaut.png", inp / "people" / "copy.png")
    assert run_job(*args, "--run-id", "r2") == 0
    state = current_state(spark, out)

    # a rerun of r2, killed between moving its committed run aside and moving the new one
    # in (Storage.replace_dir); its staged rows are what the next run cleans up
    (out / "images" / "run_id=r2").rename(out / "images" / f"{ASIDE}run_id=r2")
    assert len(current_state(spark, out)) == len(state) - 1

    assert run_job(*args, "--run-id", "r3") == 0  # finds nothing new: r2 is back
    assert committed(out)["images"] == ["r1", "r2"] and current_state(spark, out) == state
    assert not list((out / "images").glob(f"{ASIDE}*"))


def test_an_empty_input_never_empties_the_tables_unless_allowed(spark, tmp_path):
    """An unmounted share lists nothing: every file would be marked gone (exit 0, summary/
    empty). The run exits 3 and changes nothing; --allow-empty-input lets it through."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    assert run_job("--input", str(inp), "--output", str(out), "--incremental", "--run-id", "r1") == 0
    state = current_state(spark, out)
    shutil.rmtree(inp)
    inp.mkdir()
    for mode in (["--incremental"], []):
        assert run_job("--input", str(inp), "--output", str(out), *mode, "--run-id", "r2") == 3
        assert current_state(spark, out) == state and committed(out)["images"] == ["r1"]
        assert records(out)["r2"]["exit_code"] == 3 and "--allow-empty-input" in records(out)["r2"]["error"]
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--allow-empty-input"]
    assert run_job(*args, "--run-id", "r3") == 0
    assert current_state(spark, out) == [] and records(out)["r3"]["counts"]["deleted"] == len(state)


def test_an_increment_with_a_narrower_glob_leaves_the_other_names_current(spark, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    state = current_state(spark, out)
    (inp / "people" / "skimage-astronaut.png").unlink()
    # the .jpg files: not gone. The one .png is, and the glob takes no file left: allowed
    assert run_job(*args, "--glob", "*.png", "--allow-empty-input", "--run-id", "r2") == 0
    assert records(out)["r2"]["counts"]["deleted"] == 1
    assert current_state(spark, out) == [r for r in state if not r[0].endswith("astronaut.png")]


def test_a_run_that_finds_nothing_commits_nothing_unless_aggregates_lag(spark, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    first = current_state(spark, out)

    # aggregates older than the latest images run (a run killed after committing its
    # images): a run with nothing new still brings them up to date
    (out / "summary" / "run_id=r1").rename(out / "summary" / "run_id=r0")
    assert run_job(*args, "--run-id", "r2") == 0
    assert committed(out) == {"images": ["r1"], "summary": ["r2"], "duplicates": ["r2"]}
    assert not (out / "_staging").exists()

    # a rerun of a run id that now finds nothing drops what that run committed
    extra = inp / "people" / "copy.png"
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", extra)
    assert run_job(*args, "--run-id", "r3") == 0
    assert committed(out)["images"] == ["r1", "r3"]
    extra.unlink()
    assert run_job(*args, "--run-id", "r3") == 0
    assert committed(out) == {"images": ["r1"], "summary": ["r3"], "duplicates": ["r3"]}
    assert current_state(spark, out) == first
    summary = spark.read.parquet(str(out / "summary")).where("label IS NULL").first()
    assert summary.n_files == 9


@pytest.mark.parametrize(("inp_name", "out_name", "read_mode"), [
    ("in", "out", "auto"),
    # Spark takes every path it reads as a glob: these names are read as named
    ("photos [2024]", "out {a,b} [1]", "spark"),
])
def test_compact_rewrites_the_earlier_state_as_one_run(spark, tmp_path, inp_name, out_name, read_mode):
    from spark_jobs.writing import read_parquet

    inp, out = tmp_path / inp_name, tmp_path / out_name
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental", "--read-mode", read_mode]
    assert run_job(*args, "--run-id", "r1") == 0
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "people" / "copy.png")
    (inp / "people" / "matplotlib-grace_hopper.jpg").unlink()
    assert run_job(*args, "--run-id", "r2") == 0  # a new file and a tombstone
    state = current_state(spark, out)
    summary = sorted(map(repr, read_parquet(spark, str(out / "summary")).drop("run_id").collect()))

    assert run_job(*args, "--compact", "--run-id", "r3") == 0  # nothing new: compaction only
    assert committed(out) == {"images": ["r2.compacted"], "summary": ["r3"], "duplicates": ["r3"]}
    images = read_parquet(spark, str(out / "images"))
    assert images.count() == len(state) == 9 and images.where("deleted").count() == 0
    assert current_state(spark, out) == state
    assert sorted(map(repr, read_parquet(spark, str(out / "summary")).drop("run_id").collect())) == summary
    assert records(out)["r3"]["stages_s"]["compact"] > 0
    settings = out / "images" / "run_id=r2.compacted" / "_settings.json"
    assert json.loads(settings.read_text())["max_side"] == 512

    # a rerun of the compacting run finds the state it started from: nothing to read again
    assert run_job(*args, "--compact", "--run-id", "r3") == 0
    assert records(out)["r3"]["counts"]["processed"] == 0
    assert committed(out)["images"] == ["r2.compacted"] and current_state(spark, out) == state


def test_a_compaction_killed_between_deletions_leaves_the_state(spark, tmp_path, monkeypatch):
    """Older runs go oldest first: the newest's tombstones hide the older rows until the end."""
    from spark_jobs.storage import Storage

    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    (inp / "people" / "matplotlib-grace_hopper.jpg").unlink()
    assert run_job(*args, "--run-id", "r2") == 0  # its tombstone
    state = current_state(spark, out)

    deleted, real = [], Storage.delete

    def delete_then_die(self, uri):
        if "/images/run_id=" in uri:
            if deleted:
                raise RuntimeError("killed")
            deleted.append(uri)
        real(self, uri)

    monkeypatch.setattr(Storage, "delete", delete_then_die)
    assert run_job(*args, "--compact", "--run-id", "r3") == 1
    monkeypatch.undo()
    assert deleted[0].endswith("run_id=r1") and current_state(spark, out) == state
    # its rerun redoes the compaction into the same run (it was named r2.compacted.compacted)
    assert committed(out)["images"] == ["r2", "r2.compacted"]
    assert run_job(*args, "--compact", "--run-id", "r3") == 0
    assert committed(out)["images"] == ["r2.compacted"] and current_state(spark, out) == state


def test_a_retried_compacting_run_keeps_what_lies_outside_its_inputs(spark, tmp_path):
    """A scheduler retrying the daily --compact run (exit 4, a lost worker) over one day's
    folder: the other days' rows stay, and the retry gives the same tables."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES / "flowers", inp / "day1")
    shutil.copytree(SAMPLES / "people", inp / "day2")
    increment = ["--output", str(out), "--incremental"]
    assert run_job("--input", str(inp / "day2"), *increment, "--run-id", "r1") == 0
    assert run_job("--input", str(inp / "day1"), *increment, "--run-id", "r2") == 0
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "day1" / "new.png")
    compacting = ["--input", str(inp / "day1"), *increment, "--compact", "--run-id", "r3"]
    assert run_job(*compacting) == 0
    state = current_state(spark, out)
    assert len(state) == sum(1 for p in inp.rglob("*") if p.is_file())

    assert run_job(*compacting) == 0  # the retry
    assert current_state(spark, out) == state
    assert records(out)["r3"]["counts"]["processed"] == 1  # its own new file, again
    assert committed(out)["images"] == ["r2.compacted", "r3"]


def test_an_increment_refuses_settings_that_change_the_features(spark, tmp_path, caplog):
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    state = current_state(spark, out)
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "people" / "copy.png")

    # rows computed two ways would mix in one table: refused before any work, nothing changes
    for changed in (["--max-side", "0"], ["--keep-gps"]):
        assert run_job(*args, *changed, "--run-id", "r2") == 2
        assert committed(out) == {"images": ["r1"], "summary": ["r1"], "duplicates": ["r1"]}
        assert current_state(spark, out) == state
        rec = records(out)["r2"]
        assert (rec["status"], rec["exit_code"]) == ("failed", 2)
        assert "r1" in rec["error"] and "without --incremental" in rec["error"]

    # limits only decide which new files get an error row; the same features go on
    assert run_job(*args, "--max-file-bytes", "100m", "--run-id", "r2") == 0
    assert committed(out)["images"] == ["r1", "r2"]
    # a full run recomputes every file: increments then go on with its settings
    assert run_job(*args[:4], "--max-side", "0", "--run-id", "r3") == 0
    (inp / "people" / "copy.png").unlink()
    assert run_job(*args, "--max-side", "0", "--run-id", "r4") == 0
    assert run_job(*args, "--run-id", "r5") == 2
    # a state written before runs kept their settings cannot be checked: a warning, no refusal
    (out / "images" / "run_id=r4" / "_settings.json").unlink()
    assert run_job(*args, "--run-id", "r5") == 0
    assert "cannot be checked" in caplog.text


def test_an_increment_whose_id_sorts_before_a_committed_run_is_refused(spark, tmp_path):
    """'r10' sorts before 'r2': its rows were committed and stayed hidden behind r2's (the
    latest run id holds a file's current row), and every later run processed the file again."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES / "flowers", inp / "flowers")
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "r1") == 0
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "flowers" / "new.png")
    assert run_job(*args, "--run-id", "r2") == 0
    state = current_state(spark, out)
    shutil.copy(SAMPLES / "people" / "skimage-astronaut.png", inp / "flowers" / "newer.png")
    succeeded = records(out)["r1"]
    assert run_job(*args, "--run-id", "r10") == 2
    assert committed(out)["images"] == ["r1", "r2"] and current_state(spark, out) == state
    assert "sorts before run r2" in records(out)["r10"]["error"]
    # a refused rerun of a run that succeeded leaves that run's record (and runs/ row) as it was
    assert run_job(*args, "--run-id", "r1") == 2
    assert records(out)["r1"] == succeeded
    assert run_job(*args, "--run-id", "r2") == 0  # a retry of the latest run goes on
    assert run_job(*args, "--run-id", "r3") == 0
    assert run_job(*args[:4], "--run-id", "r0") == 0  # a full run replaces every run
    assert committed(out)["images"] == ["r0"]


def test_retry_errors_reads_files_of_those_error_kinds_again(spark, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(SAMPLES), "--output", str(out), "--incremental"]

    def kinds() -> dict:
        rows = current_state(spark, out)
        return {k: sum(1 for t in rows if t[-3] == k) for k in ("too_large", "corrupt", None)}

    assert run_job(*args, "--max-file-bytes", "150k", "--run-id", "r1") == 0
    assert kinds() == {"too_large": 3, "corrupt": 1, None: 3}
    # a raised limit alone changes nothing: those files' metadata did not change
    assert run_job(*args, "--run-id", "r2") == 0
    assert records(out)["r2"]["counts"]["processed"] == 0 and kinds()["too_large"] == 3
    # asked to, an increment reads them again (and only them): their new rows supersede
    assert run_job(*args, "--retry-errors", "too_large,unreadable", "--run-id", "r3") == 0
    assert records(out)["r3"]["counts"]["processed"] == 3
    assert kinds() == {"too_large": 0, "corrupt": 1, None: 6}
    assert run_job(*args, "--retry-errors", "too_large", "--run-id", "r4") == 0
    assert records(out)["r4"]["counts"]["processed"] == 0
    assert committed(out)["images"] == ["r1", "r3"]


def test_a_full_run_with_compact_holds_exactly_its_files(spark, tmp_path, caplog):
    """--compact on a run without --incremental must not bring back rows of earlier runs:
    a full run describes exactly what it listed (and the run says the option does nothing)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    assert run_job("--input", str(inp), "--output", str(out), "--run-id", "r1") == 0
    assert "are for --incremental runs" not in caplog.text
    (inp / "people" / "matplotlib-grace_hopper.jpg").unlink()
    assert run_job("--input", str(inp), "--output", str(out), "--compact", "--run-id", "r2") == 0
    assert "--compact and --retry-errors are for --incremental runs" in caplog.text
    images = spark.read.parquet(str(out / "images"))
    assert images.count() == 8 and images.where("path LIKE '%grace_hopper%'").count() == 0
    assert committed(out)["images"] == ["r2"]


def test_every_run_leaves_a_record(spark, tmp_path):
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--run-id", "ok") == 0
    assert run_job("--input", str(tmp_path / "missing"), "--output", str(out), "--run-id", "bad") == 3
    recs = records(out)
    assert recs["ok"]["status"] == "succeeded" and recs["ok"]["exit_code"] == 0
    assert recs["ok"]["counts"]["errors"] == {"corrupt": 1, "empty": 1, "unsupported_format": 1}
    assert recs["ok"]["bytes_read"] > 2_000_000 and recs["ok"]["megapixels_read"] > 4
    assert set(recs["ok"]["stages_s"]) == {"images", "aggregates"}
    assert recs["ok"]["config"]["job"]["extract"]["max_side"] == 512
    assert recs["bad"]["status"] == "failed" and recs["bad"]["exit_code"] == 3
    assert "PATH_NOT_FOUND" in recs["bad"]["error"] or "not exist" in recs["bad"]["error"]
    assert recs["bad"]["ended_at"] >= recs["bad"]["started_at"]

    # and a row each in runs/, the same facts as Parquet columns
    runs = {r.run_id: r for r in spark.read.parquet(str(out / "runs")).collect()}
    assert set(runs) == {"ok", "bad"}
    ok, bad = runs["ok"], runs["bad"]
    assert (ok.status, ok.exit_code, ok.error, ok.max_side) == ("succeeded", 0, None, 512)
    assert (ok.n_listed, ok.n_processed, ok.n_ok, ok.n_error, ok.n_corrupt, ok.n_empty,
            ok.n_unsupported_format, ok.n_too_large) == (9, 9, 6, 3, 1, 1, 1, 0)
    assert ok.bytes_read == recs["ok"]["bytes_read"] and set(ok.stages_s) == {"images", "aggregates"}
    assert ok.ended_at > ok.started_at and ok.inputs == [str(SAMPLES)]
    assert (bad.status, bad.exit_code, bad.n_listed) == ("failed", 3, None)
    assert bad.error == recs["bad"]["error"]
    # a rerun of a run id replaces its row
    assert run_job("--input", str(SAMPLES / "flowers"), "--output", str(out), "--run-id", "ok") == 0
    assert spark.read.parquet(str(out / "runs")).where("run_id = 'ok'").first().n_listed == 2


def test_keep_run_records_drops_the_oldest_records_and_rows_only(spark, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(SAMPLES / "flowers"), "--output", str(out), "--incremental"]
    for run_id in ("r1", "r2", "r3"):
        assert run_job(*args, "--run-id", run_id) == 0
    assert sorted(records(out)) == ["r1", "r2", "r3"]  # by default every run's record stays
    assert run_job(*args, "--run-id", "r4", "--keep-run-records", "2") == 0
    assert sorted(records(out)) == ["r3", "r4"]
    rows = spark.read.parquet(str(out / "runs")).select("run_id").collect()
    assert sorted(r.run_id for r in rows) == ["r3", "r4"]
    assert committed(out)["images"] == ["r1"]  # the tables' own runs are not records


def test_a_closed_stdout_does_not_fail_a_committed_run(tmp_path):
    """`... | head -1`: the report could not be printed after the commit, and the run was
    recorded as failed (BrokenPipeError, exit 1)."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.image_features", "--demo", "--output", str(out),
         "--run-id", "p1", "--conf", "spark.ui.enabled=false"],
        cwd=ROOT, env=dict(os.environ, PYSPARK_PYTHON=sys.executable), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    assert proc.stdout.readline().startswith(b"run p1:")
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    assert (records(out)["p1"]["status"], records(out)["p1"]["exit_code"]) == ("succeeded", 0)


def test_debug_logging_is_the_jobs_and_sparks_not_py4js(tmp_path):
    """--log-level DEBUG printed py4j's trace of every call to the JVM: ~1 MB for the demo."""
    log_file = tmp_path / "stderr.txt"
    with log_file.open("w") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "spark_jobs.image_features", "--demo", "--output", str(tmp_path / "out"),
             "--log-level", "DEBUG", "--conf", "spark.ui.enabled=false"],
            cwd=ROOT, env=dict(os.environ, PYSPARK_PYTHON=sys.executable), stdout=subprocess.DEVNULL,
            stderr=stderr, timeout=300)
    assert proc.returncode == 0
    text = log_file.read_text()
    assert "py4j" not in text and len(text) < 20_000
    assert "INFO spark_jobs.image_features: run " in text


def test_error_rate_above_limit_exits_4_but_commits(spark, tmp_path):
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--max-error-rate", "0.2") == 4
    assert spark.read.parquet(str(out / "images")).count() == 9  # 3 of 9 failed: 0.33 > 0.2
    (rec,) = records(out).values()
    assert rec["status"] == "succeeded_with_errors" and rec["exit_code"] == 4


def _job(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    return subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.image_features", *args, "--conf", "spark.ui.enabled=false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _staging(out: Path, run_id: str) -> bool:
    """Whether run ``run_id`` is writing its images (Spark's temporary files, staged)."""
    return any(out.glob(f"_staging/{run_id}/*/images/_temporary"))


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_tables(spark, tmp_path):
    inp = tmp_path / "in"
    for i in range(12):  # enough work (full resolution) to be killed in the middle of it
        shutil.copytree(SAMPLES, inp / f"copy{i}")
    common = ["--input", str(inp), "--max-side", "0", "--incremental"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # an earlier committed run whose data must stay untouched
    shutil.copytree(SAMPLES / "flowers", tmp_path / "early" / "flowers")
    assert run_job("--input", str(tmp_path / "early"), "--output", str(killed), "--max-side", "0",
                   "--run-id", "r0") == 0
    early = sorted(tuple(r) for r in spark.read.parquet(str(killed / "images")).collect())

    proc = _job(*common, "--output", str(killed), "--run-id", "r1")
    deadline = time.time() + 120
    while not _staging(killed, "r1") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into the feature stage
    assert proc.poll() is None, "the job finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM follows its driver; make sure of it
    except ProcessLookupError:
        pass
    assert not (killed / "images" / "run_id=r1").exists()  # nothing half-written is visible
    assert sorted(tuple(r) for r in spark.read.parquet(str(killed / "images")).collect()) == early

    assert run_job(*common, "--output", str(killed), "--run-id", "r1") == 0
    assert run_job(*common, "--output", str(clean), "--run-id", "r1") == 0
    rows = current_state(spark, killed)
    assert len(rows) == 12 * 9 + 2  # the early run's files are outside the inputs: still current
    assert [t for t in rows if "/early/" not in t[0]] == current_state(spark, clean)
    assert not (killed / "_staging").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_and_its_record_says_so(spark, tmp_path, signum):
    """A scheduler stops a run with SIGTERM (a user with Ctrl-C): the driver cancels Spark's
    jobs, records the run as failed and exits 128 + the signal, leaving earlier runs."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(12):
        shutil.copytree(SAMPLES, inp / f"copy{i}")
    assert run_job("--input", str(SAMPLES / "flowers"), "--output", str(out), "--run-id", "r0") == 0
    proc = _job("--input", str(inp), "--output", str(out), "--max-side", "0", "--run-id", "r1")
    deadline = time.time() + 120
    while not _staging(out, "r1") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be stopped"
    proc.send_signal(signum)
    try:
        assert proc.wait(timeout=60) == 128 + signum
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    record = records(out)["r1"]
    stopped = ("failed", 128 + signum, f"stopped by {signal.Signals(signum).name}")
    assert (record["status"], record["exit_code"], record["error"]) == stopped
    assert committed(out)["images"] == ["r0"]
    row = spark.read.parquet(str(out / "runs")).where("run_id = 'r1'").first()
    assert (row.status, row.exit_code, row.error) == stopped


def _readme_block(lang: str, marker: str, out: Path) -> str:
    """The code block of README.md in ``lang`` whose first line holds ``marker``, reading
    the table at ``out`` instead of the README's "out/images"."""
    text = (ROOT / "README.md").read_text()
    for block in text.split(f"```{lang}\n")[1:]:
        code = block.split("```", 1)[0]
        if marker in code.splitlines()[0]:
            return code.replace("out/images", str(out / "images"))
    raise AssertionError(f"no {lang} block starting with {marker!r} in README.md")


def test_readme_recipes_read_the_current_state(spark, tmp_path):
    """The Spark, pandas/pyarrow and DuckDB recipes of README.md give the current state."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES, inp)
    args = ["--input", str(inp), "--output", str(out), "--incremental"]
    assert run_job(*args, "--run-id", "a") == 0
    (inp / "flowers" / "sklearn-flower.jpg").unlink()
    shutil.copy(SAMPLES / "landscape" / "sklearn-china.jpg", inp / "flowers" / "china.jpg")
    assert run_job(*args, "--run-id", "b") == 0
    want = sorted(t[0] for t in current_state(spark, out))
    assert len(want) == 9

    scope = {"spark": spark}
    exec(_readme_block("python", "# Spark", out), scope)
    assert sorted(r.path for r in scope["current"].select("path").collect()) == want
    exec(_readme_block("python", "# pandas / pyarrow", out), scope)
    assert sorted(scope["current"]["path"]) == want
    import duckdb

    rows = duckdb.sql(_readme_block("sql", "-- DuckDB", out)).fetchall()
    assert sorted(r[0] for r in rows) == want


def test_operations_monitoring_queries_run_on_runs(spark, tmp_path):
    """The SQL of docs/operations.md runs on a real runs/ table and says what it claims."""
    out = tmp_path / "out"
    assert run_job("--input", str(SAMPLES), "--output", str(out), "--run-id", "ok") == 0
    assert run_job("--input", str(tmp_path / "missing"), "--output", str(out), "--run-id", "bad") == 3
    text = (ROOT / "docs" / "operations.md").read_text()
    failed, last, rates = [block.split("```", 1)[0] for block in text.split("```sql\n")[1:]]

    def query(sql: str) -> list:
        return spark.sql(sql.replace("out/runs", str(out / "runs")).rstrip().rstrip(";")).collect()

    assert [(r.run_id, r.exit_code) for r in query(failed)] == [("bad", 3)]
    ok = json.loads((out / "_runs" / "ok.json").read_text())["ended_at"]
    assert query(last)[0].last_success.isoformat(timespec="milliseconds") == ok[:23]
    (row,) = query(rates)
    assert row.run_id == "ok" and row.error_rate == 3 / 9 and row.images_per_s > 0
