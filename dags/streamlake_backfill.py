"""
### streamlake_backfill

Rebuilds one dataset for a range of Bronze ingestion dates, triggered by hand with `dataset`,
`from` and `to` (YYYY-MM-DD, inclusive): `rebuild_batch.py --from --to` runs Silver for each
date in order, then Gold for the event dates those Silver runs touched; then the SQL server
registers any table that is new (`streamlake serve --refresh`). Safe to rerun.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from spark_jobs import DATASETS, START_DATE, StreamLakeJob, default_args, refresh_sql_tables

with DAG(
    dag_id="streamlake_backfill",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["streamlake", "batch", "backfill"],
    doc_md=__doc__,
    params={
        "dataset": Param(type="string", enum=DATASETS, description="the dataset to rebuild"),
        "from": Param(type="string", format="date", description="first Bronze ingestion date (YYYY-MM-DD)"),
        "to": Param(type="string", format="date", description="last Bronze ingestion date, inclusive"),
    },
):
    rebuild = StreamLakeJob(task_id="rebuild", job="rebuild_batch",
                            arguments=["--dataset", "{{ params.dataset }}", "--from", "{{ params['from'] }}", "--to", "{{ params['to'] }}"])
    rebuild >> refresh_sql_tables()
