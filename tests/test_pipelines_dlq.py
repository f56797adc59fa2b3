"""The DLQ's pure transformations on tiny inline frames: reading the `dlq.*` headers, deduping on
source coordinates, the summaries and samples, a re-drive's records and finding them again."""

from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.bronze import KAFKA_SOURCE_SCHEMA
from pipelines.dlq import (
    RedriveHeader,
    dedupe_dlq_records,
    filter_by_reason,
    filter_named_coordinates,
    landed_redrives,
    sample_records,
    summarise_by_reason,
    summarise_by_reason_and_hour,
    to_redrive_records,
    with_dlq_fields,
)

RAW, DLQ = "streamlake.orders.raw", "streamlake.orders.dlq"
ORIGINAL = [("streamlake.producer", b"tests")]


def dlq_headers(partition: int, offset: int, error_class: str, at: str, reason: str = "bad") -> list[tuple[str, bytes]]:
    return [("dlq.error.class", error_class.encode()), ("dlq.error.reason", reason.encode()),
            ("dlq.source.topic", RAW.encode()), ("dlq.source.partition", str(partition).encode()),
            ("dlq.source.offset", str(offset).encode()), ("dlq.source.timestamp", at.encode()),
            ("dlq.failed.at", b"2026-01-02T05:00:00.000Z"), ("dlq.job", b"bronze_stream/orders app_id=a")]


def redriven(dlq_offset: int, source_offset: int) -> list[tuple[str, bytes]]:
    return [(RedriveHeader.ID, b"redrive-1"), (RedriveHeader.DLQ_TOPIC, DLQ.encode()), (RedriveHeader.DLQ_PARTITION, b"0"),
            (RedriveHeader.DLQ_OFFSET, str(dlq_offset).encode()), (RedriveHeader.SOURCE_TOPIC, RAW.encode()),
            (RedriveHeader.SOURCE_PARTITION, b"0"), (RedriveHeader.SOURCE_OFFSET, str(source_offset).encode())]


def dlq_kafka_rows(spark: SparkSession):
    """DLQ offsets 0..4: offset 3 repeats offset 0 (a retried batch); offset 2 came back after a
    re-drive; offset 4 has no `dlq.*` headers at all."""
    at = datetime(2026, 1, 2, 5, 0, 0)
    return spark.createDataFrame(
        [
            (b"O-1", b"{" + b" " * 9 + b"}", DLQ, 0, 0, at, 0, ORIGINAL + dlq_headers(0, 5, "oversized", "2026-01-02T03:15:00.250Z")),
            (b"O-2", b"nope", DLQ, 0, 1, at, 0, ORIGINAL + dlq_headers(1, 7, "malformed_json", "2026-01-02T03:50:00.000Z")),
            (b"O-3", b"{}", DLQ, 0, 2, at, 0,
             ORIGINAL + redriven(9, 2) + dlq_headers(2, 40, "malformed_json", "2026-01-02T04:10:00.000Z")),
            (b"O-1", b"{" + b" " * 9 + b"}", DLQ, 0, 3, at, 0, ORIGINAL + dlq_headers(0, 5, "oversized", "2026-01-02T03:15:00.250Z")),
            (None, None, DLQ, 0, 4, at, 0, []),
        ],
        KAFKA_SOURCE_SCHEMA,
    )


