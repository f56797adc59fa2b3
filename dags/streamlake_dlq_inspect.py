"""
### streamlake_dlq_inspect

Every day, per dataset, what reached the dead-letter topic since the start of the run's data
interval (`dlq_inspect.py --since`): counts by reason and hour, samples, re-driven records. The
report lands under `<lakehouse>/_ops/dlq_reports/<dataset>/`; an empty DLQ succeeds and says so.
To send records back after a fix, trigger `streamlake_dlq_redrive`.
"""

from __future__ import annotations

from airflow.sdk import DAG
from spark_jobs import DATASETS, START_DATE, StreamLakeJob, default_args

with DAG(
    dag_id="streamlake_dlq_inspect",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    default_args=default_args(),
    tags=["streamlake", "dlq"],
    doc_md=__doc__,
):
    for dataset in DATASETS:
        StreamLakeJob(task_id=f"inspect_{dataset}", job="dlq_inspect",
                      arguments=["--dataset", dataset, "--since", "{{ data_interval_start.isoformat() }}"])
