"""The DLQ read back, for inspection and re-drive (pure).

A DLQ record is a raw record Bronze refused: its key, value and headers as they arrived, then the
`dlq.*` headers Bronze added (reason, source coordinates). The DLQ is at least once, so the same
raw record may be there twice; both copies name the same source coordinates, which identify it.

    with_dlq_fields            Kafka rows of a DLQ topic -> one row per DLQ record, its headers read
    dedupe_dlq_records         one row per source coordinates (the earliest DLQ copy)
    summarise_by_reason        grain: error class; key `error_class`
    summarise_by_reason_and_hour  grain: error class and hour of the raw record; key (`error_class`, `hour`)
    sample_records             the first records of each error class, by source coordinates
    filter_by_reason / filter_named_coordinates   what a re-drive selects
    to_redrive_records         what a re-drive sends back to the raw topic
    landed_redrives            raw records a re-drive sent, found again by their `redrive.*` headers

A re-driven record carries the `redrive.*` headers (`RedriveHeader`), and keeps them if it fails
again and comes back to the DLQ: `is_redriven` says so.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.bronze import dlq_header, header_text
from pipelines.bronze_verdict import DLQ_HEADER_PREFIX

REDRIVE_HEADER_PREFIX = "redrive."


class RedriveHeader:
    """The headers a re-drive adds to each record it sends: which DLQ record, of which raw record."""

    ID = "redrive.id"
    DLQ_TOPIC = "redrive.dlq.topic"
    DLQ_PARTITION = "redrive.dlq.partition"
    DLQ_OFFSET = "redrive.dlq.offset"
    SOURCE_TOPIC = "redrive.source.topic"
    SOURCE_PARTITION = "redrive.source.partition"
    SOURCE_OFFSET = "redrive.source.offset"
    ALL = (ID, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)


SOURCE_COORDINATES = ["source_topic", "source_partition", "source_offset"]
DLQ_COORDINATES = ["dlq_topic", "dlq_partition", "dlq_offset"]
# The DLQ headers' time format (`pipelines.bronze_verdict._utc_millis`), read back.
_HEADER_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def is_redriven(headers: Column) -> Column:
    """The record was sent by a re-drive (it carries `redrive.id`)."""
    return F.exists(headers, lambda h: h["key"] == F.lit(RedriveHeader.ID))


def has_source_coordinates(source_topic: Column, source_partition: Column, source_offset: Column) -> Column:
    return source_topic.isNotNull() & source_partition.isNotNull() & source_offset.isNotNull()


def with_dlq_fields(dlq_df: DataFrame) -> DataFrame:
    """Kafka rows of a DLQ topic (Spark's Kafka source, with headers) -> one row per DLQ record:
    its own coordinates and timestamp, the raw record's coordinates, timestamp and verdict read from
    the `dlq.*` headers, the key, value and headers untouched, and `is_redriven`."""
    return dlq_df.select(
        F.col("topic").alias("dlq_topic"),
        F.col("partition").alias("dlq_partition"),
        F.col("offset").alias("dlq_offset"),
        F.col("timestamp").alias("dlq_timestamp"),
        dlq_header("source.topic").alias("source_topic"),
        dlq_header("source.partition").cast("int").alias("source_partition"),
        dlq_header("source.offset").cast("long").alias("source_offset"),
        F.try_to_timestamp(dlq_header("source.timestamp"), F.lit(_HEADER_TIME_FORMAT)).alias("source_timestamp"),
        dlq_header("error.class").alias("error_class"),
        dlq_header("error.reason").alias("error_reason"),
        F.col("key"),
        F.col("value"),
        F.col("headers"),
        is_redriven(F.col("headers")).alias("is_redriven"),
    )


def dedupe_dlq_records(dlq_fields_df: DataFrame) -> DataFrame:
    """One row per source coordinates: the earliest DLQ copy (by DLQ partition and offset).

    A record without source coordinates (not written by Bronze) cannot repeat a verdict and is kept
    as it is, once per DLQ record.
    """
    earliest_copy = Window.partitionBy(*SOURCE_COORDINATES).orderBy("dlq_partition", "dlq_offset")
    is_attributed = has_source_coordinates(F.col("source_topic"), F.col("source_partition"), F.col("source_offset"))
    is_first_copy = (F.row_number().over(earliest_copy) == 1) | ~is_attributed
    return dlq_fields_df.withColumn("_is_first_copy", is_first_copy).filter(F.col("_is_first_copy")).drop("_is_first_copy")


def _counts() -> list[Column]:
    return [
        F.count(F.lit(1)).alias("records"),
        F.count_if(F.col("is_redriven")).alias("redriven_records"),
    ]


def summarise_by_reason(records_df: DataFrame) -> DataFrame:
    """Per error class: records, how many came back after a re-drive, the first and last raw
    record's time. Grain: error class (null for a record without one); most records first."""
    return (
        records_df.groupBy("error_class")
        .agg(*_counts(), F.min("source_timestamp").alias("first_source_timestamp"),
             F.max("source_timestamp").alias("last_source_timestamp"))
        .select(
            "error_class",
            F.col("records").cast("long"),
            F.col("redriven_records").cast("long"),
            "first_source_timestamp",
            "last_source_timestamp",
        )
        .orderBy(F.col("records").desc(), F.col("error_class").asc_nulls_last())
    )


def summarise_by_reason_and_hour(records_df: DataFrame) -> DataFrame:
    """Per error class and UTC hour of the raw record's Kafka timestamp (when it arrived, which
    says which producer or deploy sent it better than when Bronze judged it)."""
    return (
        records_df.groupBy("error_class", F.date_trunc("hour", "source_timestamp").alias("hour"))
        .agg(*_counts())
        .select("error_class", "hour", F.col("records").cast("long"), F.col("redriven_records").cast("long"))
        .orderBy(F.col("error_class").asc_nulls_last(), F.col("hour").asc_nulls_last())
    )


def sample_records(records_df: DataFrame, per_reason: int, value_prefix_bytes: int) -> DataFrame:
    """The first `per_reason` records of each error class by source coordinates: coordinates, key,
    the first `value_prefix_bytes` bytes of the value, the reason and every header."""
    first_records = Window.partitionBy("error_class").orderBy(*(F.col(c).asc_nulls_last() for c in SOURCE_COORDINATES + DLQ_COORDINATES))
    return (
        records_df.withColumn("sample", F.row_number().over(first_records))
        .filter(F.col("sample") <= F.lit(per_reason))
        .select(
            "error_class",
            "sample",
            *SOURCE_COORDINATES,
            *DLQ_COORDINATES,
            "key",
            F.substring("value", 1, value_prefix_bytes).alias("value_prefix"),
            F.length("value").alias("value_bytes"),
            "error_reason",
            "is_redriven",
            "headers",
        )
        .orderBy(F.col("error_class").asc_nulls_last(), "sample")
    )


def filter_by_reason(records_df: DataFrame, error_class: str) -> DataFrame:
    return records_df.filter(F.col("error_class") == F.lit(error_class))


def filter_named_coordinates(records_df: DataFrame, coordinates_df: DataFrame) -> DataFrame:
    """The records whose source coordinates are among `coordinates_df` (topic, partition, offset)."""
    named_df = coordinates_df.select(
        F.col("topic").alias("source_topic"),
        F.col("partition").cast("int").alias("source_partition"),
        F.col("offset").cast("long").alias("source_offset"),
    )
    return records_df.join(named_df, on=SOURCE_COORDINATES, how="left_semi")


def _header(name: str, value: Column) -> Column:
    return F.struct(F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value"))


def _is_original_header(header: Column) -> Column:
    return ~(header["key"].startswith(DLQ_HEADER_PREFIX) | header["key"].startswith(REDRIVE_HEADER_PREFIX))


def to_redrive_records(records_df: DataFrame) -> DataFrame:
    """What a re-drive sends for each record (`records_df` has its `redrive_id`): the original key
    and value, the original headers without the DLQ's (`dlq.*`) nor an earlier re-drive's
    (`redrive.*`), then the `redrive.*` headers naming the re-drive, the DLQ record and the raw
    record. Keeps the coordinates."""
    redrive_id = F.col("redrive_id")
    redrive_headers = F.array(
        _header(RedriveHeader.ID, redrive_id),
        _header(RedriveHeader.DLQ_TOPIC, F.col("dlq_topic")),
        _header(RedriveHeader.DLQ_PARTITION, F.col("dlq_partition")),
        _header(RedriveHeader.DLQ_OFFSET, F.col("dlq_offset")),
        _header(RedriveHeader.SOURCE_TOPIC, F.col("source_topic")),
        _header(RedriveHeader.SOURCE_PARTITION, F.col("source_partition")),
        _header(RedriveHeader.SOURCE_OFFSET, F.col("source_offset")),
    )
    original_headers = F.filter(F.coalesce(F.col("headers"), F.array().cast("array<struct<key:string,value:binary>>")),
                                _is_original_header)
    return records_df.select(
        *SOURCE_COORDINATES,
        *DLQ_COORDINATES,
        "error_class",
        "redrive_id",
        "key",
        "value",
        F.concat(original_headers, redrive_headers).alias("headers"),
    )


def landed_redrives(raw_df: DataFrame, pending_df: DataFrame) -> DataFrame:
    """Raw records (Spark's Kafka source, with headers) that a pending re-drive sent: those whose
    `redrive.*` headers name the pending row's source coordinates and re-drive id. One row per
    pending row found, with where it landed (`raw_partition`, `raw_offset`; the earliest if found
    more than once). `pending_df` has `redrive_id` and the source coordinates."""
    sent_df = raw_df.filter(is_redriven(F.col("headers"))).select(
        header_text(RedriveHeader.ID).alias("redrive_id"),
        header_text(RedriveHeader.SOURCE_TOPIC).alias("source_topic"),
        header_text(RedriveHeader.SOURCE_PARTITION).cast("int").alias("source_partition"),
        header_text(RedriveHeader.SOURCE_OFFSET).cast("long").alias("source_offset"),
        F.col("partition").alias("raw_partition"),
        F.col("offset").alias("raw_offset"),
    )
    earliest = Window.partitionBy("redrive_id", *SOURCE_COORDINATES).orderBy("raw_partition", "raw_offset")
    return (
        pending_df.select("redrive_id", *SOURCE_COORDINATES)
        .join(sent_df, on=["redrive_id", *SOURCE_COORDINATES], how="inner")
        .withColumn("_copy", F.row_number().over(earliest))
        .filter(F.col("_copy") == F.lit(1))
        .select("redrive_id", *SOURCE_COORDINATES, F.col("raw_partition").cast("int"), F.col("raw_offset").cast("long"))
    )
