"""Pure transformations of Kafka source rows (DataFrame -> DataFrame; no I/O, no session, no config).

Kafka headers stay an array of (key, value) structs: Kafka allows a key to repeat, so a map would
lose data.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

KAFKA_COORDINATES = ["topic", "partition", "offset", "kafka_timestamp"]


def with_decoded_record(kafka_df: DataFrame) -> DataFrame:
    """Kafka source rows with key/value decoded as UTF-8 text and the coordinates named plainly."""
    return kafka_df.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("headers"),
    )


def with_parsed_envelope(decoded_df: DataFrame, envelope_schema: StructType) -> DataFrame:
    """Add `envelope`, the value parsed with the contract's schema (never inferred)."""
    return decoded_df.withColumn("envelope", F.from_json(F.col("value"), envelope_schema))


def select_envelope_columns(parsed_df: DataFrame) -> DataFrame:
    """Flatten the envelope: Kafka coordinates, metadata, then the contract's payload columns."""
    return parsed_df.select(
        "key",
        *KAFKA_COORDINATES,
        "envelope.ingestion_id",
        "envelope.dataset",
        "envelope.schema_version",
        "envelope.producer",
        "envelope.received_at",
        "envelope.payload.*",
    )
