"""Bronze's DataFrame shaping: Kafka source rows -> rows with a verdict -> Bronze table rows (pure).

`with_verdict` runs the Arrow-side verdict (`pipelines.bronze_verdict`) in Spark's Python workers
(`mapInArrow`) and gives every Kafka row a typed `envelope` (null when invalid) and an `error` (null
when valid). `to_bronze_rows` shapes the valid ones into the Bronze table's columns: the raw value,
the parsed contract columns, the envelope metadata and the Kafka coordinates ("raw means raw").
The Bronze stream and any bounded re-read of a raw topic share these functions, so a record is
judged the same way whichever job reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
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
from pipelines.bronze_verdict import DLQ_HEADER_PREFIX, ERROR_TYPE, classify_arrow_batches

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

JudgedBatches = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def with_verdict(
    kafka_df: DataFrame,
    contract: DatasetContract,
    max_value_bytes: int,
    divert_invalid: JudgedBatches | None = None,
) -> DataFrame:
    """Kafka source rows plus `envelope` (typed, null when invalid) and `error` (null when valid).

    `divert_invalid`, when given, runs in the same Python workers over the judged Arrow batches and
    returns the rows Spark gets (same schema): the Bronze job's sends the invalid records to the DLQ
    and keeps the valid ones (`jobs.bronze_dlq.divert_invalid`), the one side effect a pipeline
    allows (see `pipelines/__init__.py`).
    """
    # Only plain values travel to the workers (the dataset's name, the limit, the Arrow schema, and
    # whatever `divert_invalid` holds); each worker builds its classifier once.
    dataset, envelope_type = contract.name, envelope_schema(contract)
    envelope_arrow_schema = to_arrow_schema(envelope_type)

    def classify(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        judged = classify_arrow_batches(batches, dataset, max_value_bytes, envelope_arrow_schema)
        return judged if divert_invalid is None else divert_invalid(judged)

    verdict_schema = StructType([
        *(KAFKA_SOURCE_SCHEMA[name] for name in KAFKA_COLUMNS),
        StructField("envelope", envelope_type, True),
        StructField("error", ERROR_TYPE, True),
    ])
    return kafka_df.select(*KAFKA_COLUMNS).mapInArrow(classify, verdict_schema)


def to_bronze_rows(valid_df: DataFrame, contract: DatasetContract, batch_id: int | None, replay_id: str | None = None) -> DataFrame:
    """The Bronze table's columns: raw value, contract columns, envelope metadata, Kafka coordinates.

    `ingestion_date` is the UTC date of the Kafka timestamp, so a replay of the same offsets lands
    in the same partition. A valid value is UTF-8 (the verdict checked), so its text is exact. A
    streamed row carries its micro-batch id; a row a bounded replay added, the replay's id instead.
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
        F.lit(replay_id).cast("string").alias("bronze_replay_id"),
        F.to_date(F.col("timestamp")).alias("ingestion_date"),
    )


def header_text(name: str) -> Column:
    """The text of header `name` of a Kafka record read back (null when absent: `try_element_at`,
    since under ANSI mode `element_at` fails the query on a record that lacks it)."""
    named = F.filter("headers", lambda h: h["key"] == F.lit(name))
    return F.try_element_at(named, F.lit(1))["value"].cast("string")


def dlq_header(name: str) -> Column:
    """The text of DLQ header `dlq.<name>` of a Kafka record read back (null when absent)."""
    return header_text(DLQ_HEADER_PREFIX + name)
