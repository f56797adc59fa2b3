"""Reconciling a dataset's raw topic against Bronze and the DLQ, as `make demo` and the tests do.

Reads Kafka's watermarks, the Bronze table and the DLQ topic, then applies the pure accounting of
`pipelines.reconciliation`: every offset Kafka holds, or only those from given first offsets on
(a test on a shared topic accounts for its own records only). Read-only: it commits no offset and
writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts.registry import DatasetContract
from jobs.kafka_offsets import OffsetRangeError, Watermarks, watermarks
from jobs.lakehouse_io import read_kafka_batch
from pipelines.reconciliation import DLQ, filter_accounted, landed_offsets, reconciliation_by_partition


@dataclass(frozen=True)
class PartitionReconciliation:
    """One raw partition: the accounted range [low, high) and what landed of it (see the pipeline).
    `low` is Kafka's low watermark, or the first offset asked for when that is later."""

    partition: int
    low: int | None
    high: int | None
    bronze_rows: int
    dlq_records: int
    distinct_offsets: int
    lowest_offset: int | None
    highest_offset: int | None
    is_reconciled: bool

    @property
    def messages(self) -> int:
        return (self.high or 0) - (self.low or 0)


@dataclass(frozen=True)
class DatasetReconciliation:
    dataset: str
    bronze_path: str
    partitions: list[PartitionReconciliation]
    dlq_reasons: dict[str, int]  # the accounted DLQ records by error class, once per source coordinates

    @property
    def reconciled(self) -> bool:
        return all(p.is_reconciled for p in self.partitions)

    @property
    def bronze_rows(self) -> int:
        return sum(p.bronze_rows for p in self.partitions)

    @property
    def dlq_records(self) -> int:
        return sum(p.dlq_records for p in self.partitions)

    @property
    def messages(self) -> int:
        return sum(p.messages for p in self.partitions)


def accounted_ranges(topic: str, held: Mapping[int, Watermarks], from_offsets: Mapping[int, int] | None = None) -> list[Watermarks]:
    """Per partition of `topic`, the offsets to account for: from `from_offsets[p]` (or Kafka's low
    watermark when that is later, or when `p` is not named) to the high watermark. A named
    partition Kafka does not list, or a first offset past the high watermark, is an OffsetRangeError."""
    from_offsets = dict(from_offsets or {})
    for partition, first in sorted(from_offsets.items()):
        if partition not in held:
            raise OffsetRangeError(f"topic {topic} has no partition {partition} (partitions: {sorted(held)})")
        if first > held[partition].high:
            raise OffsetRangeError(
                f"{topic} partition {partition}: first offset {first} is past the high watermark {held[partition].high}"
            )
    return [
        Watermarks(p, max(marks.low, from_offsets.get(p, marks.low)), marks.high) for p, marks in sorted(held.items())
    ]


def reconcile_dataset(
    spark: SparkSession, settings: Settings, contract: DatasetContract, from_offsets: Mapping[int, int] | None = None,
) -> DatasetReconciliation:
    """Every offset Kafka holds of the raw topic (or, per partition named in `from_offsets`, those
    from that first offset on), against the Bronze rows and DLQ records from it."""
    bronze_path = settings.lakehouse.table_uri("bronze", contract.name)
    ranges = accounted_ranges(contract.raw_topic, watermarks(settings, contract.raw_topic), from_offsets)
    kafka_offsets_df = spark.createDataFrame([(o.partition, o.low, o.high) for o in ranges], "partition int, low long, high long")
    landed_df = landed_offsets(
        spark.read.format("delta").load(bronze_path), read_kafka_batch(spark, settings, contract.dlq_topic), contract.raw_topic,
    ).transform(filter_accounted, kafka_offsets_df).cache()  # Bronze and the DLQ are read once, for the accounting and the reasons
    try:
        partitions = [
            PartitionReconciliation(**row.asDict())
            for row in landed_df.transform(reconciliation_by_partition, kafka_offsets_df).orderBy("partition").collect()
        ]
        reasons = landed_df.filter(F.col("landed_in") == F.lit(DLQ)).groupBy("error_class").count().collect()
    finally:
        landed_df.unpersist()
    return DatasetReconciliation(
        contract.name, bronze_path, partitions, dict(sorted((r["error_class"], r["count"]) for r in reasons)),
    )
