"""The ops summary's aggregations on tiny frames, against answers computed by hand: which rows fall
on the date, DLQ reasons on the date and in all, lag where Bronze reached nothing, the last runs
with their failed checks, replays and re-drives counted per dataset."""

from __future__ import annotations

import json
from datetime import date, datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pipelines.ops_summary import (
    END_OFFSETS_SCHEMA,
    REACHED_OFFSETS_SCHEMA,
    count_redrives,
    count_replays,
    count_rows_on_date,
    dlq_by_reason,
    reached_offsets_from_bronze,
    summarize_runs,
    with_lag,
)

DAY, OTHER_DAY = date(2030, 1, 2), date(2030, 1, 1)
RAW = "streamlake.orders.raw"

BATCH_RUNS_SCHEMA = StructType([
    StructField("run_id", StringType()),
    StructField("job", StringType()),
    StructField("dataset", StringType()),
    StructField("dates", ArrayType(DateType())),
    StructField("success", BooleanType()),
    StructField("started_at", TimestampType()),
    StructField("finished_at", TimestampType()),
    StructField("summary", StringType()),
])
QUALITY_EVENTS_SCHEMA = StructType([
    StructField("run_id", StringType()),
    StructField("table", StringType()),
    StructField("check", StringType()),
    StructField("column", StringType()),
    StructField("success", BooleanType()),
])


def test_rows_are_counted_on_the_date_and_in_total(spark: SparkSession) -> None:
    table_df = spark.createDataFrame([(DAY,), (DAY,), (OTHER_DAY,), (None,)], "ingestion_date date")
    expected_df = spark.createDataFrame([(2, 4)], "rows_on_date long, rows_total long")
    assert_df_equality(table_df.transform(count_rows_on_date, "ingestion_date", DAY), expected_df, ignore_nullable=True)


def test_an_empty_table_counts_zero_rows(spark: SparkSession) -> None:
    table_df = spark.createDataFrame([], "event_date date")
    expected_df = spark.createDataFrame([(0, 0)], "rows_on_date long, rows_total long")
    assert_df_equality(table_df.transform(count_rows_on_date, "event_date", DAY), expected_df, ignore_nullable=True)


def test_dlq_reasons_count_records_of_the_date_and_of_all_time(spark: SparkSession) -> None:
    records_df = spark.createDataFrame([
        ("malformed_json", datetime(2030, 1, 2, 0, 0)),
        ("malformed_json", datetime(2030, 1, 1, 23, 59, 59)),
        ("oversized", datetime(2030, 1, 2, 23, 59, 59)),
        ("oversized", None),  # no readable source timestamp: counted in all, on no date
        (None, datetime(2030, 1, 2, 5, 0)),  # a record without a reason
    ], "error_class string, source_timestamp timestamp")
    expected_df = spark.createDataFrame(
        [(None, 1, 1), ("malformed_json", 1, 2), ("oversized", 1, 2)], "error_class string, records_on_date long, records_total long",
    )
    assert_df_equality(records_df.transform(dlq_by_reason, DAY), expected_df, ignore_nullable=True, ignore_row_order=True)


def test_bronze_reached_the_offset_after_its_last_row_per_partition(spark: SparkSession) -> None:
    bronze_df = spark.createDataFrame(
        [(RAW, 0, 4), (RAW, 0, 9), (RAW, 2, 0), ("streamlake.other.raw", 1, 50)],
        "kafka_topic string, kafka_partition int, kafka_offset long",
    )
    expected_df = spark.createDataFrame([(0, 10), (2, 1)], REACHED_OFFSETS_SCHEMA)
    assert_df_equality(bronze_df.transform(reached_offsets_from_bronze, RAW), expected_df, ignore_nullable=True, ignore_row_order=True)


def test_lag_is_end_minus_reached_and_everything_held_where_nothing_was_reached(spark: SparkSession) -> None:
    end_df = spark.createDataFrame([(0, 0, 12), (1, 5, 5), (2, 3, 8)], END_OFFSETS_SCHEMA)
    reached_df = spark.createDataFrame([(0, 10), (1, 5)], REACHED_OFFSETS_SCHEMA)
    expected_df = spark.createDataFrame(
        [(0, 0, 12, 10, 2), (1, 5, 5, 5, 0), (2, 3, 8, None, 5)],
        "partition int, low_offset long, end_offset long, reached_offset long, lag long",
    )
    assert_df_equality(end_df.transform(with_lag, reached_df), expected_df, ignore_nullable=True, ignore_row_order=True)


