"""The control plane's own Delta tables under `<lakehouse>/_ops/`: their names, schemas and writers.

    _ops/batch_runs       one row per batch run (silver, gold, replay): what it owned and touched
    _ops/quality_events   one row per check of a run (`jobs.quality`)
    _ops/dlq_redrives     the re-drive ledger, one row per DLQ record re-driven (`jobs.dlq_redrive`)

Grain of `batch_runs`: one row per run, key `run_id` (written once per run id: a retried record adds
nothing). The next step of a chain reads what to rebuild from it (Gold the event dates Silver
touched, a rebuild the ingestion dates a replay touched), so an orchestrator passes only the date
or the run id, never a list computed by the previous task.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from conf.settings import Settings
from jobs.batch_run import RunResult
from jobs.lakehouse_io import append_delta_idempotent, delta_table_exists

BATCH_RUNS, QUALITY_EVENTS, DLQ_REDRIVES = "batch_runs", "quality_events", "dlq_redrives"

# The re-drive ledger (`jobs.dlq_redrive`). Grain: one row per raw record ever re-driven from a DLQ;
# key (`source_topic`, `source_partition`, `source_offset`), inserted once (insert-only MERGE), so a
# record is re-driven at most once. `state` is 'pending' from before it is sent until its ack, then
# 'sent' with where it landed in the raw topic (`raw_partition`, `raw_offset`).
DLQ_REDRIVES_SCHEMA = StructType([
    StructField("redrive_id", StringType(), False),  # the run that recorded the intent, also the `redrive.id` header
    StructField("dataset", StringType(), False),
    StructField("source_topic", StringType(), False),
    StructField("source_partition", IntegerType(), False),
    StructField("source_offset", LongType(), False),
    StructField("dlq_topic", StringType(), False),
    StructField("dlq_partition", IntegerType(), False),
    StructField("dlq_offset", LongType(), False),
    StructField("error_class", StringType(), True),
    StructField("state", StringType(), False),  # pending | sent
    StructField("raw_partition", IntegerType(), True),
    StructField("raw_offset", LongType(), True),
    StructField("recorded_at", TimestampType(), False),  # when the intent was recorded
    StructField("sent_at", TimestampType(), True),
])

BATCH_RUNS_SCHEMA = StructType([
    StructField("run_id", StringType(), False),
    StructField("job", StringType(), False),  # silver | gold | replay
    StructField("dataset", StringType(), False),
    # The dates the run owned: Silver's ingestion dates, Gold's event dates, a replay's ingestion
    # dates of the rows it added.
    StructField("dates", ArrayType(DateType(), False), False),
    StructField("event_dates_touched", ArrayType(DateType(), False), False),
    StructField("success", BooleanType(), False),
    StructField("started_at", TimestampType(), False),
    StructField("finished_at", TimestampType(), False),
    StructField("summary", StringType(), False),  # the run's result without per-check outcomes, JSON
])


def ops_table_uri(settings: Settings, name: str) -> str:
    return settings.lakehouse.table_uri("_ops", name)


def record_run(spark: SparkSession, settings: Settings, result: RunResult) -> None:
    """Append the run's row to `_ops/batch_runs` (once per run id)."""
    touched = [date.fromisoformat(d) if isinstance(d, str) else d for d in result.details.get("event_dates_touched", [])]
    row = (
        result.run_id, result.job, result.dataset, list(result.dates), sorted(touched), result.success,
        result.started_at.astimezone(UTC).replace(tzinfo=None), datetime.now(UTC).replace(tzinfo=None),
        json.dumps(result.summary(), sort_keys=True),
    )
    append_delta_idempotent(spark.createDataFrame([row], BATCH_RUNS_SCHEMA), ops_table_uri(settings, BATCH_RUNS), result.run_id, 0)


def event_dates_touched(spark: SparkSession, settings: Settings, job: str, dataset: str, dates: list[date]) -> list[date]:
    """Every event date that successful `job` runs owning any of `dates` touched (reruns only add)."""
    path = ops_table_uri(settings, BATCH_RUNS)
    if not delta_table_exists(spark, path):
        return []
    owned = F.arrays_overlap(F.col("dates"), F.array(*(F.lit(d) for d in dates)))
    rows = (
        spark.read.format("delta").load(path)
        .where((F.col("job") == job) & (F.col("dataset") == dataset) & F.col("success") & owned)
        .select(F.explode("event_dates_touched").alias("event_date")).distinct().collect()
    )
    return sorted(r.event_date for r in rows)


def run_dates(spark: SparkSession, settings: Settings, run_id: str) -> tuple[str, list[date]]:
    """A recorded run's dataset and owned dates; LookupError naming the run id when there is none."""
    path = ops_table_uri(settings, BATCH_RUNS)
    found = spark.read.format("delta").load(path).where(F.col("run_id") == run_id).collect() if delta_table_exists(spark, path) else []
    if not found:
        raise LookupError(f"no run {run_id!r} in {path}")
    return found[0].dataset, sorted(found[0].dates)
