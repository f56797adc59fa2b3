"""Reconciling a dataset's raw topic against Bronze and the DLQ, as `make demo` and the tests do.

Reads Kafka's watermarks, the Bronze table and the DLQ topic, then applies the pure accounting of
`pipelines.reconciliation`: every offset Kafka holds, or only a range of them (a test on a shared
topic accounts for its own records only). Read-only: it commits no offset and
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
    `low` is Kafka's low watermark, or the first offset asked for when that is later; `high` Kafka's
    high watermark, or the end asked for."""

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


def accounted_ranges(
    topic: str, held: Mapping[int, Watermarks], from_offsets: Mapping[int, int] | None = None,
    to_offsets: Mapping[int, int] | None = None,
) -> list[Watermarks]:
    """Per partition of `topic`, the offsets [start, end) to account for: from `from_offsets[p]` (or
    Kafka's low watermark when that is later, or when `p` is not named) to `to_offsets[p]`
    (exclusive; the high watermark when `p` is not named). A named partition Kafka does not list,
    an offset past the high watermark, or a start after its end is an OffsetRangeError."""
    starts, ends = dict(from_offsets or {}), dict(to_offsets or {})
    for name, named in (("first offset", starts), ("end offset", ends)):
        for partition, offset in sorted(named.items()):
            if partition not in held:
                raise OffsetRangeError(f"topic {topic} has no partition {partition} (partitions: {sorted(held)})")
            if offset > held[partition].high:
                raise OffsetRangeError(
                    f"{topic} partition {partition}: {name} {offset} is past the high watermark {held[partition].high}"
                )
    ranges = [
        Watermarks(p, max(marks.low, starts.get(p, marks.low)), ends.get(p, marks.high)) for p, marks in sorted(held.items())
    ]
    for marks in ranges:
        if marks.low > marks.high:
            raise OffsetRangeError(f"{topic} partition {marks.partition}: start offset {marks.low} is after end offset {marks.high}")
    return ranges


def reconcile_dataset(
    spark: SparkSession, settings: Settings, contract: DatasetContract, from_offsets: Mapping[int, int] | None = None,
    to_offsets: Mapping[int, int] | None = None,
) -> DatasetReconciliation:
    """Every offset Kafka holds of the raw topic (or, per partition named, those from `from_offsets`
    on and before `to_offsets`), against the Bronze rows and DLQ records from it. Records landed
    before the range are out of the account; with `to_offsets`, so are those at or past each
    partition's end (its high watermark when not named). Without it, a record past Kafka's high
    watermark fails the account: Kafka never held it."""
    bronze_path = settings.lakehouse.table_uri("bronze", contract.name)
    ranges = accounted_ranges(contract.raw_topic, watermarks(settings, contract.raw_topic), from_offsets, to_offsets)
    up_to_high = bool(to_offsets)
    kafka_offsets_df = spark.createDataFrame([(o.partition, o.low, o.high) for o in ranges], "partition int, low long, high long")
    # Bronze and the DLQ are read once, for the accounting and the reasons alike.
    landed_df = landed_offsets(
        spark.read.format("delta").load(bronze_path), read_kafka_batch(spark, settings, contract.dlq_topic), contract.raw_topic,
    ).transform(filter_accounted, kafka_offsets_df, up_to_high).cache()
    try:
        partitions = [
            PartitionReconciliation(**row.asDict())
            for row in landed_df.transform(reconciliation_by_partition, kafka_offsets_df, up_to_high).orderBy("partition").collect()
        ]
        reasons = landed_df.filter(F.col("landed_in") == F.lit(DLQ)).groupBy("error_class").count().collect()
    finally:
        landed_df.unpersist()
    return DatasetReconciliation(
        contract.name, bronze_path, partitions, dict(sorted((r["error_class"], r["count"]) for r in reasons)),
    )
