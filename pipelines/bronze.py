"""Bronze: classify each Kafka record valid or invalid (with a reason), and shape both outputs.

Pure DataFrame -> DataFrame functions. Every record gets exactly one verdict: `error` is null
(valid) or a struct(error_class, error_reason) (invalid), so valid + invalid == batch by
construction. Valid rows keep the raw value, the parsed contract columns, the envelope metadata and
the Kafka coordinates ("raw means raw"); invalid records keep their key and value bytes untouched.
"""

from __future__ import annotations

from functools import lru_cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from contracts.envelope import EnvelopeMetadata
from contracts.registry import DatasetContract
from contracts.spark_schema import envelope_schema, payload_schema
from pipelines.contract_checks import (
    MISSING_FIELD,
    OUT_OF_CONTRACT,
    WRONG_TYPE,
    Violation,
    field_violations,
    first_violation,
    shape_type_of,
)

OVERSIZED = "oversized"
NOT_UTF8 = "not_utf8"
MALFORMED_JSON = "malformed_json"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"

DLQ_HEADER_PREFIX = "dlq."
KAFKA_COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp", "headers"]
KAFKA_SOURCE_DDL = (
    "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, "
    "timestampType INT, headers ARRAY<STRUCT<key: STRING, value: BINARY>>"
)
BRONZE_PARTITION_COLUMNS = ["ingestion_date"]


def bronze_stats_columns(contract: DatasetContract) -> list[str]:
    """Columns worth Delta file statistics: what Bronze is filtered by (Kafka coordinates for
    replays and reconciliation, event and arrival time, the business key). Statistics on every
    column, long raw text included, would cost more per batch than they ever save."""
    return ["kafka_partition", "kafka_offset", "kafka_timestamp", "event_timestamp", "received_at", contract.business_key]


def _envelope_shape(contract: DatasetContract) -> StructType:
    metadata = shape_type_of(EnvelopeMetadata)
    return StructType([*metadata.fields, StructField("payload", shape_type_of(contract.model), True)])


def _record_violations(contract: DatasetContract, max_value_bytes: int) -> list[Violation]:
    value, text, variant = F.col("value"), F.col("value_text"), F.col("value_variant")
    typed, shape = F.col("envelope"), F.col("envelope_shape")
    size = F.octet_length(value)
    checks = [
        Violation(OVERSIZED, size > max_value_bytes,
                  F.concat(F.lit("value is "), size.cast("string"), F.lit(f" bytes, over the {max_value_bytes} byte limit"))),
        Violation(MALFORMED_JSON, value.isNull(), F.lit("value is empty (null)")),
        Violation(NOT_UTF8, ~F.call_function("is_valid_utf8", text), F.lit("value is not valid UTF-8")),
        Violation(MALFORMED_JSON, variant.isNull(), F.lit("value is not valid JSON")),
        Violation(MALFORMED_JSON, ~F.call_function("schema_of_variant", variant).startswith("OBJECT"),
                  F.lit("value is not a JSON object")),
    ]
    checks += field_violations(EnvelopeMetadata, typed, shape)
    version = typed["schema_version"]
    checks += [
        Violation(UNKNOWN_SCHEMA_VERSION, version != F.lit(contract.version),
                  F.concat(F.lit("unknown schema_version '"), version, F.lit(f"' (known: {contract.version})"))),
        Violation(OUT_OF_CONTRACT, typed["dataset"] != F.lit(contract.name),
                  F.concat(F.lit("dataset '"), typed["dataset"], F.lit(f"' does not belong on the {contract.name} topic"))),
        Violation(MISSING_FIELD, shape["payload"].isNull(), F.lit("missing required field payload")),
        Violation(WRONG_TYPE, typed["payload"].isNull(), F.lit("payload is not a JSON object")),
    ]
    checks += field_violations(contract.model, typed["payload"], shape["payload"], "payload.")
    return checks


@lru_cache(maxsize=16)
def _verdict_columns(contract: DatasetContract, max_value_bytes: int) -> tuple[Column, ...]:
    """(value_text, value_variant, envelope, envelope_shape, error), built once per contract.

    Building ~100 rule expressions costs over a second of driver time; a streaming job reuses them
    for every micro-batch instead.
    """
    text = F.col("value").cast("string")
    utf8_text = F.when(F.call_function("is_valid_utf8", text), text)
    variant = F.call_function("try_parse_json", utf8_text)
    envelope = F.from_json(utf8_text, envelope_schema(contract))
    shape = F.call_function("try_variant_get", F.col("value_variant"), F.lit("$"), F.lit(_envelope_shape(contract).simpleString()))
    error = first_violation(_record_violations(contract, max_value_bytes))
    return text, variant, envelope, shape, error


def with_verdict(kafka_df: DataFrame, contract: DatasetContract, max_value_bytes: int) -> DataFrame:
    """Kafka source rows plus `envelope` (strictly parsed) and `error` (null when valid)."""
    text, variant, envelope, shape, error = _verdict_columns(contract, max_value_bytes)
    parsed_df = kafka_df.select(
        *KAFKA_COLUMNS,
        text.alias("value_text"),
        variant.alias("value_variant"),
        envelope.alias("envelope"),
    )
    return parsed_df.select("*", shape.alias("envelope_shape")).select(
        *KAFKA_COLUMNS, "value_text", "envelope", error.alias("error")
    )


def is_valid_record(error: Column) -> Column:
    return error.isNull()


def filter_valid(verdict_df: DataFrame) -> DataFrame:
    return verdict_df.filter(is_valid_record(F.col("error")))


def filter_invalid(verdict_df: DataFrame) -> DataFrame:
    return verdict_df.filter(~is_valid_record(F.col("error")))


def to_bronze_rows(valid_df: DataFrame, contract: DatasetContract, batch_id: int) -> DataFrame:
    """The Bronze table's columns: raw value, contract columns, envelope metadata, Kafka coordinates.

    `ingestion_date` is the UTC date of the Kafka timestamp, so a replay of the same offsets lands
    in the same partition.
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
        F.col("value_text").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("headers").alias("kafka_headers"),
        F.lit(batch_id).cast("long").alias("bronze_batch_id"),
        F.to_date(F.col("timestamp")).alias("ingestion_date"),
    )


def _header(name: str, value: Column) -> Column:
    return F.struct(F.lit(DLQ_HEADER_PREFIX + name).alias("key"), value.cast("binary").alias("value"))


def to_dlq_records(invalid_df: DataFrame, job: str, failed_at: Column) -> DataFrame:
    """Kafka records for the DLQ topic: original key and value bytes, original headers, then the
    reason and source coordinates as `dlq.*` headers."""
    dlq_headers = F.array(
        _header("error.class", F.col("error.error_class")),
        _header("error.reason", F.col("error.error_reason")),
        _header("source.topic", F.col("topic")),
        _header("source.partition", F.col("partition").cast("string")),
        _header("source.offset", F.col("offset").cast("string")),
        _header("source.timestamp", F.date_format(F.col("timestamp"), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")),
        _header("failed.at", F.date_format(failed_at, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")),
        _header("job", F.lit(job)),
    )
    original_headers = F.coalesce(F.col("headers"), F.array().cast("array<struct<key:string,value:binary>>"))
    return invalid_df.select(
        F.col("key"),
        F.col("value"),
        F.concat(original_headers, dlq_headers).alias("headers"),
    )
