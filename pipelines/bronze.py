"""Bronze: classify each Kafka record valid or invalid (with a reason), and shape both outputs.

Pure functions, over DataFrames and over the Arrow batches Spark's Python workers see. Every record
gets exactly one verdict: `error` is null (valid) or a struct(error_class, error_reason,
error_stack_trace) (invalid; a stack trace only when judging the record raised),
so valid + invalid == batch by construction. The verdict comes from the contract's own Pydantic
model (`pipelines.record_checks`), run in the Python workers over Arrow batches (`mapInArrow`). A
valid value comes back in canonical JSON, which Arrow's JSON reader parses against the contract's
schema (never inference) into the typed `envelope` column, in the same worker: Spark receives typed
columns, not text to parse again. Valid rows keep the raw value, the parsed contract columns, the
envelope metadata and the Kafka coordinates ("raw means raw"); an invalid record becomes a DLQ
record (`dlq_records`) with its key, value and headers untouched.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, NamedTuple, get_origin

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as arrow_json
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema, to_arrow_type
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from contracts.registry import DatasetContract
from contracts.spark_schema import envelope_schema, payload_schema
from pipelines.record_checks import WRONG_TYPE, judged_safely, record_classifier

DLQ_HEADER_PREFIX = "dlq."
# Spark's Kafka source schema (`includeHeaders`); the columns Bronze reads are all but timestampType.
KAFKA_SOURCE_SCHEMA = StructType([
    StructField("key", BinaryType()),
    StructField("value", BinaryType()),
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("timestamp", TimestampType()),
    StructField("timestampType", IntegerType()),
    StructField("headers", ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))),
])
KAFKA_COLUMNS = [name for name in KAFKA_SOURCE_SCHEMA.fieldNames() if name != "timestampType"]
BRONZE_PARTITION_COLUMNS = ["ingestion_date"]
ERROR_TYPE = StructType([
    StructField("error_class", StringType(), True),
    StructField("error_reason", StringType(), True),
    StructField("error_stack_trace", StringType(), True),
])
UNREADABLE_REASON = "valid for the contract, but not readable into Bronze's Spark schema"


def bronze_stats_columns(contract: DatasetContract) -> list[str]:
    """Columns worth Delta file statistics: what Bronze is filtered by (Kafka coordinates for
    replays and reconciliation, event and arrival time, the business key). Statistics on every
    column, long raw text included, would cost more per batch than they ever save."""
    return ["kafka_partition", "kafka_offset", "kafka_timestamp", "event_timestamp", "received_at", contract.business_key]


def bronze_dictionary_columns(contract: DatasetContract) -> list[str]:
    """Bronze's Parquet columns whose values repeat by construction, the only ones worth a dictionary.

    The contract's closed vocabularies (`Literal` and `Enum` fields), the envelope's dataset, version
    and producer, the topic, partition and batch id, and the header names. Everything else (the raw
    value, ids, timestamps, offsets, header values) is close to unique per record: Parquet's writer
    would fill a dictionary with it and then fall back to plain encoding, which made Bronze's Parquet
    write twice the raw copy's; written plain at once, the files are the same size.
    """
    vocabularies = [
        name for name, field in contract.model.model_fields.items()
        if get_origin(field.annotation) is Literal or (isinstance(field.annotation, type) and issubclass(field.annotation, Enum))
    ]
    # Spark writes an array column as the Parquet list `<name>.list.element`.
    return [*vocabularies, "dataset", "schema_version", "producer", "kafka_topic", "kafka_partition", "bronze_batch_id",
            "kafka_headers.list.element.key"]


def bronze_table_properties(contract: DatasetContract) -> dict[str, str]:
    """The Bronze table's properties: append-only, statistics and Parquet dictionaries where they pay.

    Delta hands a table's properties to its Parquet writer, so the encoding choice travels with the
    table, for every job that writes it.
    """
    return {
        "delta.appendOnly": "true",
        "delta.dataSkippingStatsColumns": ",".join(bronze_stats_columns(contract)),
        "parquet.enable.dictionary": "false",
        **{f"parquet.enable.dictionary#{column}": "true" for column in bronze_dictionary_columns(contract)},
    }


def _read_json_lines(values: list[bytes], schema: pa.Schema) -> pa.StructArray:
    if not values:
        return pa.array([], pa.struct(list(schema)))
    data = b"\n".join(values)  # JSON text never holds a raw newline: one record per line
    table = arrow_json.read_json(
        io.BytesIO(data),
        # One block, sized to the data (a block must hold whole records): a small batch does not
        # pay for a large block.
        read_options=arrow_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=arrow_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return table.to_struct_array().combine_chunks()


def typed_envelopes(canonical_values: list[bytes | None], schema: pa.Schema) -> tuple[pa.StructArray, dict[int, str]]:
    """Canonical JSON values read into one struct array of `schema`, null where a value is None.

    Also returns, by position, the values Arrow could not read, with its reason. Pydantic's canonical
    JSON always fits the contract's schema in practice; if one ever does not, only that record is
    set apart (it goes to the DLQ), never the batch. Arrow does not check a decimal's precision
    when the text has fewer places than the type ("12" into DECIMAL(3,2) reads as 12.00); the model
    has already enforced max_digits and decimal_places, the very constraints Spark's DECIMAL(p,s)
    is derived from (`contracts.spark_schema`).
    """
    positions = [i for i, value in enumerate(canonical_values) if value is not None]
    unreadable: dict[int, str] = {}
    try:
        parsed = _read_json_lines([canonical_values[i] for i in positions], schema)
    except pa.ArrowInvalid:
        readable, parts = [], []
        for i in positions:
            try:
                parts.append(_read_json_lines([canonical_values[i]], schema))
                readable.append(i)
            except pa.ArrowInvalid as exc:
                unreadable[i] = str(exc)
        positions = readable
        parsed = pa.concat_arrays(parts) if parts else _read_json_lines([], schema)
    row_of: list[int | None] = [None] * len(canonical_values)
    for row, i in enumerate(positions):
        row_of[i] = row
    return parsed.take(pa.array(row_of, pa.int32())), unreadable


def classify_arrow_batches(
    batches: Iterator[pa.RecordBatch], dataset: str, max_value_bytes: int, envelope_arrow_schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Kafka rows in, the same rows plus `envelope` (typed, null when invalid) and `error` out."""
    classify = record_classifier(dataset, max_value_bytes)
    error_fields = list(to_arrow_type(ERROR_TYPE))
    for batch in batches:
        verdicts = [judged_safely(classify, value) for value in batch.column("value").to_pylist()]
        envelope, unreadable = typed_envelopes([v.canonical_value for v in verdicts], envelope_arrow_schema)
        error_classes = [v.error_class for v in verdicts]
        error_reasons = [v.error_reason for v in verdicts]
        for i, detail in unreadable.items():
            error_classes[i], error_reasons[i] = WRONG_TYPE, f"{UNREADABLE_REASON} ({detail})"
        error = pa.StructArray.from_arrays(
            [pa.array(error_classes, pa.string()), pa.array(error_reasons, pa.string()),
             pa.array([v.stack_trace for v in verdicts], pa.string())],
            fields=error_fields,
            mask=pa.array([error_class is None for error_class in error_classes]),
        )
        yield batch.append_column("envelope", envelope).append_column("error", error)


