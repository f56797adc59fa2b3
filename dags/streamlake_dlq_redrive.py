"""
### streamlake_dlq_redrive

Sends one dataset's dead-letter records of one reason back to its raw topic, after the cause was
fixed (`dlq_redrive.py --reason`). Triggered by hand with `dataset`, `reason` (the error class
`streamlake_dlq_inspect` reports) and `dry_run` (on by default: it lists what would be sent and
changes nothing; turn it off to send). A record is never re-driven twice, even when this runs again.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from spark_jobs import DATASETS, START_DATE, StreamLakeJob, default_args

with DAG(
    dag_id="streamlake_dlq_redrive",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["streamlake", "dlq"],
    doc_md=__doc__,
    params={
        "dataset": Param(type="string", enum=DATASETS, description="the dataset whose DLQ is re-driven"),
        "reason": Param(type="string", minLength=1, description="the error class to re-drive, as the DLQ inspection names it"),
        "dry_run": Param(True, type="boolean", description="only list what would be re-driven"),
    },
):
    StreamLakeJob(task_id="redrive", job="dlq_redrive", arguments=["--dataset", "{{ params.dataset }}", "--reason", "{{ params.reason }}"],
                  flags={"--dry-run": "{{ params.dry_run }}"})
