"""
### streamlake_replay

A bounded replay of one dataset's raw topic into Bronze, then Silver and Gold for what it added.
Triggered by hand with a range: `from_offsets` and `to_offsets` (JSON objects, partition ->
offset, the end exclusive) or `from_time` and `to_time` (ISO-8601, the end exclusive), optionally
`partitions` (e.g. `0,2`).

1. **resolve** (`replay_batch.py --resolve-only`): the range becomes explicit offsets, recorded
   under the replay id before anything is read;
2. **replay** (`replay_batch.py --no-rebuild`): reads the recorded range, lands the rows Bronze lacks;
3. **rebuild** (`rebuild_batch.py --replay-id`): Silver for the ingestion dates the replay touched,
   then Gold for the event dates Silver touched;
4. **refresh_sql_tables** (`streamlake serve --refresh`): the SQL server registers any table that is new.

The replay id is the DAG run's id, made safe for the jobs, so every step of a run names the same
replay and no two runs share one. Running the same range again adds nothing.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from spark_jobs import DATASETS, JINJA_FILTERS, START_DATE, StreamLakeJob, default_args, refresh_sql_tables

REPLAY_ID = "{{ run_id | job_id }}"
DATASET = "{{ params.dataset }}"

with DAG(
    dag_id="streamlake_replay",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["streamlake", "replay"],
    doc_md=__doc__,
    user_defined_filters=JINJA_FILTERS,
    params={
        "dataset": Param(type="string", enum=DATASETS, description="the dataset whose raw topic is replayed"),
        "from_offsets": Param(None, type=["null", "object"], description='first offset per partition, e.g. {"0": 100}'),
        "to_offsets": Param(None, type=["null", "object"], description='end offset per partition, exclusive, e.g. {"0": 200}'),
        "from_time": Param(None, type=["null", "string"], description="first record time, ISO-8601 (UTC when no zone)"),
        "to_time": Param(None, type=["null", "string"], description="end record time, exclusive, ISO-8601"),
        "partitions": Param(None, type=["null", "string"], description="only these partitions, e.g. 0,2 (default: all)"),
    },
):
    resolve = StreamLakeJob(
        task_id="resolve", job="replay_batch", arguments=["--dataset", DATASET, "--resolve-only", "--replay-id", REPLAY_ID],
        optional_args={flag: f"{{{{ params.{name} | job_arg }}}}" for flag, name in (
            ("--from-offsets", "from_offsets"), ("--to-offsets", "to_offsets"), ("--from-time", "from_time"),
            ("--to-time", "to_time"), ("--partitions", "partitions"))},
    )
    replay = StreamLakeJob(task_id="replay", job="replay_batch", arguments=["--dataset", DATASET, "--replay-id", REPLAY_ID, "--no-rebuild"])
    rebuild = StreamLakeJob(task_id="rebuild", job="rebuild_batch", arguments=["--dataset", DATASET, "--replay-id", REPLAY_ID])
    resolve >> replay >> rebuild >> refresh_sql_tables()
