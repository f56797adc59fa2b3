"""Bronze's pure transformations on tiny inline frames: the verdict column and the Bronze row."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from contracts.registry import get_contract
from pipelines.bronze import KAFKA_SOURCE_DDL, filter_valid, to_bronze_rows, with_verdict
from tests.test_pipelines_record_checks import ORDER, changed

ORDERS = get_contract("orders")
AT = datetime(2026, 1, 2, 3, 4, 5)
HEADERS = [("streamlake.producer", b"tests")]


def kafka_rows(spark: SparkSession, values: list[bytes | None]):
    return spark.createDataFrame(
        [(b"O-1", value, ORDERS.raw_topic, 0, offset, AT, 0, HEADERS) for offset, value in enumerate(values)],
        KAFKA_SOURCE_DDL,
    )


def test_every_record_gets_one_verdict_with_its_reason(spark: SparkSession) -> None:
    kafka_df = kafka_rows(spark, [changed(), b'{"order_id": ', None, changed(payload__status="lost"), changed()])

    verdict_df = kafka_df.transform(with_verdict, ORDERS, 4096).select("offset", "error")

    expected_df = spark.createDataFrame(
        [
            (0, None),
            (1, ("malformed_json", "value is not valid JSON (EOF while parsing a value at line 1 column 13)")),
            (2, ("malformed_json", "value is empty (null)")),
            (3, ("out_of_contract", "payload.status: Input should be 'created', 'paid', 'shipped', 'delivered', "
                                    "'cancelled' or 'failed' (got \"lost\")")),
            (4, None),
        ],
        "offset BIGINT, error STRUCT<error_class: STRING, error_reason: STRING>",
    )
    assert_df_equality(verdict_df, expected_df, ignore_nullable=True, ignore_row_order=True)


def test_a_valid_record_becomes_one_typed_bronze_row_with_its_raw_value(spark: SparkSession) -> None:
    raw = changed()
    kafka_df = kafka_rows(spark, [raw, b"not json"])

    bronze_df = kafka_df.transform(with_verdict, ORDERS, 4096).transform(filter_valid).transform(to_bronze_rows, ORDERS, 7)

    (row,) = bronze_df.collect()
    assert row.asDict() == {
        "order_id": "O-1",
        "customer_id": "C-1",
        "status": "paid",
        "amount": Decimal("12.00"),
        "currency": "EUR",
        "items": [("S-1", 2, Decimal("6.00"))],
        # UTC, the session's zone: 11:59:00.5Z as written, 12:00+02:00 as 10:00.
        "event_timestamp": datetime(2026, 1, 1, 11, 59, 0, 500000),
        "ingestion_id": ORDER["ingestion_id"],
        "received_at": datetime(2026, 1, 1, 10, 0),
        "dataset": "orders",
        "schema_version": "v1",
        "producer": "tests",
        "kafka_key": "O-1",
        "raw_value": raw.decode(),  # the original text, not the canonical form
        "kafka_topic": ORDERS.raw_topic,
        "kafka_partition": 0,
        "kafka_offset": 0,
        "kafka_timestamp": AT,
        "kafka_headers": [("streamlake.producer", b"tests")],
        "bronze_batch_id": 7,
        "ingestion_date": AT.date(),
    }
    assert json.loads(row.raw_value)["payload"]["amount"] == 12


def test_typed_columns_keep_the_contract_schema(spark: SparkSession) -> None:
    bronze_df = kafka_rows(spark, []).transform(with_verdict, ORDERS, 4096).transform(to_bronze_rows, ORDERS, 0)
    types = {f.name: f.dataType.simpleString() for f in bronze_df.schema.fields}
    assert {name: types[name] for name in ("amount", "items", "event_timestamp", "kafka_offset")} == {
        "amount": "decimal(18,2)",
        "items": "array<struct<sku:string,quantity:int,unit_price:decimal(18,2)>>",
        "event_timestamp": "timestamp",
        "kafka_offset": "bigint",
    }
