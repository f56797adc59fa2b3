"""The speed layer: 1-minute windows from Bronze equal a direct computation over the same events,
a late event inside the watermark updates its window, an event beyond it is excluded."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from chispa import assert_df_equality
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.registry import get_contract
from contracts.user_events import UserEventV1
from jobs.bronze_stream import start_bronze_query
from jobs.realtime_metrics import start_metric_queries
from pipelines.realtime_metrics import METRICS, windowed_metric
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import produce_raw
from tests.factories import envelope_value

USER_EVENTS = get_contract("user_events")


@pytest.fixture
def lake_settings(settings: Settings, tmp_path: Path) -> Settings:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    return load_settings(kafka={"bootstrap_servers": settings.kafka.bootstrap}, lakehouse={"root": (tmp_path / "lake").as_uri()})


def _event(at: str, event_type: str, source: str) -> UserEventV1:
    return UserEventV1(event_id=uuid4(), user_id=1, event_type=event_type, page="/", source=source,
                       event_timestamp=datetime.fromisoformat(at))


def _run_pipeline_once(spark: SparkSession, settings: Settings, events: list[UserEventV1]) -> None:
    produce_raw(settings, USER_EVENTS.raw_topic, [envelope_value(USER_EVENTS, e) for e in events])
    bronze = start_bronze_query(spark, settings, "user_events", available_now=True)
    bronze.awaitTermination()
    for query in start_metric_queries(spark, settings, "user_events", available_now=True):
        query.awaitTermination()
        assert query.exception() is None


def _metric_rows(spark: SparkSession, settings: Settings, name: str, dims: tuple[str, ...], measure: str) -> dict:
    table_df = spark.read.format("delta").load(settings.lakehouse.table_uri("realtime", name))
    ours = table_df.filter(F.year("window_start") == 2030).collect()  # other tests' events are older
    return {(r.window_start.strftime("%H:%M"), *(r[d] for d in dims)): r[measure] for r in ours}


def _direct(events: list[UserEventV1], key, keep=lambda e: True) -> dict:
    return dict(Counter(key(e) for e in events if keep(e)))


def test_windows_equal_direct_computation_with_late_events(spark: SparkSession, lake_settings: Settings) -> None:
    on_time = [
        _event("2030-01-01T10:00:10+00:00", "login", "web"),
        _event("2030-01-01T10:00:40+00:00", "login", "mobile"),
        _event("2030-01-01T12:00:50+02:00", "purchase", "web"),  # 10:00:50 UTC
        _event("2030-01-01T10:01:05+00:00", "click", "web"),
        _event("2030-01-01T10:03:30+00:00", "login", "web"),  # watermark becomes 10:01:30
    ]
    late_inside_watermark = _event("2030-01-01T10:02:00+00:00", "purchase", "mobile")
    later_than_watermark = _event("2030-01-01T10:00:20+00:00", "login", "web")

    _run_pipeline_once(spark, lake_settings, on_time)
    _run_pipeline_once(spark, lake_settings, [late_inside_watermark, later_than_watermark])

    counted = [*on_time, late_inside_watermark]  # the event beyond the watermark is excluded
    assert _metric_rows(spark, lake_settings, "user_events_per_minute_by_type", ("event_type",), "events") == _direct(
        counted, lambda e: (_utc_minute(e), e.event_type)
    ) == {("10:00", "login"): 2, ("10:00", "purchase"): 1, ("10:01", "click"): 1, ("10:02", "purchase"): 1,
          ("10:03", "login"): 1}
    assert _metric_rows(spark, lake_settings, "logins_per_minute_by_source", ("source",), "logins") == _direct(
        counted, lambda e: (_utc_minute(e), e.source), lambda e: e.event_type == "login"
    ) == {("10:00", "web"): 1, ("10:00", "mobile"): 1, ("10:03", "web"): 1}
    assert _metric_rows(spark, lake_settings, "purchases_per_minute", (), "purchases") == _direct(
        counted, lambda e: (_utc_minute(e),), lambda e: e.event_type == "purchase"
    ) == {("10:00",): 1, ("10:02",): 1}


def _utc_minute(event: UserEventV1) -> str:
    return event.event_timestamp.astimezone(UTC).strftime("%H:%M")


def test_revenue_counts_paid_orders_per_currency_and_minute(spark: SparkSession) -> None:
    [orders_per_status, revenue] = METRICS["orders"]
    bronze_df = spark.createDataFrame(
        [
            (datetime(2030, 1, 1, 10, 0, 5), "paid", "EUR", Decimal("10.50")),
            (datetime(2030, 1, 1, 10, 0, 55), "paid", "EUR", Decimal("4.25")),
            (datetime(2030, 1, 1, 10, 0, 30), "paid", "USD", Decimal("7.00")),
            (datetime(2030, 1, 1, 10, 0, 31), "created", "EUR", Decimal("99.00")),  # not money received
            (datetime(2030, 1, 1, 10, 1, 0), "paid", "EUR", Decimal("1.00")),  # next window
        ],
        "event_timestamp TIMESTAMP, status STRING, currency STRING, amount DECIMAL(18,2)",
    )
    expected_df = spark.createDataFrame(
        [
            (datetime(2030, 1, 1, 10, 0), datetime(2030, 1, 1, 10, 1), "EUR", Decimal("14.75")),
            (datetime(2030, 1, 1, 10, 0), datetime(2030, 1, 1, 10, 1), "USD", Decimal("7.00")),
            (datetime(2030, 1, 1, 10, 1), datetime(2030, 1, 1, 10, 2), "EUR", Decimal("1.00")),
        ],
        "window_start TIMESTAMP, window_end TIMESTAMP, currency STRING, revenue DECIMAL(28,2)",
    )
    actual_df = windowed_metric(bronze_df, revenue, "1 minute", "2 minutes").orderBy("window_start", "currency")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)
    assert orders_per_status.dimensions == ("status",)
