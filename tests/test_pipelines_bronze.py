"""Bronze's pure transformations on tiny inline frames and Arrow batches: the verdict column, the
Bronze row, the DLQ records and the batch tally."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from contracts.registry import get_contract
from contracts.spark_schema import envelope_schema
from jobs.bronze_table import bronze_dictionary_columns, bronze_table_properties
from pipelines import bronze_verdict
from pipelines.bronze import KAFKA_COLUMNS, KAFKA_SOURCE_SCHEMA, to_bronze_rows, with_verdict
from pipelines.bronze_verdict import (
    UNREADABLE_REASON,
    DlqRecord,
    batch_tally,
    classify_arrow_batches,
    dlq_records,
    empty_tally,
    merge_tallies,
    typed_envelopes,
    valid_arrow_rows,
)
from pipelines.record_checks import judged_safely
from tests.factories import ORDER, order_value

ORDERS = get_contract("orders")
AT = datetime(2026, 1, 2, 3, 4, 5)
HEADERS = [("streamlake.producer", b"tests")]


def kafka_rows(spark: SparkSession, values: list[bytes | None]):
    return spark.createDataFrame(
        [(b"O-1", value, ORDERS.raw_topic, 0, offset, AT, 0, HEADERS) for offset, value in enumerate(values)],
        KAFKA_SOURCE_SCHEMA,
    )


def test_every_record_gets_one_verdict_with_its_reason(spark: SparkSession) -> None:
    kafka_df = kafka_rows(spark, [order_value(), b'{"order_id": ', None, order_value(payload__status="lost"), order_value()])

    verdict_df = kafka_df.transform(with_verdict, ORDERS, 4096).select("offset", "error")

    expected_df = spark.createDataFrame(
        [
            (0, None),
            (1, ("malformed_json", "value is not valid JSON (EOF while parsing a value at line 1 column 13)", None)),
            (2, ("malformed_json", "value is empty (null)", None)),
            (3, ("out_of_contract", "payload.status: Input should be 'created', 'paid', 'shipped', 'delivered', "
                                    "'cancelled' or 'failed' (got \"lost\")", None)),
            (4, None),
        ],
        "offset BIGINT, error STRUCT<error_class: STRING, error_reason: STRING, error_stack_trace: STRING>",
    )
    assert_df_equality(verdict_df, expected_df, ignore_nullable=True, ignore_row_order=True)


def test_a_valid_record_becomes_one_typed_bronze_row_with_its_raw_value(spark: SparkSession) -> None:
    raw = order_value()
    kafka_df = kafka_rows(spark, [raw, b"not json"])

    # As the job does it: the valid rows are filtered in the workers, right after the verdict.
    bronze_df = kafka_df.transform(with_verdict, ORDERS, 4096, lambda judged: map(valid_arrow_rows, judged)).transform(
        to_bronze_rows, ORDERS, 7
    )

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
        "bronze_replay_id": None,
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


def test_only_columns_whose_values_repeat_get_a_parquet_dictionary(spark: SparkSession) -> None:
    shared = ["dataset", "schema_version", "producer", "kafka_topic", "kafka_partition", "bronze_batch_id",
              "bronze_replay_id", "kafka_headers.list.element.key"]
    assert bronze_dictionary_columns(ORDERS) == ["status", *shared]
    assert bronze_dictionary_columns(get_contract("user_events")) == ["event_type", "source", *shared]
    # Every one names a column Bronze writes (an array's items as Spark spells them in Parquet).
    bronze_df = kafka_rows(spark, []).transform(with_verdict, ORDERS, 4096).transform(to_bronze_rows, ORDERS, 0)
    assert set(bronze_dictionary_columns(ORDERS)) - set(bronze_df.columns) == {"kafka_headers.list.element.key"}
    assert bronze_df.schema["kafka_headers"].dataType.elementType.fieldNames()[0] == "key"

    properties = bronze_table_properties(ORDERS)
    assert properties["parquet.enable.dictionary"] == "false"
    assert {k for k, v in properties.items() if k.startswith("parquet.enable.dictionary#") and v == "true"} == {
        f"parquet.enable.dictionary#{column}" for column in ["status", *shared]
    }
    assert properties["delta.appendOnly"] == "true"


def test_canonical_values_become_typed_structs_in_place() -> None:
    schema = pa.schema([("n", pa.int32()), ("at", pa.timestamp("us", tz="UTC"))])

    envelopes, unreadable = typed_envelopes([b'{"n": 1, "at": "2026-01-01T00:00:00+02:00"}', None, b'{"n": 3}'], schema)

    assert envelopes.to_pylist() == [{"n": 1, "at": datetime(2025, 12, 31, 22, 0, tzinfo=UTC)}, None, {"n": 3, "at": None}]
    assert unreadable == {}


def test_a_value_arrow_cannot_read_is_set_apart_alone() -> None:
    schema = pa.schema([("n", pa.int32())])

    envelopes, unreadable = typed_envelopes([b'{"n": 1}', b'{"n": "x"}', None, b'{"n": 4}'], schema)

    assert envelopes.to_pylist() == [{"n": 1}, None, None, {"n": 4}]
    assert unreadable == {1: "JSON parse error: Column(/n) changed from number to string in row 0"}


def test_a_valid_record_bronze_cannot_type_goes_out_as_wrong_type() -> None:
    # A Spark schema narrower than the contract (amount as DECIMAL(3,2)) stands in for a drift
    # between the model and Bronze's schema: 123.45 does not fit, so the record is invalid, with why.
    arrow_schema = to_arrow_schema(envelope_schema(ORDERS))
    narrow = arrow_schema.set(
        arrow_schema.get_field_index("payload"),
        pa.field("payload", pa.struct([
            f.with_type(pa.decimal128(3, 2)) if f.name == "amount" else f for f in arrow_schema.field("payload").type
        ])),
    )
    batch = pa.RecordBatch.from_pydict({"value": [order_value(payload__amount="1.50"), order_value(payload__amount="123.45")]})

    (judged,) = classify_arrow_batches(iter([batch]), ORDERS.name, 4096, narrow)

    assert judged.column("error").to_pylist() == [
        None,
        {"error_class": "wrong_type",
         "error_reason": f"{UNREADABLE_REASON} (Failed to convert JSON to decimal128(3, 2): 123.45 requires precision 5)",
         "error_stack_trace": None},
    ]
    assert judged.column("envelope").to_pylist()[0]["payload"]["amount"] == Decimal("1.50")
    assert judged.column("envelope").to_pylist()[1] is None


def judged_arrow_batch(values: list[bytes | None], partitions: list[int], headers=HEADERS) -> pa.RecordBatch:
    """Kafka rows as Spark hands them to a Python worker, judged against the orders contract."""
    source = pa.RecordBatch.from_pydict(
        {
            "key": [b"O-%d" % i for i in range(len(values))],
            "value": values,
            "topic": [ORDERS.raw_topic] * len(values),
            "partition": partitions,
            "offset": [100 + i for i in range(len(values))],
            "timestamp": [datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)] * len(values),
            "headers": [[{"key": k, "value": v} for k, v in headers]] * len(values),
        },
        schema=to_arrow_schema(StructType([KAFKA_SOURCE_SCHEMA[name] for name in KAFKA_COLUMNS])),
    )
    (judged,) = classify_arrow_batches(iter([source]), ORDERS.name, 4096, to_arrow_schema(envelope_schema(ORDERS)))
    return judged


def test_an_invalid_row_becomes_a_dlq_record_with_its_bytes_and_headers_untouched() -> None:
    judged = judged_arrow_batch([order_value(), b"\xff{", order_value()], [0, 1, 0], headers=[("trace", b"t-1"), ("empty", None)])

    records = dlq_records(judged, "bronze_stream/orders app_id=a", datetime(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=UTC))

    assert records == [
        DlqRecord(b"O-1", b"\xff{", [
            ("trace", b"t-1"),
            ("empty", None),
            ("dlq.error.class", b"not_utf8"),
            ("dlq.error.reason", b"value is not valid UTF-8 (byte 0)"),
            ("dlq.source.topic", ORDERS.raw_topic.encode()),
            ("dlq.source.partition", b"1"),
            ("dlq.source.offset", b"101"),
            ("dlq.source.timestamp", b"2026-01-02T03:04:05.678Z"),
            ("dlq.failed.at", b"2026-03-04T05:06:07.891Z"),
            ("dlq.job", b"bronze_stream/orders app_id=a"),
        ]),
    ]
    assert valid_arrow_rows(judged).column("offset").to_pylist() == [100, 102]


def test_a_record_the_classifier_fails_on_goes_to_the_dlq_with_its_stack_trace(monkeypatch) -> None:
    # A value nobody foresaw, standing in for a bug in the judge: the classifier raises on it.
    real_classifier = bronze_verdict.record_classifier

    def classifier_failing_on_boom(dataset: str, max_value_bytes: int):
        classify = real_classifier(dataset, max_value_bytes)
        return lambda value: 1 / 0 if value == b"boom" else classify(value)

    monkeypatch.setattr(bronze_verdict, "record_classifier", classifier_failing_on_boom)

    judged = judged_arrow_batch([order_value(), b"boom", order_value()], [0, 0, 0])

    assert valid_arrow_rows(judged).column("offset").to_pylist() == [100, 102]  # the batch goes on
    (record,) = dlq_records(judged, "job", datetime(2026, 3, 4, tzinfo=UTC))
    headers = dict(record.headers[1:])
    assert (record.key, record.value) == (b"O-1", b"boom")
    assert (headers["dlq.error.class"], headers["dlq.error.reason"]) == (
        b"classifier_error", b"the record could not be judged: ZeroDivisionError: division by zero"
    )
    trace = headers["dlq.error.stack_trace"].decode()
    assert trace.startswith("Traceback (most recent call last):\n")
    assert 'in <lambda>\n    return lambda value: 1 / 0 if value == b"boom" else classify(value)\n' in trace
    assert trace.endswith("\nZeroDivisionError: division by zero")
    assert record.headers[-1][0] == "dlq.error.stack_trace"


def test_a_long_error_is_cut_short_keeping_the_end_of_its_stack_trace() -> None:
    def ping(n: int):
        return pong(n - 1)

    def pong(n: int):
        if n <= 0:
            raise ValueError("x" * 5000)
        return ping(n - 1)

    verdict = judged_safely(lambda value: ping(40), b"x")

    error = "ValueError: " + "x" * 297 + "..."
    assert (verdict.error_class, verdict.error_reason) == ("classifier_error", f"the record could not be judged: {error}")
    assert len(verdict.stack_trace) == 2003 and verdict.stack_trace.startswith("...")
    assert verdict.stack_trace.endswith(f'in pong\n    raise ValueError("x" * 5000)\n{error}')


def test_the_usual_batch_one_partition_all_valid_has_its_range_and_no_dlq_records() -> None:
    judged = judged_arrow_batch([order_value(), order_value(), order_value()], [2, 2, 2])

    assert batch_tally(judged) == {"rows": 3, "invalid": {}, "offsets": {"2": [100, 102]}}
    assert dlq_records(judged, "job", datetime(2026, 3, 4, tzinfo=UTC)) == []


def test_a_batch_tally_counts_rows_reasons_and_offset_ranges() -> None:
    judged = judged_arrow_batch([order_value(), b"nope", None, order_value(), order_value(payload__status="lost")], [0, 0, 1, 1, 2])

    tally = batch_tally(judged)

    assert tally == {
        "rows": 5,
        "invalid": {"malformed_json": 2, "out_of_contract": 1},
        "offsets": {"0": [100, 101], "1": [102, 103], "2": [104, 104]},
    }
    more = {"rows": 2, "invalid": {"malformed_json": 1, "not_utf8": 1}, "offsets": {"0": [90, 99], "3": [7, 8]}}
    assert merge_tallies(merge_tallies(empty_tally(), tally), more) == {
        "rows": 7,
        "invalid": {"malformed_json": 3, "out_of_contract": 1, "not_utf8": 1},
        "offsets": {"0": [90, 101], "1": [102, 103], "2": [104, 104], "3": [7, 8]},
    }
