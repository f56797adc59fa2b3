"""Bronze: classify each Kafka record valid or invalid (with a reason), and shape both outputs.

Pure DataFrame -> DataFrame functions. Every record gets exactly one verdict: `error` is null
(valid) or a struct(error_class, error_reason) (invalid), so valid + invalid == batch by
construction. The verdict comes from the contract's own Pydantic model (`pipelines.record_checks`),
run in Spark's Python workers through an Arrow (pandas) UDF; valid values come back in canonical
JSON, parsed into typed columns with the contract's Spark schema (`from_json`, never inference).
Valid rows keep the raw value, the parsed contract columns, the envelope metadata and the Kafka
coordinates ("raw means raw"); invalid records keep their key and value bytes untouched.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from contracts.registry import DatasetContract
from contracts.spark_schema import envelope_schema, payload_schema
from pipelines.record_checks import WRONG_TYPE, Verdict, record_classifier

DLQ_HEADER_PREFIX = "dlq."
KAFKA_COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp", "headers"]
KAFKA_SOURCE_DDL = (
    "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, "
    "timestampType INT, headers ARRAY<STRUCT<key: STRING, value: BINARY>>"
)
BRONZE_PARTITION_COLUMNS = ["ingestion_date"]
VERDICT_TYPE = StructType([StructField(name, StringType(), True) for name in Verdict._fields])
# from_json puts the text of a value it could not fully read here (with the other fields kept).
_UNREADABLE = "_unreadable_value"


def bronze_stats_columns(contract: DatasetContract) -> list[str]:
    """Columns worth Delta file statistics: what Bronze is filtered by (Kafka coordinates for
    replays and reconciliation, event and arrival time, the business key). Statistics on every
    column, long raw text included, would cost more per batch than they ever save."""
    return ["kafka_partition", "kafka_offset", "kafka_timestamp", "event_timestamp", "received_at", contract.business_key]


@lru_cache(maxsize=16)
def _verdict_udf(dataset: str, max_value_bytes: int):
    # Only the dataset's name and the limit travel to the workers; each builds its classifier once.
    @F.pandas_udf(VERDICT_TYPE)
    def verdict(values: pd.Series) -> pd.DataFrame:
        classify = record_classifier(dataset, max_value_bytes)
        return pd.DataFrame([classify(v) for v in values], columns=list(Verdict._fields))

    return verdict


def _error(error_class: Column, error_reason: Column) -> Column:
    return F.struct(error_class.alias("error_class"), error_reason.alias("error_reason"))


def with_verdict(kafka_df: DataFrame, contract: DatasetContract, max_value_bytes: int) -> DataFrame:
    """Kafka source rows plus `value_text`, `envelope` (typed) and `error` (null when valid)."""
    typed_schema = StructType([*envelope_schema(contract).fields, StructField(_UNREADABLE, StringType(), True)])
    judged_df = kafka_df.select(*KAFKA_COLUMNS, _verdict_udf(contract.name, max_value_bytes)("value").alias("verdict"))
    parsed_df = judged_df.select(
        "*",
        F.from_json("verdict.canonical_value", typed_schema, {"columnNameOfCorruptRecord": _UNREADABLE}).alias("envelope"),
    )
    # Pydantic's canonical JSON is always Spark-readable in practice; if a value ever is not, it
    # goes to the DLQ with this reason rather than into Bronze with null columns.
    is_unreadable = F.col(f"envelope.{_UNREADABLE}").isNotNull()
    error = F.coalesce(
        F.when(F.col("verdict.error_class").isNotNull(), _error(F.col("verdict.error_class"), F.col("verdict.error_reason"))),
        F.when(is_unreadable, _error(F.lit(WRONG_TYPE), F.lit("valid for the contract, but not readable into Bronze's Spark schema"))),
    )
    return parsed_df.select(*KAFKA_COLUMNS, F.col("value").cast("string").alias("value_text"), "envelope", error.alias("error"))


def without_unused_bytes(verdict_df: DataFrame) -> DataFrame:
    """Keep each record's value once: the text for a valid record (Bronze's `raw_value`), the bytes
    for an invalid one (the DLQ's untouched value). A batch is held in memory between its outputs,
    and a second copy of every value would double most of it."""
    is_valid = is_valid_record(F.col("error"))
    return verdict_df.withColumns({
        "value": F.when(~is_valid, F.col("value")),
        "value_text": F.when(is_valid, F.col("value_text")),
    })


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


def dlq_header(name: str) -> Column:
    """The text of DLQ header `dlq.<name>` of a Kafka record read back (null when absent)."""
    named = F.filter("headers", lambda h: h["key"] == DLQ_HEADER_PREFIX + name)
    return F.element_at(named, 1)["value"].cast("string")


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
