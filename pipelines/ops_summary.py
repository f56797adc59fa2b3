"""The ops summary's aggregations (pure): rows per layer, DLQ records by reason, Kafka lag per
partition, the last runs with their checks, replays and re-drives.

Each function takes DataFrames and plain values and returns a small DataFrame with a fixed
`select`; the job (`jobs/ops_summary.py`) reads the tables and topics, collects these frames and
writes the report. Nothing here reads, writes or knows where a table lives. Dates are UTC dates (the
session time zone is UTC).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StructField, StructType

REPLAY_JOB = "replay"

# Kafka's watermarks per partition, as the job builds them from the admin client's answer.
END_OFFSETS_SCHEMA = StructType([
    StructField("partition", IntegerType(), False),
    StructField("low_offset", LongType(), False),  # the first offset Kafka still holds
    StructField("end_offset", LongType(), False),  # the offset the next record will get
])
# The offsets Bronze has reached per partition: the next offset it will read.
REACHED_OFFSETS_SCHEMA = StructType([
    StructField("partition", IntegerType(), False),
    StructField("reached_offset", LongType(), False),
])


def is_on_date(day: Column, on_date: date) -> Column:
    return day == F.lit(on_date)


def count_rows_on_date(table_df: DataFrame, date_column: str, on_date: date) -> DataFrame:
    """Grain: one row. `rows_on_date`: rows whose `date_column` is `on_date`; `rows_total`: all rows."""
    return table_df.agg(
        F.count_if(is_on_date(F.col(date_column), on_date)).alias("rows_on_date"),
        F.count(F.lit(1)).alias("rows_total"),
    ).select(F.col("rows_on_date").cast("long"), F.col("rows_total").cast("long"))


def dlq_by_reason(dlq_records_df: DataFrame, on_date: date) -> DataFrame:
    """Grain: one row per `error_class` (key; null for a record without one). `records_on_date`:
    records whose source timestamp falls on `on_date`; `records_total`: all of them. Takes the DLQ
    records deduplicated (`pipelines.dlq.dedupe_dlq_records`), so a repeated record counts once."""
    return (
        dlq_records_df.groupBy("error_class")
        .agg(
            F.count_if(is_on_date(F.to_date("source_timestamp"), on_date)).alias("records_on_date"),
            F.count(F.lit(1)).alias("records_total"),
        )
        .select("error_class", F.col("records_on_date").cast("long"), F.col("records_total").cast("long"))
    )


def reached_offsets_from_bronze(bronze_df: DataFrame, raw_topic: str) -> DataFrame:
    """Grain: one row per partition of `raw_topic` with Bronze rows. `reached_offset`: the offset
    after the last one Bronze holds. Records the DLQ got after it are not counted as reached."""
    return (
        bronze_df.where(F.col("kafka_topic") == F.lit(raw_topic))
        .groupBy("kafka_partition")
        .agg(F.max("kafka_offset").alias("last_offset"))
        .select(F.col("kafka_partition").cast("int").alias("partition"), (F.col("last_offset") + 1).cast("long").alias("reached_offset"))
    )


def with_lag(end_offsets_df: DataFrame, reached_df: DataFrame) -> DataFrame:
    """Grain: one row per partition Kafka lists (`END_OFFSETS_SCHEMA`), key `partition`.
    `lag` = `end_offset` - `reached_offset`; where Bronze has reached nothing (null
    `reached_offset`) every record Kafka holds is behind: `end_offset` - `low_offset`."""
    reached_or_low = F.coalesce(F.col("reached_offset"), F.col("low_offset"))
    return (
        end_offsets_df.join(reached_df, on="partition", how="left")
        .select(
            F.col("partition").cast("int"), F.col("low_offset").cast("long"), F.col("end_offset").cast("long"),
            F.col("reached_offset").cast("long"), (F.col("end_offset") - reached_or_low).cast("long").alias("lag"),
        )
    )


def failed_check_name(table: Column, check: Column, column: Column) -> Column:
    """`<table>: <check>`, and ` (<column>)` when the check is on a column."""
    on_column = F.when(column.isNotNull(), F.concat(F.lit(" ("), column, F.lit(")"))).otherwise(F.lit(""))
    return F.concat(table, F.lit(": "), check, on_column)


def summarize_runs(batch_runs_df: DataFrame, quality_events_df: DataFrame, on_date: date, limit: int) -> DataFrame:
    """Grain: one row per run, key `run_id`: the last `limit` runs of each dataset (latest start
    first), with their checks passed and failed and the failed checks' names (sorted). `is_for_date`:
    the run owned `on_date`. A run with no recorded check (a replay) has zero of each."""
    is_passed, is_failed = F.col("success"), ~F.col("success")
    checks_df = quality_events_df.groupBy("run_id").agg(
        F.count_if(is_passed).alias("checks_passed"),
        F.count_if(is_failed).alias("checks_failed"),
        F.array_sort(F.collect_set(F.when(is_failed, failed_check_name(F.col("table"), F.col("check"), F.col("column")))))
        .alias("failed_checks"),
    )
    latest_first = Window.partitionBy("dataset").orderBy(F.col("started_at").desc(), F.col("run_id").desc())
    no_names = F.array().cast("array<string>")
    return (
        batch_runs_df.withColumn("recency", F.row_number().over(latest_first))
        .where(F.col("recency") <= F.lit(limit))
        .join(checks_df, on="run_id", how="left")
        .select(
            "dataset", "run_id", "job", "dates", "success", "started_at", "finished_at",
            F.array_contains("dates", F.lit(on_date)).alias("is_for_date"),
            F.coalesce(F.col("checks_passed"), F.lit(0)).cast("long").alias("checks_passed"),
            F.coalesce(F.col("checks_failed"), F.lit(0)).cast("long").alias("checks_failed"),
            F.coalesce(F.col("failed_checks"), no_names).alias("failed_checks"),
        )
    )


def count_replays(batch_runs_df: DataFrame, on_date: date) -> DataFrame:
    """Grain: one row per dataset with replays (`job = 'replay'` runs), key `dataset`. `on_date`:
    replays started on `on_date`; `records_inserted`: Bronze rows they added (their summary's
    `inserted`)."""
    is_replay = F.col("job") == F.lit(REPLAY_JOB)
    started_on_date = is_on_date(F.to_date("started_at"), on_date)
    inserted = F.get_json_object("summary", "$.inserted").try_cast("long")
    return (
        batch_runs_df.where(is_replay)
        .groupBy("dataset")
        .agg(
            F.count(F.lit(1)).alias("replays_total"),
            F.count_if(started_on_date).alias("replays_on_date"),
            F.count_if(~F.col("success")).alias("replays_failed"),
            F.coalesce(F.sum(inserted), F.lit(0)).alias("records_inserted"),
        )
        .select("dataset", *(F.col(c).cast("long") for c in ("replays_total", "replays_on_date", "replays_failed", "records_inserted")))
    )


def count_redrives(redrives_df: DataFrame, on_date: date) -> DataFrame:
    """Grain: one row per (`dataset`, `state`) of the re-drive ledger, key both. Counts distinct DLQ
    source records (`source_topic`, `source_partition`, `source_offset`): `records_total`, and
    `records_on_date` of the ledger rows recorded on `on_date`."""
    record = F.struct("source_topic", "source_partition", "source_offset")
    recorded_on_date = is_on_date(F.to_date("recorded_at"), on_date)
    return (
        redrives_df.groupBy("dataset", "state")
        .agg(F.count_distinct(record).alias("records_total"), F.count_distinct(F.when(recorded_on_date, record)).alias("records_on_date"))
        .select("dataset", "state", F.col("records_on_date").cast("long"), F.col("records_total").cast("long"))
    )
