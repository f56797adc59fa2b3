"""The Bronze Delta table: its creation from the pipeline's own output schema, and its properties.

Every job that writes Bronze (the stream, a bounded re-read of a raw topic) creates the table
through `create_bronze_table`, so its properties travel with it: Delta hands a table's properties to
its Parquet writer, for every job that writes it.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, get_origin

from pyspark.sql import SparkSession

from contracts.registry import DatasetContract
from jobs.lakehouse_io import ensure_delta_table
from pipelines.bronze import BRONZE_PARTITION_COLUMNS, KAFKA_SOURCE_SCHEMA, to_bronze_rows, with_verdict


def bronze_stats_columns(contract: DatasetContract) -> list[str]:
    """Columns worth Delta file statistics: what Bronze is filtered by (Kafka coordinates for
    replays and reconciliation, event and arrival time, the business key). Statistics on every
    column, long raw text included, would cost more per batch than they ever save."""
    return ["kafka_partition", "kafka_offset", "kafka_timestamp", "event_timestamp", "received_at", contract.business_key]


def bronze_dictionary_columns(contract: DatasetContract) -> list[str]:
    """Bronze's Parquet columns whose values repeat by construction, the only ones worth a dictionary.

    The contract's closed vocabularies (`Literal` and `Enum` fields), the envelope's dataset, version
    and producer, the topic, partition, batch and replay id, and the header names. Everything else (the raw
    value, ids, timestamps, offsets, header values) is close to unique per record: Parquet's writer
    would fill a dictionary with it and then fall back to plain encoding, at twice the write cost of
    writing it plain at once, for files of the same size.
    """
    vocabularies = [
        name for name, field in contract.model.model_fields.items()
        if get_origin(field.annotation) is Literal or (isinstance(field.annotation, type) and issubclass(field.annotation, Enum))
    ]
    # Spark writes an array column as the Parquet list `<name>.list.element`.
    return [*vocabularies, "dataset", "schema_version", "producer", "kafka_topic", "kafka_partition", "bronze_batch_id",
            "bronze_replay_id", "kafka_headers.list.element.key"]


def bronze_table_properties(contract: DatasetContract) -> dict[str, str]:
    """The Bronze table's properties: append-only, statistics and Parquet dictionaries where they pay,
    and Parquet's v2 pages.

    The codec and its level are the session's (`jobs.spark_session.parquet_conf`): Spark lets no table
    property choose them. v2 pages write the columns without a dictionary delta-encoded (offsets and
    timestamps as small deltas, text as shared prefixes plus suffixes): 132 -> 127 bytes per event
    under zstd, at no extra CPU (docs/bronze.md, "Storage"). Spark since 3.3 and delta-rs read them.
    """
    return {
        "delta.appendOnly": "true",
        "delta.dataSkippingStatsColumns": ",".join(bronze_stats_columns(contract)),
        "parquet.writer.version": "v2",
        "parquet.enable.dictionary": "false",
        **{f"parquet.enable.dictionary#{column}": "true" for column in bronze_dictionary_columns(contract)},
    }


def create_bronze_table(spark: SparkSession, contract: DatasetContract, table: str) -> None:
    """The Bronze table, created up front (idempotently) from the pipeline's own output schema."""
    empty_df = spark.createDataFrame([], KAFKA_SOURCE_SCHEMA).transform(with_verdict, contract, 1)
    schema = to_bronze_rows(empty_df, contract, None).schema  # a replayed row has no batch id
    ensure_delta_table(spark, table, schema, BRONZE_PARTITION_COLUMNS, bronze_table_properties(contract))
