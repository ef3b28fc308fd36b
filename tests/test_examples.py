"""The scheduling examples stay valid: the DAG compiles, both call submit.sh incrementally."""

from __future__ import annotations

import py_compile

from tests.conftest import ROOT


def test_airflow_dag_compiles_and_calls_submit_sh(tmp_path):
    dag = ROOT / "examples" / "airflow_dag.py"
    py_compile.compile(str(dag), cfile=str(tmp_path / "dag.pyc"), doraise=True)
    text = dag.read_text()
    assert "SparkSubmitOperator" in text and "submit.sh" in text and '"retries"' in text
    assert "--incremental" in text and "--run-id" in text and "--compact" in text


def test_cron_line_calls_submit_sh_incrementally():
    lines = [ln for ln in (ROOT / "examples" / "crontab").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1 and len(lines[0].split(None, 5)) == 6  # 5 time fields + command
    assert "./submit.sh" in lines[0] and "--incremental" in lines[0] and "--run-id" in lines[0]
    assert "--compact" in lines[0]


def test_airflow_spark_submit_is_submit_sh():
    """The DAG puts examples/airflow_bin first on PATH: its spark-submit must be submit.sh."""
    import subprocess

    link = ROOT / "examples" / "airflow_bin" / "spark-submit"
    assert link.resolve() == (ROOT / "submit.sh").resolve()
    out = subprocess.run([str(link), "--help"], capture_output=True, text=True, check=True).stdout
    assert "spark-submit wrapper for the image-feature job" in out


def test_examples_pass_only_options_the_job_knows():
    """A renamed or misspelt option in an example would fail its first scheduled run (exit 2)."""
    import re

    from spark_jobs.config import build_parser

    known = {o for action in build_parser({})._actions for o in action.option_strings}
    cron = (ROOT / "examples" / "crontab").read_text().split("./submit.sh", 1)[1].split(" -- ", 1)[1]
    dag = (ROOT / "examples" / "airflow_dag.py").read_text().split("application_args=", 1)[1]
    for text in (cron, dag):
        used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
        assert used and used <= known, used - known
