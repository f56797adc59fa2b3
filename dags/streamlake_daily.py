"""
### streamlake_daily

Each day's Bronze ingestion date (`{{ ds }}`), per dataset: **Silver** (`silver_batch.py --date`),
then **Gold** for the event dates that Silver run touched (`gold_batch.py --silver-dates`); once
every dataset's Gold is published, the **ops summary** of the day (`ops_summary.py --date`) and the
SQL server's **refresh** (`streamlake serve --refresh`), which registers Gold tables that are new.

A run touches only its own date, so reruns and backfills of other dates are safe. A day with no
Bronze rows succeeds with nothing to do. A failed audit fails its task (the job's last log line
says which check) and nothing downstream of it runs; see docs/airflow.md.
"""

from __future__ import annotations

from airflow.sdk import DAG
from spark_jobs import DATASETS, START_DATE, StreamLakeJob, default_args, refresh_sql_tables

with DAG(
    dag_id="streamlake_daily",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # one Silver writer per dataset at a time (docs/batch.md)
    default_args=default_args(),
    tags=["streamlake", "batch"],
    doc_md=__doc__,
):
    summary = StreamLakeJob(task_id="ops_summary", job="ops_summary", arguments=["--date", "{{ ds }}"])
    refresh = refresh_sql_tables()
    for dataset in DATASETS:
        silver = StreamLakeJob(task_id=f"silver_{dataset}", job="silver_batch", arguments=["--dataset", dataset, "--date", "{{ ds }}"])
        gold = StreamLakeJob(task_id=f"gold_{dataset}", job="gold_batch",
                             arguments=["--dataset", dataset, "--silver-dates", "{{ ds }}"])
        silver >> gold >> [summary, refresh]
