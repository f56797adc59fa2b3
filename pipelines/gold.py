"""Gold: daily metric tables from Silver (pure).

One function per table, `(silver_df, updated_at) -> DataFrame`, each ending with a `select` that
fixes its columns and types; `GOLD_TABLES` names them per dataset with their key and the invariants
the data-quality suites check. This module reads and writes nothing: the job passes `updated_at`
(one value per run, so every table of a run carries the same one) and writes the frames.

Every table is keyed by `event_date` first and computed from that date's Silver rows alone, so a
date can be rebuilt on its own and a rebuild is idempotent. A date with no Silver rows yields no
rows, never zeros: the job replaces exactly the dates it was asked for, so a date emptied in Silver
becomes empty in Gold. Metrics are never summed across currencies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from pipelines.realtime_metrics import is_paid, is_purchase

FAILED = "failed"

# The sum of a DECIMAL(18,2) amount is DECIMAL(28,2) in Spark: room for 10^8 maximal amounts a day.
MONEY_TOTAL_TYPE = DecimalType(28, 2)
MONEY_SCALE = 2

GOLD_PARTITION_COLUMNS = ["event_date"]


def is_failed(status: Column) -> Column:
    return status == F.lit(FAILED)


def _with_updated_at(updated_at: Column) -> Column:
    return updated_at.cast("timestamp").alias("updated_at")


# -- user_events ----------------------------------------------------------------------------------


def daily_active_users(user_events_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per event_date. Active = any event that day, of any type, from any source."""
    return (
        user_events_df.groupBy("event_date")
        .agg(F.count_distinct("user_id").alias("dau_count"))
        .select("event_date", F.col("dau_count").cast("long"), _with_updated_at(updated_at))
    )