def test_dlq_fields_read_the_headers_and_dedupe_keeps_one_copy_per_source_coordinates(spark: SparkSession) -> None:
    records_df = dlq_kafka_rows(spark).transform(with_dlq_fields).transform(dedupe_dlq_records)

    expected_df = spark.createDataFrame(
        [
            (0, RAW, 0, 5, datetime(2026, 1, 2, 3, 15, 0, 250000), "oversized", False),
            (1, RAW, 1, 7, datetime(2026, 1, 2, 3, 50), "malformed_json", False),
            (2, RAW, 2, 40, datetime(2026, 1, 2, 4, 10), "malformed_json", True),
            (4, None, None, None, None, None, False),
        ],
        "dlq_offset long, source_topic string, source_partition int, source_offset long, source_timestamp timestamp, "
        "error_class string, is_redriven boolean",
    )
    selected_df = records_df.select("dlq_offset", "source_topic", "source_partition", "source_offset", "source_timestamp",
                                    "error_class", "is_redriven")
    assert_df_equality(selected_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_summaries_count_each_record_once_by_reason_and_by_hour(spark: SparkSession) -> None:
    records_df = dlq_kafka_rows(spark).transform(with_dlq_fields).transform(dedupe_dlq_records)

    by_reason_df = records_df.transform(summarise_by_reason)
    by_hour_df = records_df.transform(summarise_by_reason_and_hour)

    assert_df_equality(by_reason_df, spark.createDataFrame(
        [
            ("malformed_json", 2, 1, datetime(2026, 1, 2, 3, 50), datetime(2026, 1, 2, 4, 10)),
            ("oversized", 1, 0, datetime(2026, 1, 2, 3, 15, 0, 250000), datetime(2026, 1, 2, 3, 15, 0, 250000)),
            (None, 1, 0, None, None),
        ],
        "error_class string, records long, redriven_records long, first_source_timestamp timestamp, last_source_timestamp timestamp",
    ), ignore_nullable=True)
    assert_df_equality(by_hour_df, spark.createDataFrame(
        [
            ("malformed_json", datetime(2026, 1, 2, 3), 1, 0),
            ("malformed_json", datetime(2026, 1, 2, 4), 1, 1),
            ("oversized", datetime(2026, 1, 2, 3), 1, 0),
            (None, None, 1, 0),
        ],
        "error_class string, hour timestamp, records long, redriven_records long",
    ), ignore_nullable=True)


def test_samples_are_the_first_records_of_each_reason_with_a_value_prefix(spark: SparkSession) -> None:
    records_df = dlq_kafka_rows(spark).transform(with_dlq_fields).transform(dedupe_dlq_records)

    samples_df = records_df.transform(sample_records, 1, 3).select(
        "error_class", "sample", "source_offset", "key", "value_prefix", "value_bytes", "is_redriven")

    assert_df_equality(samples_df, spark.createDataFrame(
        [
            ("malformed_json", 1, 7, b"O-2", b"nop", 4, False),
            ("oversized", 1, 5, b"O-1", b"{  ", 11, False),
            (None, 1, None, None, None, None, False),
        ],
        "error_class string, sample int, source_offset long, key binary, value_prefix binary, value_bytes int, is_redriven boolean",
    ), ignore_nullable=True)


def test_a_selection_by_reason_or_by_named_coordinates(spark: SparkSession) -> None:
    records_df = dlq_kafka_rows(spark).transform(with_dlq_fields).transform(dedupe_dlq_records)
    named_df = spark.createDataFrame([(RAW, 2, 40), (RAW, 0, 6)], "topic string, partition int, offset long")

    by_reason_df = records_df.transform(filter_by_reason, "malformed_json").select("source_offset")
    named_only_df = records_df.transform(filter_named_coordinates, named_df).select("source_offset")

    assert_df_equality(by_reason_df, spark.createDataFrame([(7,), (40,)], "source_offset long"), ignore_row_order=True,
                       ignore_nullable=True)
    assert_df_equality(named_only_df, spark.createDataFrame([(40,)], "source_offset long"), ignore_nullable=True)


def test_redrive_records_keep_key_value_and_original_headers_and_name_their_dlq_record(spark: SparkSession) -> None:
    records_df = (
        dlq_kafka_rows(spark).transform(with_dlq_fields).transform(dedupe_dlq_records)
        .filter(F.col("dlq_offset").isin(0, 2))
        .withColumn("redrive_id", F.lit("redrive-2"))
    )

    redrive_df = records_df.transform(to_redrive_records).select("source_offset", "key", "value", "headers")

    def headers(dlq_offset: int, source_partition: int, source_offset: int) -> list[tuple[str, bytes]]:
        return ORIGINAL + [(RedriveHeader.ID, b"redrive-2"), (RedriveHeader.DLQ_TOPIC, DLQ.encode()),
                           (RedriveHeader.DLQ_PARTITION, b"0"), (RedriveHeader.DLQ_OFFSET, str(dlq_offset).encode()),
                           (RedriveHeader.SOURCE_TOPIC, RAW.encode()), (RedriveHeader.SOURCE_PARTITION, str(source_partition).encode()),
                           (RedriveHeader.SOURCE_OFFSET, str(source_offset).encode())]

    expected_df = spark.createDataFrame(
        # The record that came back after a re-drive loses the earlier `redrive.*` headers for this one's.
        [(5, b"O-1", b"{" + b" " * 9 + b"}", headers(0, 0, 5)), (40, b"O-3", b"{}", headers(2, 2, 40))],
        "source_offset long, key binary, value binary, headers array<struct<key:string,value:binary>>",
    )
    assert_df_equality(redrive_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_landed_redrives_find_pending_records_by_their_redrive_headers(spark: SparkSession) -> None:
    at = datetime(2026, 1, 2, 6)
    raw_df = spark.createDataFrame(
        [
            (b"O-1", b"{}", RAW, 1, 100, at, 0, ORIGINAL),  # an ordinary record
            (b"O-3", b"{}", RAW, 0, 101, at, 0, ORIGINAL + redriven(9, 2)),  # pending, found
            (b"O-4", b"{}", RAW, 0, 102, at, 0, ORIGINAL + [(k, v.replace(b"redrive-1", b"other")) for k, v in redriven(9, 3)]),
        ],
        KAFKA_SOURCE_SCHEMA,
    )
    pending_df = spark.createDataFrame(
        [("redrive-1", RAW, 0, 2), ("redrive-1", RAW, 0, 3)],
        "redrive_id string, source_topic string, source_partition int, source_offset long",
    )

    landed_df = landed_redrives(raw_df, pending_df)

    assert_df_equality(landed_df, spark.createDataFrame(
        [("redrive-1", RAW, 0, 2, 0, 101)],
        "redrive_id string, source_topic string, source_partition int, source_offset long, raw_partition int, raw_offset long",
    ), ignore_nullable=True)
