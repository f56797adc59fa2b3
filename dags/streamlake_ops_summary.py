"""
### streamlake_ops_summary

Every day, the operators' report for the run's date (`ops_summary.py --date {{ ds }}`): rows per
layer, DLQ by reason, Kafka lag behind Bronze, the last runs and their checks, replays and
re-drives, as JSON and HTML under `<lakehouse>/_ops/reports/<date>/`. It reads only. It does not
wait for `streamlake_daily`, so a day whose batch runs failed is reported too.
"""

from __future__ import annotations

from airflow.sdk import DAG
from spark_jobs import START_DATE, StreamLakeJob, default_args

with DAG(
    dag_id="streamlake_ops_summary",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    default_args=default_args(),
    tags=["streamlake", "ops"],
    doc_md=__doc__,
):
    StreamLakeJob(task_id="ops_summary", job="ops_summary", arguments=["--date", "{{ ds }}"])
