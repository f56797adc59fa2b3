"""Pure transformations of Kafka rows, on tiny inline frames with hand-computed answers."""

from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from contracts.registry import get_contract
from contracts.spark_schema import envelope_schema
from pipelines.bronze import KAFKA_SOURCE_SCHEMA
from pipelines.kafka_records import select_envelope_columns, with_decoded_record, with_parsed_envelope

KAFKA_SCHEMA = KAFKA_SOURCE_SCHEMA
AT = datetime(2026, 1, 1, 12, 0)
VALUE = (
    '{"ingestion_id":"i-1","received_at":"2026-01-01T12:00:00Z","dataset":"user_events","schema_version":"v1",'
    '"producer":"p","payload":{"event_id":"e-1","user_id":7,"event_type":"login","page":"/","'
    'event_timestamp":"2026-01-01T11:59:00Z","source":"web"}}'
)


def test_decoded_record_names_coordinates_and_keeps_headers(spark: SparkSession) -> None:
    kafka_df = spark.createDataFrame(
        [
            (b"7", b"{}", "t", 1, 5, AT, 0, [("h", b"x")]),
            (None, None, "t", 0, 0, AT, 0, []),  # a tombstone: no key, no value
        ],
        KAFKA_SCHEMA,
    )
    expected_df = spark.createDataFrame(
        [("7", "{}", "t", 1, 5, AT, [("h", b"x")]), (None, None, "t", 0, 0, AT, [])],
        "key STRING, value STRING, topic STRING, partition INT, offset BIGINT, kafka_timestamp TIMESTAMP, "
        "headers ARRAY<STRUCT<key: STRING, value: BINARY>>",
    )
    assert_df_equality(with_decoded_record(kafka_df), expected_df, ignore_nullable=True)


def test_envelope_is_parsed_with_the_contract_schema_and_flattened(spark: SparkSession) -> None:
    kafka_df = spark.createDataFrame(
        [(b"7", VALUE.encode(), "t", 2, 9, AT, 0, []), (b"8", b"not json", "t", 0, 3, AT, 0, [])], KAFKA_SCHEMA
    )
    flat_df = (
        kafka_df.transform(with_decoded_record)
        .transform(with_parsed_envelope, envelope_schema(get_contract("user_events")))
        .transform(select_envelope_columns)
    )
    expected_df = spark.createDataFrame(
        [
            ("7", "t", 2, 9, AT, "i-1", "user_events", "v1", "p", datetime(2026, 1, 1, 12, 0),
             "e-1", 7, "login", "/", datetime(2026, 1, 1, 11, 59), "web"),
            ("8", "t", 0, 3, AT, None, None, None, None, None, None, None, None, None, None, None),
        ],
        "key STRING, topic STRING, partition INT, offset BIGINT, kafka_timestamp TIMESTAMP, ingestion_id STRING, "
        "dataset STRING, schema_version STRING, producer STRING, received_at TIMESTAMP, event_id STRING, "
        "user_id BIGINT, event_type STRING, page STRING, event_timestamp TIMESTAMP, source STRING",
    )
    assert_df_equality(flat_df, expected_df, ignore_nullable=True)