def _run(run_id: str, job: str, dataset: str, dates: list[date], success: bool, started: datetime, summary: dict | None = None) -> tuple:
    return (run_id, job, dataset, dates, success, started, started.replace(minute=30), json.dumps(summary or {}))


def test_the_last_runs_of_each_dataset_carry_their_checks(spark: SparkSession) -> None:
    runs_df = spark.createDataFrame([
        _run("s-old", "silver", "orders", [OTHER_DAY], True, datetime(2030, 1, 2, 1)),
        _run("s-new", "silver", "orders", [DAY], False, datetime(2030, 1, 3, 1)),
        _run("g-new", "gold", "orders", [OTHER_DAY, DAY], True, datetime(2030, 1, 3, 2)),
        _run("r-1", "replay", "user_events", [], True, datetime(2030, 1, 2, 5)),
    ], BATCH_RUNS_SCHEMA)
    checks_df = spark.createDataFrame([
        ("s-old", "silver/orders", "bronze_rows_reconcile", None, True),
        ("s-new", "silver/orders", "schema_version_known", None, False),
        ("s-new", "silver/orders", "expect_column_values_to_not_be_null", "order_id", False),
        ("s-new", "silver/orders", "bronze_rows_reconcile", None, True),
        ("g-new", "gold/revenue_daily", "expect_column_values_to_be_unique", "event_date", True),
    ], QUALITY_EVENTS_SCHEMA)
    expected_df = spark.createDataFrame([
        ("orders", "g-new", "gold", [OTHER_DAY, DAY], True, datetime(2030, 1, 3, 2), datetime(2030, 1, 3, 2, 30), True, 1, 0, []),
        ("orders", "s-new", "silver", [DAY], False, datetime(2030, 1, 3, 1), datetime(2030, 1, 3, 1, 30), True, 1, 2,
         ["silver/orders: expect_column_values_to_not_be_null (order_id)", "silver/orders: schema_version_known"]),
        ("user_events", "r-1", "replay", [], True, datetime(2030, 1, 2, 5), datetime(2030, 1, 2, 5, 30), False, 0, 0, []),
    ], "dataset string, run_id string, job string, dates array<date>, success boolean, started_at timestamp, "
       "finished_at timestamp, is_for_date boolean, checks_passed long, checks_failed long, failed_checks array<string>")
    assert_df_equality(runs_df.transform(summarize_runs, checks_df, DAY, 2), expected_df, ignore_nullable=True, ignore_row_order=True)


def test_replays_are_counted_per_dataset_with_the_rows_they_added(spark: SparkSession) -> None:
    runs_df = spark.createDataFrame([
        _run("r-1", "replay", "orders", [DAY], True, datetime(2030, 1, 2, 5), {"inserted": 3}),
        _run("r-2", "replay", "orders", [], False, datetime(2030, 1, 1, 5)),  # failed before it inserted anything
        _run("r-3", "replay", "orders", [DAY], True, datetime(2030, 1, 2, 9), {"inserted": 4}),
        _run("s-1", "silver", "orders", [DAY], True, datetime(2030, 1, 2, 6), {"inserted": 100}),
    ], BATCH_RUNS_SCHEMA)
    expected_df = spark.createDataFrame(
        [("orders", 3, 2, 1, 7)], "dataset string, replays_total long, replays_on_date long, replays_failed long, records_inserted long",
    )
    assert_df_equality(runs_df.transform(count_replays, DAY), expected_df, ignore_nullable=True)


def test_redrives_count_distinct_dlq_records_per_state(spark: SparkSession) -> None:
    ledger_df = spark.createDataFrame([
        ("orders", "redriven", RAW, 0, 7, datetime(2030, 1, 2, 1)),
        ("orders", "redriven", RAW, 0, 7, datetime(2030, 1, 2, 2)),  # recorded twice, one record
        ("orders", "redriven", RAW, 1, 7, datetime(2030, 1, 1, 2)),
        ("orders", "failed", RAW, 0, 8, datetime(2030, 1, 2, 3)),
    ], "dataset string, state string, source_topic string, source_partition int, source_offset long, recorded_at timestamp")
    expected_df = spark.createDataFrame([("orders", "failed", 1, 1), ("orders", "redriven", 1, 2)],
                                        "dataset string, state string, records_on_date long, records_total long")
    assert_df_equality(ledger_df.transform(count_redrives, DAY), expected_df, ignore_nullable=True, ignore_row_order=True)
