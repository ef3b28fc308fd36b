"""Replacing a committed run's directory (spark_jobs/storage.py): never a moment without it."""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError

from spark_jobs.storage import ASIDE, Storage


def _run_dir(path, content: str):
    path.mkdir(parents=True)
    (path / "part-0").write_text(content)
    return path


def test_replace_dir_moves_the_new_run_in_and_the_old_one_out(spark, tmp_path):
    table = tmp_path / "images"
    target = _run_dir(table / "run_id=r1", "old")
    Storage(spark).replace_dir(str(_run_dir(tmp_path / "staged", "new")), str(target))
    assert (target / "part-0").read_text() == "new"
    assert sorted(p.name for p in table.iterdir()) == ["run_id=r1"]


def test_replace_dir_that_cannot_move_the_new_run_in_leaves_the_old_one(spark, tmp_path):
    target = _run_dir(tmp_path / "images" / "run_id=r1", "old")
    with pytest.raises(Py4JJavaError, match="never-staged does not exist"):
        Storage(spark).replace_dir(str(tmp_path / "never-staged"), str(target))
    assert (target / "part-0").read_text() == "old"
    assert not (tmp_path / "images" / f"{ASIDE}run_id=r1").exists()


def test_finish_replaces_puts_back_a_run_whose_replacement_never_arrived(spark, tmp_path):
    table = tmp_path / "images"
    _run_dir(table / f"{ASIDE}run_id=r1", "old")  # killed after moving r1 aside
    _run_dir(table / "run_id=r2", "new")
    _run_dir(table / f"{ASIDE}run_id=r2", "older")  # killed after moving the new r2 in
    assert Storage(spark).finish_replaces(str(table)) == ["run_id=r1"]
    assert sorted(p.name for p in table.iterdir()) == ["run_id=r1", "run_id=r2"]
    assert (table / "run_id=r1" / "part-0").read_text() == "old"
    assert (table / "run_id=r2" / "part-0").read_text() == "new"
    assert Storage(spark).finish_replaces(str(tmp_path / "nothing-here")) == []
