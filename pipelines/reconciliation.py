"""Kafka against Bronze + DLQ: did every raw record land exactly once (pure)?

Bronze's accounting: each offset of a raw topic is one Bronze row or one DLQ record, never both,
never twice, and nothing lands that Kafka did not hold. DLQ records may repeat after a crash (the
DLQ is at least once); they are counted once per source coordinates, as DLQ readers dedupe them.
Retention deletes a raw topic's oldest records while Bronze and the DLQ (kept longer) keep what came
of them: offsets below a partition's low watermark are out of its reconciliation. A caller may
account for a range only (e.g. where its own records start and end): it passes the range as the
partition's `low` and `high` with `up_to_high`, and what landed outside it is likewise left out.

Grain of `reconciliation_by_partition`: one row per raw partition, key `partition`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.bronze import dlq_header

BRONZE, DLQ = "bronze", "dlq"


def landed_offsets(bronze_df: DataFrame, dlq_df: DataFrame, raw_topic: str) -> DataFrame:
    """(partition, offset, landed_in, error_class) of each raw record of `raw_topic` that Bronze or
    the DLQ holds; `error_class` is the DLQ's reason (null for Bronze rows).

    `bronze_df` is the Bronze table; `dlq_df` the DLQ topic read back (Spark's Kafka source, with
    headers); DLQ records count once per source coordinates. A record the DLQ holds that a bounded
    replay later landed in Bronze (a fixed contract now accepts it) landed in Bronze: its DLQ records
    are superseded. A streamed row never supersedes anything, so a record in both stays a failure.
    """
    bronze_landed_df = bronze_df.select(
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.lit(BRONZE).alias("landed_in"),
        F.lit(None).cast("string").alias("error_class"),
    )
    replayed_df = bronze_df.where(F.col("bronze_replay_id").isNotNull()).select(
        F.col("kafka_partition").alias("partition"), F.col("kafka_offset").alias("offset"),
    )
    dlq_landed_df = (
        dlq_df.select(
            dlq_header("source.topic").alias("topic"),
            dlq_header("source.partition").cast("int").alias("partition"),
            dlq_header("source.offset").cast("long").alias("offset"),
            dlq_header("error.class").alias("error_class"),
        )
        .filter(F.col("topic") == F.lit(raw_topic))
        .dropDuplicates(["partition", "offset"])  # a crash may repeat a DLQ record, never its verdict
        .join(replayed_df, on=["partition", "offset"], how="left_anti")
        .select("partition", "offset", F.lit(DLQ).alias("landed_in"), "error_class")
    )
    return bronze_landed_df.unionByName(dlq_landed_df)


def _is_reconciled(low: Column, high: Column, bronze_rows: Column, dlq_records: Column, distinct_offsets: Column,
                   lowest_offset: Column, highest_offset: Column) -> Column:
    is_listed_by_kafka = low.isNotNull()
    is_each_offset_once = (bronze_rows + dlq_records == distinct_offsets) & (distinct_offsets == high - low)
    is_inside_range = (distinct_offsets == 0) | ((lowest_offset >= low) & (highest_offset < high))
    return is_listed_by_kafka & is_each_offset_once & is_inside_range


def _offset_ranges(kafka_offsets_df: DataFrame) -> DataFrame:
    return kafka_offsets_df.select(F.col("partition").cast("int"), F.col("low").cast("long"), F.col("high").cast("long"))


def filter_accounted(landed_df: DataFrame, kafka_offsets_df: DataFrame, up_to_high: bool = False) -> DataFrame:
    """The landed records a reconciliation accounts for: those at or above their partition's `low`
    (and, with `up_to_high`, below its `high`), and every one from a partition Kafka does not list
    (which then fails the reconciliation).

    `landed_df` as `landed_offsets` gives it; `kafka_offsets_df` (partition, low, high) the range
    accounted per partition: Kafka's watermarks, or a range asked for. Without `up_to_high` a record
    past Kafka's high watermark stays in the account, and fails it: Kafka never held it.
    """
    ranges_df = _offset_ranges(kafka_offsets_df)
    is_below_high = F.lit(not up_to_high) | (F.col("offset") < F.col("high"))
    is_accounted = F.col("low").isNull() | ((F.col("offset") >= F.col("low")) & is_below_high)
    return landed_df.join(ranges_df, on="partition", how="left").filter(is_accounted).select(*landed_df.columns)


def reconciliation_by_partition(landed_df: DataFrame, kafka_offsets_df: DataFrame, up_to_high: bool = False) -> DataFrame:
    """Per raw partition: the accounted range [low, high), what landed of it, and whether it reconciles.

    `landed_df` as `landed_offsets` gives it; `kafka_offsets_df` (partition, low, high) the raw
    topic's watermarks, or a range asked for with `up_to_high` (see `filter_accounted`). A partition
    Kafka does not list but records claim to come from is kept (with null `low`/`high`), and fails.
    """
    ranges_df = _offset_ranges(kafka_offsets_df)
    counts_df = (
        landed_df.transform(filter_accounted, ranges_df, up_to_high)
        .groupBy("partition")
        .agg(
            F.count_if(F.col("landed_in") == F.lit(BRONZE)).alias("bronze_rows"),
            F.count_if(F.col("landed_in") == F.lit(DLQ)).alias("dlq_records"),
            F.count_distinct("offset").alias("distinct_offsets"),
            F.min("offset").alias("lowest_offset"),
            F.max("offset").alias("highest_offset"),
        )
    )
    joined_df = ranges_df.join(counts_df, on="partition", how="full_outer")
    bronze_rows, dlq_records, distinct_offsets = (
        F.coalesce(F.col(c), F.lit(0)) for c in ("bronze_rows", "dlq_records", "distinct_offsets")
    )
    return joined_df.select(
        F.col("partition").cast("int"),
        F.col("low"),
        F.col("high"),
        bronze_rows.cast("long").alias("bronze_rows"),
        dlq_records.cast("long").alias("dlq_records"),
        distinct_offsets.cast("long").alias("distinct_offsets"),
        F.col("lowest_offset"),
        F.col("highest_offset"),
        F.coalesce(
            _is_reconciled(F.col("low"), F.col("high"), bronze_rows, dlq_records, distinct_offsets,
                           F.col("lowest_offset"), F.col("highest_offset")),
            F.lit(False),
        ).alias("is_reconciled"),
    )
