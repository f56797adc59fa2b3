"""Bronze -> Silver: the contract's facts, one row per identity, judged by the row rules (pure).

Grain and identity (what "the same event" means), per dataset:
    user_events  one row per `event_id`
    orders       one row per order state change: (`order_id`, `status`, `event_timestamp`);
                 v1 orders carry no event id, so a change is known by what changed and when

At-least-once delivery and client retries make duplicates normal. Of several copies of one identity
the one kept is the earliest by Kafka coordinates (`kafka_partition`, then `kafka_offset`; copies of
one key share a partition, so this is the first offset written). The rule is a total order, so
Silver is the same whatever order its dates are run in: a later run that brings an earlier copy
replaces the one Silver held.

Every Bronze row read gets exactly one `silver_action` (see `SilverAction`); the job reconciles the
counts against the rows it read.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contracts.envelope import METADATA_FIELDS
from contracts.registry import DatasetContract
from contracts.spark_schema import payload_schema
from pipelines.silver_rules import QUARANTINE, VIOLATIONS, breaks

SILVER_PARTITION_COLUMNS = ["event_date"]
QUARANTINE_PARTITION_COLUMNS = ["ingestion_date"]
IDENTITY: dict[str, tuple[str, ...]] = {
    "user_events": ("event_id",),
    "orders": ("order_id", "status", "event_timestamp"),
}
COPY_ORDER = ("kafka_partition", "kafka_offset")
# Where the row kept came from in Bronze (and so in Kafka).
BRONZE_COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "ingestion_date")
ORDERS_CURRENT_KEY = "order_id"


class SilverAction:
    """What a run does with each Bronze row it reads."""

    INSERT = "insert"  # a new identity: inserted
    REPLACE = "replace"  # an earlier copy than the one Silver holds: takes its place
    DUPLICATE_IN_SILVER = "duplicate_in_silver"  # Silver holds this copy or an earlier one: dropped
    DUPLICATE_IN_INPUT = "duplicate_in_input"  # a later copy of an identity in the same input: dropped
    QUARANTINED = "quarantined"  # broke a quarantine rule: to the quarantine table

    WRITTEN = (INSERT, REPLACE)
    ALL = (INSERT, REPLACE, DUPLICATE_IN_SILVER, DUPLICATE_IN_INPUT, QUARANTINED)


def silver_columns(contract: DatasetContract) -> list[str]:
    """The Silver table's columns: the contract's, the envelope metadata, the Bronze coordinates."""
    return [*payload_schema(contract).fieldNames(), *METADATA_FIELDS, *BRONZE_COORDINATES, "silver_run_id", "event_date"]


def to_silver_rows(bronze_df: DataFrame, contract: DatasetContract, run_id: str) -> DataFrame:
    """Bronze rows in Silver's shape. `event_date` is the UTC date of the event's own timestamp
    (Spark's session time zone is UTC), so a late event lands in its own date's partition."""
    columns = silver_columns(contract)[:-2]
    return bronze_df.select(
        *columns, F.lit(run_id).alias("silver_run_id"), F.to_date("event_timestamp").alias("event_date")
    )


def plan_silver_actions(judged_df: DataFrame, silver_keys_df: DataFrame, identity: tuple[str, ...]) -> DataFrame:
    """`judged_df` (Silver rows with `rule_violations`) plus `silver_action` for every row.

    `silver_keys_df` holds what Silver already has for the event dates at hand: the identity,
    `event_date` and the Kafka coordinates of the copy kept. Quarantined rows take no part in
    deduplication: a copy that breaks a rule never stands in for a good one.
    """
    quarantined = breaks(QUARANTINE)
    first_copy = Window.partitionBy(quarantined, *identity, "event_date").orderBy(*COPY_ORDER)
    held = silver_keys_df.select(
        *identity, "event_date", F.col("kafka_partition").alias("_held_partition"), F.col("kafka_offset").alias("_held_offset")
    )
    earlier_than_held = F.struct(*COPY_ORDER) < F.struct(F.col("_held_partition"), F.col("_held_offset"))
    action = (
        F.when(quarantined, F.lit(SilverAction.QUARANTINED))
        .when(F.col("_copy") > 1, F.lit(SilverAction.DUPLICATE_IN_INPUT))
        .when(F.col("_held_offset").isNull(), F.lit(SilverAction.INSERT))
        .when(earlier_than_held, F.lit(SilverAction.REPLACE))
        .otherwise(F.lit(SilverAction.DUPLICATE_IN_SILVER))
    )
    return (
        judged_df.withColumn("_copy", F.row_number().over(first_copy))
        .join(held, [*identity, "event_date"], "left")
        .withColumn("silver_action", action)
        .select(*judged_df.columns, "silver_action")
    )


def filter_staged_rows(planned_df: DataFrame, contract: DatasetContract) -> DataFrame:
    """The rows the run writes to Silver (inserts and replacements), in Silver's columns."""
    return planned_df.filter(F.col("silver_action").isin(*SilverAction.WRITTEN)).select(*silver_columns(contract))


def quarantine_rows(planned_df: DataFrame, contract: DatasetContract) -> DataFrame:
    """One row per (quarantined record, quarantine rule it broke): the record's Silver columns and
    Bronze coordinates, the rule, its reason and the run that quarantined it."""
    columns = [c for c in silver_columns(contract) if c != "silver_run_id"]
    return (
        planned_df.filter(F.col("silver_action") == SilverAction.QUARANTINED)
        .select(*columns, F.col("silver_run_id").alias("quarantine_run_id"), F.explode(VIOLATIONS).alias("v"))
        .filter(F.col("v.action") == QUARANTINE)
        .select(*columns, F.col("v.rule").alias("rule"), F.col("v.reason").alias("reason"), "quarantine_run_id")
    )


def state_order(prefix: str = "") -> Column:
    """The order of an order's state changes: event time, then Kafka coordinates for ties."""
    return F.struct(*(F.col(f"{prefix}{c}") for c in ("event_timestamp", *COPY_ORDER)))


def filter_latest_order_states(silver_orders_df: DataFrame) -> DataFrame:
    """One row per order: its latest state change among these rows (by `state_order`)."""
    latest = Window.partitionBy(ORDERS_CURRENT_KEY).orderBy(*(F.col(c).desc() for c in ("event_timestamp", *COPY_ORDER)))
    ranked_df = silver_orders_df.withColumn("_rank", F.row_number().over(latest))
    return ranked_df.filter(F.col("_rank") == 1).select(*silver_orders_df.columns)
