"""Reads and writes of the lakehouse and Kafka, shared by every job (never copied per job)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from conf.settings import Settings


def kafka_source_options(settings: Settings, topic: str) -> dict[str, str]:
    return {
        "kafka.bootstrap.servers": settings.kafka.bootstrap,
        "subscribe": topic,
        "includeHeaders": "true",
        # Offsets gone from Kafka's retention are data loss: stop loudly unless told otherwise.
        "failOnDataLoss": "true",
    }


def read_kafka_batch(
    spark: SparkSession, settings: Settings, topic: str, starting: str = "earliest", ending: str = "latest"
) -> DataFrame:
    """A bounded read of a topic between two offset specs (Spark's JSON offset format or keywords)."""
    return (
        spark.read.format("kafka")
        .options(**kafka_source_options(settings, topic))
        .option("startingOffsets", starting)
        .option("endingOffsets", ending)
        .load()
    )


def overwrite_delta(df: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def append_delta_idempotent(df: DataFrame, path: str, app_id: str, version: int, partition_by: list[str] | None = None) -> None:
    """Append once per (app_id, version): Delta skips a write it has already committed for them."""
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
