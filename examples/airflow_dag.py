"""Airflow DAG: the image-feature job every hour, incremental, retried safely.

Every attempt of a DAG run uses the same run id (the logical date), so a retry replaces that
run's output instead of duplicating it. The job's exit codes (README "Exit codes"):
0 success, 1 infrastructure failure (worth a retry), 2 bad arguments, 3 input missing,
4 committed but too many error rows (look at the data: retrying will not help),
5 another run holds the output's lock (a retry later goes through).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PROJECT = "/opt/spark-image-etl"  # a checkout with its .venv (pip install -e '.[pack]')
# The operator runs "spark-submit" (the provider allows no other binary name); this folder's
# spark-submit is a link to submit.sh, which ships the code and a packed environment of the
# dependencies (IMAGE_ETL_PACKAGE: the operator cannot pass submit.sh's --package), and loads
# conf/spark-yarn.properties (IMAGE_ETL_ENV) before calling the real spark-submit.
SUBMIT_SH_PATH = f"{PROJECT}/examples/airflow_bin:{os.environ.get('PATH', '/usr/bin:/bin')}"

with DAG(
    dag_id="image_features",
    start_date=datetime(2026, 1, 1),
    schedule="@hourly",
    catchup=False,
    max_active_runs=1,  # one writer per output
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5), "retry_exponential_backoff": True},
    tags=["images", "etl"],
) as dag:
    SparkSubmitOperator(
        task_id="image_features",
        conn_id="spark_yarn",  # master yarn, deploy mode client or cluster
        application=f"{PROJECT}/spark_jobs/image_features.py",
        application_args=[
            "--input", "s3a://lake/raw/images",
            "--output", "s3a://lake/curated/image_features",
            "--incremental",
            # The midnight run also reads again the files that were unreadable (forbidden,
            # then allowed) and compacts images/ into one run (README "Scheduled, incremental
            # runs"); the other hours repeat --incremental, which is harmless.
            "{{ '--retry-errors=unreadable' if logical_date.hour == 0 else '--incremental' }}",
            "{{ '--compact' if logical_date.hour == 0 else '--incremental' }}",
            "--run-id", "{{ ts_nodash }}",
            "--max-error-rate", "0.05",
            "--keep-run-records", "2160",  # 90 days of hourly runs in runs/ and _runs/
        ],
        env_vars={"PATH": SUBMIT_SH_PATH, "IMAGE_ETL_ENV": "yarn", "IMAGE_ETL_PACKAGE": "1"},
    )