def with_verdict(
    kafka_df: DataFrame,
    contract: DatasetContract,
    max_value_bytes: int,
    then: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]] | None = None,
) -> DataFrame:
    """Kafka source rows plus `envelope` (typed, null when invalid) and `error` (null when valid).

    `then`, when given, runs in the same Python workers over the judged Arrow batches and returns
    the rows Spark gets (same schema), e.g. only the valid ones (`valid_arrow_rows`).
    """
    # Only plain values travel to the workers (the dataset's name, the limit, the Arrow schema, and
    # whatever `then` holds); each worker builds its classifier once.
    dataset, envelope_type = contract.name, envelope_schema(contract)
    envelope_arrow_schema = to_arrow_schema(envelope_type)

    def classify(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        judged = classify_arrow_batches(batches, dataset, max_value_bytes, envelope_arrow_schema)
        return judged if then is None else then(judged)

    verdict_schema = StructType([
        *(KAFKA_SOURCE_SCHEMA[name] for name in KAFKA_COLUMNS),
        StructField("envelope", envelope_type, True),
        StructField("error", ERROR_TYPE, True),
    ])
    return kafka_df.select(*KAFKA_COLUMNS).mapInArrow(classify, verdict_schema)


def to_bronze_rows(valid_df: DataFrame, contract: DatasetContract, batch_id: int) -> DataFrame:
    """The Bronze table's columns: raw value, contract columns, envelope metadata, Kafka coordinates.

    `ingestion_date` is the UTC date of the Kafka timestamp, so a replay of the same offsets lands
    in the same partition. A valid value is UTF-8 (the verdict checked), so its text is exact.
    """
    payload_columns = [F.col(f"envelope.payload.{name}").alias(name) for name in payload_schema(contract).fieldNames()]
    return valid_df.select(
        *payload_columns,
        F.col("envelope.ingestion_id").alias("ingestion_id"),
        F.col("envelope.received_at").alias("received_at"),
        F.col("envelope.dataset").alias("dataset"),
        F.col("envelope.schema_version").alias("schema_version"),
        F.col("envelope.producer").alias("producer"),
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").cast("string").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("headers").alias("kafka_headers"),
        F.lit(batch_id).cast("long").alias("bronze_batch_id"),
        F.to_date(F.col("timestamp")).alias("ingestion_date"),
    )


def valid_arrow_rows(judged: pa.RecordBatch) -> pa.RecordBatch:
    """The rows of a judged Arrow batch whose verdict is valid."""
    return judged.filter(pc.is_null(judged.column("error")))


class DlqRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _utc_millis(at: datetime | None) -> str | None:
    """2026-01-02T03:04:05.678Z: the DLQ headers' time format."""
    if at is None:
        return None
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def dlq_records(judged: pa.RecordBatch, job: str, failed_at: datetime) -> list[DlqRecord]:
    """DLQ records for the invalid rows of a judged Arrow batch: original key, value bytes and
    headers untouched, then the reason and the source coordinates as `dlq.*` headers (and the
    stack trace, last, when judging the record raised)."""
    if judged.column("error").null_count == judged.num_rows:
        return []  # the usual batch: all valid
    invalid = judged.filter(pc.is_valid(judged.column("error")))
    failed = _utc_millis(failed_at)
    records = []
    for row in invalid.select(["key", "value", "topic", "partition", "offset", "timestamp", "headers", "error"]).to_pylist():
        dlq_headers = {
            "error.class": row["error"]["error_class"],
            "error.reason": row["error"]["error_reason"],
            "source.topic": row["topic"],
            "source.partition": str(row["partition"]),
            "source.offset": str(row["offset"]),
            "source.timestamp": _utc_millis(row["timestamp"]),
            "failed.at": failed,
            "job": job,
        }
        if row["error"]["error_stack_trace"] is not None:
            dlq_headers["error.stack_trace"] = row["error"]["error_stack_trace"]
        headers = [(h["key"], h["value"]) for h in row["headers"] or []]
        headers += [(DLQ_HEADER_PREFIX + name, None if text is None else text.encode()) for name, text in dlq_headers.items()]
        records.append(DlqRecord(row["key"], row["value"], headers))
    return records


def batch_tally(judged: pa.RecordBatch) -> dict:
    """What a judged Arrow batch held: rows, invalid rows by error class, and per Kafka partition
    the first and last offset. Tallies of several batches add up with `merge_tallies`."""
    classes = judged.column("error").field("error_class")
    invalid = pc.value_counts(classes.filter(pc.is_valid(classes))).to_pylist() if classes.null_count < len(classes) else []
    partitions, offsets = judged.column("partition"), judged.column("offset")
    present = pc.unique(partitions)
    ranges = {}
    for partition in present.to_pylist():
        # A Spark task reads one Kafka partition, so a batch almost always holds one: nothing to pick out.
        first_last = pc.min_max(offsets if len(present) == 1 else offsets.filter(pc.equal(partitions, partition)))
        ranges[str(partition)] = [first_last["min"].as_py(), first_last["max"].as_py()]
    return {"rows": judged.num_rows, "invalid": {c["values"]: c["counts"] for c in invalid}, "offsets": ranges}


def empty_tally() -> dict:
    return {"rows": 0, "invalid": {}, "offsets": {}}


def merge_tallies(total: dict, more: dict) -> dict:
    """`total` with `more` added in (in place, and returned)."""
    total["rows"] += more["rows"]
    for error_class, n in more["invalid"].items():
        total["invalid"][error_class] = total["invalid"].get(error_class, 0) + n
    for partition, (first, last) in more["offsets"].items():
        known = total["offsets"].get(partition, [first, last])
        total["offsets"][partition] = [min(known[0], first), max(known[1], last)]
    return total


def dlq_header(name: str) -> Column:
    """The text of DLQ header `dlq.<name>` of a Kafka record read back (null when absent)."""
    named = F.filter("headers", lambda h: h["key"] == DLQ_HEADER_PREFIX + name)
    return F.element_at(named, 1)["value"].cast("string")