def conversion_rate_daily(user_events_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per event_date. The share of that day's active users who purchased at least
    once; a day with events but no purchase converted nobody, so its rate is 0.0, not unknown."""
    is_purchase_event = is_purchase(F.col("event_type"))
    return (
        user_events_df.groupBy("event_date")
        .agg(
            F.count_distinct("user_id").alias("dau_count"),
            F.count_if(is_purchase_event).alias("total_purchases"),
            F.count_distinct(F.when(is_purchase_event, F.col("user_id"))).alias("purchasing_users"),
        )
        .select(
            "event_date",
            (F.col("purchasing_users").cast("double") / F.col("dau_count")).alias("conversion_rate"),
            F.col("total_purchases").cast("long"),
            F.col("purchasing_users").cast("long"),
            F.col("dau_count").cast("long"),
            _with_updated_at(updated_at),
        )
    )


def events_per_source_daily(user_events_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per (event_date, source) that has events; every event counts."""
    return (
        user_events_df.groupBy("event_date", "source")
        .agg(F.count(F.lit(1)).alias("event_count"))
        .select("event_date", "source", F.col("event_count").cast("long"), _with_updated_at(updated_at))
    )


def purchases_per_page_daily(user_events_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per (event_date, page) with at least one purchase event; pages without a
    purchase that day have no row rather than a zero."""
    return (
        user_events_df.filter(is_purchase(F.col("event_type")))
        .groupBy("event_date", "page")
        .agg(F.count(F.lit(1)).alias("purchase_count"))
        .select("event_date", "page", F.col("purchase_count").cast("long"), _with_updated_at(updated_at))
    )


# -- orders ---------------------------------------------------------------------------------------


def filter_first_paid_change(orders_df: DataFrame) -> DataFrame:
    """Each order's first `paid` change of each event_date (by event_timestamp, then Kafka
    partition and offset, so ties are broken the same way on every rebuild).

    An order paid more than once in a day (a producer retry, a replayed state change) is money
    received once. The choice is made within a date so that each date stays rebuildable alone.
    """
    first_change = Window.partitionBy("event_date", "order_id").orderBy("event_timestamp", "kafka_partition", "kafka_offset")
    return (
        orders_df.filter(is_paid(F.col("status")))
        .withColumn("change_rank", F.row_number().over(first_change))
        .filter(F.col("change_rank") == F.lit(1))
        .drop("change_rank")
    )


def _revenue_by_currency(orders_df: DataFrame) -> DataFrame:
    """(event_date, currency, revenue, orders): the one computation both revenue tables read, so the
    average order value always agrees with the revenue and order count it is derived from."""
    return (
        orders_df.transform(filter_first_paid_change)
        .groupBy("event_date", "currency")
        .agg(F.sum("amount").alias("revenue"), F.count(F.lit(1)).alias("orders"))
        .select("event_date", "currency", F.col("revenue").cast(MONEY_TOTAL_TYPE), F.col("orders").cast("long"))
    )


def revenue_daily(orders_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per (event_date, currency) with a paid order. Revenue is recognised when an
    order is paid: the amount of each order's first paid change of the day; `orders` counts them."""
    return _revenue_by_currency(orders_df).select("event_date", "currency", "revenue", "orders", _with_updated_at(updated_at))


def orders_per_status_daily(orders_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per (event_date, status) that occurs. An order that changed to a status twice
    that day counts once; an order that passed through several statuses counts under each."""
    return (
        orders_df.groupBy("event_date", "status")
        .agg(F.count_distinct("order_id").alias("orders"))
        .select("event_date", "status", F.col("orders").cast("long"), _with_updated_at(updated_at))
    )


def order_failure_rate_daily(orders_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per event_date with any order change. failure_rate = failed / (paid + failed)
    over distinct orders; it is null on a day whose changes include no paid and no failed one,
    since no order reached an outcome and the rate is undefined (0.0 would claim all succeeded).
    An order both paid and failed that day counts in both."""
    failed_orders = F.count_distinct(F.when(is_failed(F.col("status")), F.col("order_id")))
    paid_orders = F.count_distinct(F.when(is_paid(F.col("status")), F.col("order_id")))
    outcomes = F.col("paid_orders") + F.col("failed_orders")
    has_outcome = outcomes > F.lit(0)
    return (
        orders_df.groupBy("event_date")
        .agg(failed_orders.alias("failed_orders"), paid_orders.alias("paid_orders"))
        .select(
            "event_date",
            F.col("failed_orders").cast("long"),
            F.col("paid_orders").cast("long"),
            F.when(has_outcome, F.col("failed_orders").cast("double") / outcomes).alias("failure_rate"),
            _with_updated_at(updated_at),
        )
    )


def average_order_value_daily(orders_df: DataFrame, updated_at: Column) -> DataFrame:
    """Grain: one row per (event_date, currency) with a paid order: revenue_daily's revenue / orders,
    rounded half-up to cents."""
    # Spark's decimal division keeps 12 decimal places here before the final rounding to 2.
    average = F.round(F.col("revenue") / F.col("orders"), MONEY_SCALE).cast(MONEY_TOTAL_TYPE)
    return _revenue_by_currency(orders_df).select(
        "event_date", "currency", average.alias("average_order_value"), "orders", _with_updated_at(updated_at),
    )


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldTable:
    name: str  # the table under <lakehouse>/gold/<name>
    key_columns: tuple[str, ...]  # unique together; always starts with event_date
    build: Callable[[DataFrame, Column], DataFrame]
    count_columns: tuple[str, ...] = ()  # must be >= 0
    rate_columns: tuple[str, ...] = ()  # must be within [0, 1] (nulls allowed where documented)
    at_least: tuple[tuple[str, str], ...] = ()  # (a, b): a >= b on every row
    description: str = ""  # one line: grain and meaning


GOLD_TABLES: dict[str, tuple[GoldTable, ...]] = {
    "user_events": (
        GoldTable("daily_active_users", ("event_date",), daily_active_users, count_columns=("dau_count",),
                  description="per event_date: distinct users with any event"),
        GoldTable("conversion_rate_daily", ("event_date",), conversion_rate_daily,
                  count_columns=("total_purchases", "purchasing_users", "dau_count"), rate_columns=("conversion_rate",),
                  at_least=(("dau_count", "purchasing_users"), ("total_purchases", "purchasing_users")),
                  description="per event_date: share of active users who purchased (0.0 when none did)"),
        GoldTable("events_per_source_daily", ("event_date", "source"), events_per_source_daily, count_columns=("event_count",),
                  description="per (event_date, source): number of events"),
        GoldTable("purchases_per_page_daily", ("event_date", "page"), purchases_per_page_daily, count_columns=("purchase_count",),
                  description="per (event_date, page) with a purchase: number of purchase events"),
    ),
    "orders": (
        GoldTable("revenue_daily", ("event_date", "currency"), revenue_daily, count_columns=("orders",),
                  description="per (event_date, currency): amount of each order's first paid change that day, and those orders"),
        GoldTable("orders_per_status_daily", ("event_date", "status"), orders_per_status_daily, count_columns=("orders",),
                  description="per (event_date, status): distinct orders with a change to that status"),
        GoldTable("order_failure_rate_daily", ("event_date",), order_failure_rate_daily,
                  count_columns=("failed_orders", "paid_orders"), rate_columns=("failure_rate",),
                  description="per event_date with order changes: failed / (paid + failed) orders, null without either"),
        GoldTable("average_order_value_daily", ("event_date", "currency"), average_order_value_daily, count_columns=("orders",),
                  description="per (event_date, currency): revenue / paid orders, rounded half-up to cents"),
    ),
}
