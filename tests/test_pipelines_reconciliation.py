"""Kafka against Bronze + DLQ, on tiny inline frames: which records landed where, and which raw
partitions reconcile (each offset Kafka holds landed exactly once, nothing else did), over the whole
topic or from chosen first offsets on."""

from __future__ import annotations

import re

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.kafka_offsets import OffsetRangeError, Watermarks
from pipelines.bronze import KAFKA_SOURCE_SCHEMA
from pipelines.reconciliation import filter_accounted, landed_offsets, reconciliation_by_partition
from streamlake.reconcile import accounted_ranges

RAW = "streamlake.orders.raw"
LANDED_SCHEMA = "partition int, offset long, landed_in string, error_class string"
BRONZE_SCHEMA = "kafka_partition int, kafka_offset long, bronze_replay_id string"
RECONCILIATION_SCHEMA = (
    "partition int, low long, high long, bronze_rows long, dlq_records long, distinct_offsets long, "
    "lowest_offset long, highest_offset long, is_reconciled boolean"
)


def dlq_row(source_topic: str, partition: int, offset: int, error_class: str, dlq_offset: int):
    headers = [("streamlake.producer", b"tests"), ("dlq.error.class", error_class.encode()),
               ("dlq.source.topic", source_topic.encode()), ("dlq.source.partition", str(partition).encode()),
               ("dlq.source.offset", str(offset).encode())]
    return (None, b"{", "streamlake.orders.dlq", 0, dlq_offset, None, 0, headers)


