"""The speed layer's metrics: 1-minute tumbling windows over Bronze, with a watermark (pure).

Each metric is a `MetricSpec`: which rows count, the dimensions, and the measure. Grain of every
metric table: one row per (window_start, dimensions...). Events later than the watermark (the
latest event time seen minus `watermark`) are dropped by Spark's stateful aggregation and never
counted; events within it update their window in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

LOGIN, PURCHASE, PAID = "login", "purchase", "paid"


def is_login(event_type: Column) -> Column:
    return event_type == F.lit(LOGIN)


def is_purchase(event_type: Column) -> Column:
    return event_type == F.lit(PURCHASE)


def is_paid(status: Column) -> Column:
    return status == F.lit(PAID)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the table under <lakehouse>/realtime/
    dimensions: tuple[str, ...]
    measure_name: str
    measure: Callable[[], Column]
    keep: Callable[[], Column] | None = None  # which rows count; None = all

    @property
    def key_columns(self) -> list[str]:
        return ["window_start", *self.dimensions]


def _count() -> Column:
    return F.count(F.lit(1))


METRICS: dict[str, tuple[MetricSpec, ...]] = {
    "user_events": (
        MetricSpec("user_events_per_minute_by_type", ("event_type",), "events", _count),
        MetricSpec("logins_per_minute_by_source", ("source",), "logins", _count, lambda: is_login(F.col("event_type"))),
        MetricSpec("purchases_per_minute", (), "purchases", _count, lambda: is_purchase(F.col("event_type"))),
    ),
    "orders": (
        MetricSpec("orders_per_minute_by_status", ("status",), "orders", _count),
        # Revenue is money received: the amount of `paid` order events, per currency (never summed
        # across currencies).
        MetricSpec("revenue_per_minute_by_currency", ("currency",), "revenue",
                   lambda: F.sum("amount"), lambda: is_paid(F.col("status"))),
    ),
}


def windowed_metric(bronze_df: DataFrame, spec: MetricSpec, window: str, watermark: str) -> DataFrame:
    """Per-window values of one metric. On a stream, in update mode, each trigger emits the full,
    current value of every window that changed."""
    rows_df = bronze_df.withWatermark("event_timestamp", watermark)
    if spec.keep is not None:
        rows_df = rows_df.filter(spec.keep())
    return (
        rows_df.groupBy(F.window("event_timestamp", window).alias("window"), *spec.dimensions)
        .agg(spec.measure().alias(spec.measure_name))
        .select(
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            *spec.dimensions,
            spec.measure_name,
        )
    )
