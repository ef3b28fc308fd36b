"""The command line over conf/job.properties (no Spark)."""

from __future__ import annotations

import pytest

from spark_jobs.config import format_size, parse_args, parse_size


def test_repeated_options_add_up_instead_of_replacing(tmp_path):
    cfg = parse_args(["--input", "/a", "/b", "--input", "/c", "--output", "/o",
                      "--retry-errors", "unreadable", "--retry-errors", "too_large,unreadable"],
                     conf_dir=tmp_path)
    assert cfg.inputs == ["/a", "/b", "/c"]
    assert cfg.retry_errors == ("unreadable", "too_large")


def test_job_properties_give_defaults_the_command_line_replaces(tmp_path):
    (tmp_path / "job.properties").write_text("retry_errors=corrupt\nmax_side=256\nstale_lock_after=60\n")
    base = ["--input", "/a", "--output", "/o"]
    cfg = parse_args(base, conf_dir=tmp_path)
    assert cfg.retry_errors == ("corrupt",) and cfg.extract.max_side == 256
    assert cfg.stale_lock_after == 60
    cfg = parse_args([*base, "--retry-errors", "timeout", "--max-side", "0", "--stale-lock-after", "0"],
                     conf_dir=tmp_path)
    assert cfg.retry_errors == ("timeout",) and cfg.extract.max_side == 0
    assert cfg.stale_lock_after == 0


def test_pixel_limit_and_time_budget_reach_the_extract_options(tmp_path):
    (tmp_path / "job.properties").write_text("max_pixels=2000\ntime_budget=3\n")
    base = ["--input", "/a", "--output", "/o"]
    cfg = parse_args(base, conf_dir=tmp_path)
    assert (cfg.extract.max_pixels, cfg.extract.time_budget_s) == (2000, 3.0)
    cfg = parse_args([*base, "--max-pixels", "1000", "--time-budget", "0.5"], conf_dir=tmp_path)
    assert (cfg.extract.max_pixels, cfg.extract.time_budget_s) == (1000, 0.5)

def test_the_shipped_defaults_lock_the_output_keep_every_record_and_refuse_negatives():
    base = ["--input", "/a", "--output", "/o"]
    cfg = parse_args(base, conf_dir=None)
    assert (cfg.stale_lock_after, cfg.keep_run_records) == (300, 0)
    for bad in (["--stale-lock-after", "-1"], ["--keep-run-records", "-1"]):
        with pytest.raises(SystemExit) as e:
            parse_args([*base, *bad], conf_dir=None)
        assert e.value.code == 2


@pytest.mark.parametrize("glob", ["*", "*.parquet", "*.json", "_*", "*.{parquet,json}"])
@pytest.mark.parametrize("inputs,output", [
    (["/lake"], "/lake/features"),
    (["/lake"], "/lake"),
    (["file:///lake/"], "/lake/features"),
    (["/data", "/lake/*/2024"], "/lake/x/2024/out"),
])
def test_an_output_inside_an_input_whose_glob_takes_the_jobs_files_is_refused(glob, inputs, output,
                                                                               tmp_path):
    """Every later run would read the tables (Parquet parts, _SUCCESS, run records) as images."""
    args = ["--output", output, "--glob", glob]
    for uri in inputs:
        args += ["--input", uri]
    with pytest.raises(SystemExit) as e:
        parse_args(args, conf_dir=tmp_path)
    assert e.value.code == 2


@pytest.mark.parametrize("args", [
    ["--input", "/lake", "--output", "/lake/features"],  # the image extensions only
    ["--input", "/lake", "--output", "/lake/features", "--glob", "*.jpg"],
    ["--input", "/lake", "--output", "/lakehouse/features", "--glob", "*"],
    ["--input", "/lake/*/2024", "--output", "/data/out", "--glob", "*"],
])
def test_an_output_the_listing_cannot_take_is_accepted(args, tmp_path):
    assert parse_args(args, conf_dir=tmp_path).output == args[3]


@pytest.mark.parametrize(("props", "args", "said"), [
    ("max_side=abc\n", [], "job.properties: max_side=abc: "),  # said, even for --help
    ("task_bytes=12q\n", [], "job.properties: task_bytes=12q: "),
    ("max-side=0\n", [], "job.properties: unknown key(s) max-side"),  # was ignored silently
    ("", ["--glob", "["], "--glob '['"),  # a glob that is no glob ended in a traceback, exit 1
    ("", ["--glob", "*.{jpg"], "--glob '*.{jpg'"),
])
def test_bad_settings_in_job_properties_or_globs_exit_2(tmp_path, capsys, props, args, said):
    (tmp_path / "job.properties").write_text(props)
    with pytest.raises(SystemExit) as e:
        parse_args(["--input", "/a", "--output", "/o", *args], conf_dir=tmp_path)
    assert e.value.code == 2
    assert said in capsys.readouterr().err


def test_an_env_without_its_spark_profile_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    with pytest.raises(SystemExit) as e:
        parse_args(["--demo", "--env", "nosuch"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--env nosuch: no spark-nosuch.properties (have: cluster, kubernetes, local," in err
    assert parse_args(["--demo", "--env", "standalone"]).env == "standalone"


@pytest.mark.parametrize("n, shown", [(536870912, "512m"), (16 * 1024**2, "16m"), (3 * 1024**4, "3t"),
                                      (1536, "1536"), (1000, "1000"), (0, "0")])
def test_sizes_are_shown_as_they_are_written(n, shown):
    """--help showed size defaults in bytes (536870912) where the README says 512m."""
    assert format_size(n) == shown and parse_size(shown) == n


@pytest.mark.parametrize("run_id", ["a/b", "r2 b", "r2.compacted"])
def test_run_ids_that_cannot_name_a_run_are_refused(run_id, capsys):
    """'<id>.compacted' is the name --compact gives the run it writes: a run of that id was
    taken for a retry of it, and replaced the compacted state with its own few files."""
    with pytest.raises(SystemExit) as e:
        parse_args(["--input", "/a", "--output", "/o", "--run-id", run_id], conf_dir=None)
    assert e.value.code == 2 and "--run-id" in capsys.readouterr().err