def test_landed_offsets_count_a_repeated_dlq_record_once_and_only_this_raw_topic(spark: SparkSession) -> None:
    bronze_df = spark.createDataFrame([(0, 10, None), (1, 3, None)], BRONZE_SCHEMA)
    dlq_df = spark.createDataFrame(
        [
            dlq_row(RAW, 0, 11, "malformed_json", 0),
            dlq_row(RAW, 0, 11, "malformed_json", 1),  # sent again by a retried batch
            dlq_row("streamlake.user_events.raw", 0, 12, "wrong_type", 2),  # another topic's record
        ],
        KAFKA_SOURCE_SCHEMA,
    )

    assert_df_equality(
        landed_offsets(bronze_df, dlq_df, RAW),
        spark.createDataFrame([(0, 10, "bronze", None), (1, 3, "bronze", None), (0, 11, "dlq", "malformed_json")], LANDED_SCHEMA),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_a_dlq_record_a_replay_later_landed_in_bronze_counts_once_in_bronze(spark: SparkSession) -> None:
    bronze_df = spark.createDataFrame([(0, 10, None), (0, 11, "replay-1"), (0, 12, None)], BRONZE_SCHEMA)
    dlq_df = spark.createDataFrame(
        [
            dlq_row(RAW, 0, 11, "wrong_type", 0),  # judged invalid by the stream, accepted by a replay after a fix
            dlq_row(RAW, 0, 12, "wrong_type", 1),  # a streamed row that is also in the DLQ: stays counted twice
            dlq_row(RAW, 0, 13, "malformed_json", 2),
        ],
        KAFKA_SOURCE_SCHEMA,
    )

    assert_df_equality(
        landed_offsets(bronze_df, dlq_df, RAW),
        spark.createDataFrame([(0, 10, "bronze", None), (0, 11, "bronze", None), (0, 12, "bronze", None),
                               (0, 12, "dlq", "wrong_type"), (0, 13, "dlq", "malformed_json")], LANDED_SCHEMA),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_a_partition_reconciles_only_when_each_offset_kafka_holds_landed_once(spark: SparkSession) -> None:
    kafka_offsets_df = spark.createDataFrame(
        [(0, 10, 14), (1, 0, 3), (2, 5, 7), (3, 0, 0), (4, 0, 2), (6, 0, 2), (7, 0, 2)], "partition int, low long, high long",
    )
    landed = [
        # 0: offsets 10-13, three in Bronze and one in the DLQ.
        (0, 10, "bronze"), (0, 11, "bronze"), (0, 12, "bronze"), (0, 13, "dlq"),
        # 1: offset 1 in Bronze twice, offset 2 nowhere: the counts add up, the distinct offsets do not.
        (1, 0, "bronze"), (1, 1, "bronze"), (1, 1, "bronze"),
        # 2: offset 4 aged out of Kafka (its Bronze row stays, out of the accounting); 5 and 6 landed.
        (2, 4, "bronze"), (2, 5, "bronze"), (2, 6, "dlq"),
        # 3: an empty partition, nothing landed. 4: two records in Kafka, nothing landed.
        # 5: a row from a partition Kafka does not list.
        (5, 0, "bronze"),
        # 6: a DLQ record for an offset past the partition's end.
        (6, 0, "bronze"), (6, 1, "dlq"), (6, 2, "dlq"),
        # 7: offset 1 both in Bronze and in the DLQ.
        (7, 0, "bronze"), (7, 1, "bronze"), (7, 1, "dlq"),
    ]
    landed_df = spark.createDataFrame([(*row, None) for row in landed], LANDED_SCHEMA)

    expected_df = spark.createDataFrame(
        [
            (0, 10, 14, 3, 1, 4, 10, 13, True),
            (1, 0, 3, 3, 0, 2, 0, 1, False),
            (2, 5, 7, 1, 1, 2, 5, 6, True),
            (3, 0, 0, 0, 0, 0, None, None, True),
            (4, 0, 2, 0, 0, 0, None, None, False),
            (5, None, None, 1, 0, 1, 0, 0, False),
            (6, 0, 2, 1, 2, 3, 0, 2, False),
            (7, 0, 2, 2, 1, 2, 0, 1, False),
        ],
        RECONCILIATION_SCHEMA,
    )
    assert_df_equality(
        reconciliation_by_partition(landed_df, kafka_offsets_df), expected_df, ignore_row_order=True, ignore_nullable=True,
    )


def test_only_what_landed_inside_the_accounted_range_is_accounted(spark: SparkSession) -> None:
    # The range accounted: [3, 6) of partition 0, [0, 3) of partition 1.
    kafka_offsets_df = spark.createDataFrame([(0, 3, 6), (1, 0, 3)], "partition int, low long, high long")
    landed = [
        # 0: offset 1 twice (an earlier writer's DLQ record for a Bronze row), 2 nowhere: before the range.
        (0, 1, "bronze", None), (0, 1, "dlq", "wrong_type"), (0, 3, "bronze", None), (0, 4, "dlq", "malformed_json"),
        (0, 5, "bronze", None),
        (1, 0, "bronze", None), (1, 1, "bronze", None), (1, 2, "bronze", None),
        (1, 7, "dlq", "malformed_json"),  # past the range's end (a later writer's, or one Kafka never held)
        (9, 0, "dlq", "wrong_type"),  # from a partition Kafka does not list: always accounted
    ]
    landed_df = spark.createDataFrame(landed, LANDED_SCHEMA)

    assert_df_equality(
        landed_df.transform(filter_accounted, kafka_offsets_df, up_to_high=True),
        spark.createDataFrame([row for row in landed if (row[0] != 0 or row[1] >= 3) and row[1] != 7], LANDED_SCHEMA),
        ignore_row_order=True, ignore_nullable=True,
    )
    reconciled = [(0, 3, 6, 2, 1, 3, 3, 5, True), (1, 0, 3, 3, 0, 3, 0, 2, True), (9, None, None, 0, 1, 1, 0, 0, False)]
    assert_df_equality(
        reconciliation_by_partition(landed_df, kafka_offsets_df, up_to_high=True),
        spark.createDataFrame(reconciled, RECONCILIATION_SCHEMA), ignore_row_order=True, ignore_nullable=True,
    )
    # Without an end asked for, the record past partition 1's high watermark is accounted, and fails it.
    assert_df_equality(
        reconciliation_by_partition(landed_df, kafka_offsets_df),
        spark.createDataFrame([reconciled[0], (1, 0, 3, 3, 1, 4, 0, 7, False), reconciled[2]], RECONCILIATION_SCHEMA),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_the_accounted_range_is_the_one_asked_for_within_what_kafka_holds() -> None:
    held = {0: Watermarks(0, 10, 50), 1: Watermarks(1, 0, 7), 2: Watermarks(2, 0, 4)}

    assert accounted_ranges(RAW, held) == [Watermarks(0, 10, 50), Watermarks(1, 0, 7), Watermarks(2, 0, 4)]
    # 0: asked from 4, but retention already removed 0-9; 1: from 7, nothing yet; 2 not named: all of it.
    assert accounted_ranges(RAW, held, {0: 4, 1: 7}) == [Watermarks(0, 10, 50), Watermarks(1, 7, 7), Watermarks(2, 0, 4)]
    assert accounted_ranges(RAW, held, {0: 30}) == [Watermarks(0, 30, 50), Watermarks(1, 0, 7), Watermarks(2, 0, 4)]
    assert accounted_ranges(RAW, held, {0: 30}, {0: 40, 2: 3}) == [Watermarks(0, 30, 40), Watermarks(1, 0, 7), Watermarks(2, 0, 3)]
    with pytest.raises(OffsetRangeError, match=rf"^{re.escape(RAW)} partition 1: first offset 8 is past the high watermark 7$"):
        accounted_ranges(RAW, held, {1: 8})
    with pytest.raises(OffsetRangeError, match=rf"^{re.escape(RAW)} partition 1: end offset 8 is past the high watermark 7$"):
        accounted_ranges(RAW, held, None, {1: 8})
    with pytest.raises(OffsetRangeError, match=rf"^{re.escape(RAW)} partition 0: start offset 30 is after end offset 20$"):
        accounted_ranges(RAW, held, {0: 30}, {0: 20})
    with pytest.raises(OffsetRangeError, match=rf"^topic {re.escape(RAW)} has no partition 3 \(partitions: \[0, 1, 2\]\)$"):
        accounted_ranges(RAW, held, {3: 0})
