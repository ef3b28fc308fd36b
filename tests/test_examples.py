"""The scheduling examples stay valid: the DAG compiles, both call submit.sh incrementally."""

from __future__ import annotations

import py_compile

import pytest

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


@pytest.mark.parametrize("hour", ["00", "01"])
def test_cron_line_runs_as_the_shell_runs_it(tmp_path, hour):
    """cron hands the line (its \\% made %) to /bin/sh: the options submit.sh gets must be
    the job's, with valid values, and both output streams must go to the log. The midnight
    run (a stand-in date says the hour) also compacts and reads the unreadable files again."""
    import os
    import shutil
    import subprocess

    from spark_jobs.config import parse_args

    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    line = next(ln for ln in (ROOT / "examples" / "crontab").read_text().splitlines()
                if ln.strip() and not ln.startswith("#"))
    command = line.split(None, 5)[5].replace("\\%", "%")
    for path, stand_in in (("/opt/spark-image-etl", tmp_path), ("/tmp/image-etl.lock", tmp_path / "lock"),
                           ("/var/log/image-etl.log", tmp_path / "log")):
        assert path in command
        command = command.replace(path, str(stand_in))
    submit = tmp_path / "submit.sh"  # says what it was given, on stdout, and on stderr
    submit.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho done >&2\n')
    submit.chmod(0o755)
    (tmp_path / "bin").mkdir()
    date = tmp_path / "bin" / "date"  # date -u +FORMAT at 2026-01-02 <hour>:05 UTC
    date.write_text(f'#!/bin/sh\nfor f; do :; done\necho "$f" | sed "s/^+//; s/%Y/2026/; s/%m/01/; '
                    f's/%d/02/; s/%H/{hour}/"\n')
    date.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    subprocess.run(["/bin/sh", "-c", command], check=True, env=env)
    given = (tmp_path / "log").read_text().splitlines()
    assert given[-1] == "done"
    cfg = parse_args(given[given.index("--") + 1 : -1], conf_dir=tmp_path)
    midnight = hour == "00"
    assert cfg.incremental and cfg.compact == midnight
    assert cfg.retry_errors == (("unreadable",) if midnight else ())
    assert cfg.run_id == f"20260102T{hour}00Z" and cfg.max_error_rate == 0.05
    assert cfg.keep_run_records == 2160


def _dag_call_keywords() -> dict:
    """The keyword arguments (AST nodes) of the DAG file's DAG(...) and SparkSubmitOperator(...)."""
    import ast

    tree = ast.parse((ROOT / "examples" / "airflow_dag.py").read_text())
    return {k.arg: k.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("DAG", "SparkSubmitOperator") for k in node.keywords}


def test_airflow_dag_retries_a_failed_run():
    default_args = _dag_call_keywords()["default_args"]
    given = {k.value: v for k, v in zip(default_args.keys, default_args.values, strict=True)}
    assert given["retries"].value > 0


@pytest.mark.parametrize("hour", [0, 1])
def test_airflow_dag_runs_incrementally_and_compacts_at_midnight(tmp_path, hour):
    """The operator's application_args as Airflow renders them (its templates are Python
    expressions of logical_date and ts_nodash, evaluated here without Airflow)."""
    import ast
    import re
    from datetime import datetime

    from spark_jobs.config import parse_args

    context = {"logical_date": datetime(2026, 1, 2, hour), "ts_nodash": f"20260102T{hour:02}0000"}

    def render(arg: str) -> str:
        m = re.fullmatch(r"\{\{(.*)\}\}", arg)
        return eval(m.group(1).strip(), {"__builtins__": {}}, context) if m else arg

    args = [render(a) for a in ast.literal_eval(_dag_call_keywords()["application_args"])]
    cfg = parse_args(args, conf_dir=tmp_path)
    midnight = hour == 0
    assert cfg.incremental and cfg.compact == midnight
    assert cfg.retry_errors == (("unreadable",) if midnight else ())
    assert cfg.run_id == context["ts_nodash"] and cfg.max_error_rate == 0.05
    assert cfg.keep_run_records == 2160


def test_airflow_spark_submit_is_submit_sh():
    """The DAG puts examples/airflow_bin first on PATH: its spark-submit must be submit.sh."""
    import subprocess

    link = ROOT / "examples" / "airflow_bin" / "spark-submit"
    assert link.resolve() == (ROOT / "submit.sh").resolve()
    out = subprocess.run([str(link), "--help"], capture_output=True, text=True, check=True).stdout
    assert "spark-submit wrapper for the image-feature job" in out


def test_airflow_dag_has_submit_sh_ship_the_environment_and_load_the_yarn_profile(tmp_path):
    """The operator passes no submit.sh options: what the DAG's environment asks for must be
    what submit.sh reads. Run with a local master, submit.sh refuses to package (exit 2)."""
    import ast
    import os
    import subprocess
    import sys

    tree = ast.parse((ROOT / "examples" / "airflow_dag.py").read_text())
    env_vars = next(k.value for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "env_vars")
    given = {k.value: v.value for k, v in zip(env_vars.keys, env_vars.values, strict=True)
             if isinstance(v, ast.Constant)}
    assert given["IMAGE_ETL_ENV"] == "yarn"
    env = dict(os.environ, **given, IMAGE_ETL_BUILD_DIR=str(tmp_path), PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run([str(ROOT / "submit.sh"), "--master", "local[2]", "--", "--help"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--package ships an environment" in proc.stderr, proc.stderr


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
