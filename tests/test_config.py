"""The command line over conf/job.properties (no Spark)."""

from __future__ import annotations

import pytest

from spark_jobs.config import CONF_DIR, parse_args


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


def test_the_shipped_defaults_lock_the_output_keep_every_record_and_refuse_negatives():
    base = ["--input", "/a", "--output", "/o"]
    cfg = parse_args(base, conf_dir=CONF_DIR)
    assert (cfg.stale_lock_after, cfg.keep_run_records) == (300, 0)
    for bad in (["--stale-lock-after", "-1"], ["--keep-run-records", "-1"]):
        with pytest.raises(SystemExit) as e:
            parse_args([*base, *bad], conf_dir=CONF_DIR)
        assert e.value.code == 2
