"""Silver and Gold end to end from real Bronze: a known set through Kafka and the Bronze job, then
the batch jobs; the exact Silver, quarantine, orders_current and Gold rows; write-audit-publish.

The events carry dates no other test uses (March 2025), so Gold's rows for those dates are exactly
the ones computed by hand below, whatever else the shared topics hold.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.envelope import wrap
from contracts.orders import OrderItemV1, OrderV1
from contracts.registry import get_contract
from contracts.user_events import UserEventV1
from jobs.bronze_stream import start_bronze_query
from jobs.gold_batch import run_gold
from jobs.lakehouse_io import delta_version
from jobs.quality import RunFailedError
from jobs.silver_batch import run_silver
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import produce_raw

USER_EVENTS, ORDERS = get_contract("user_events"), get_contract("orders")
RECEIVED_AT = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
DAY, LATE_DAY = date(2025, 3, 2), date(2025, 3, 1)
OUR_DATES = [LATE_DAY, DAY]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _event(n: int, user_id: int, event_type: str, page: str, at: str, source: str) -> UserEventV1:
    return UserEventV1(event_id=UUID(int=n), user_id=user_id, event_type=event_type, page=page,
                       event_timestamp=_at(at), source=source)


def _order(order_id: str, status: str, at: str, amount: str, currency: str, items: list[tuple[str, int, str]]) -> OrderV1:
    return OrderV1(
        order_id=order_id, customer_id="C-9", status=status, amount=Decimal(amount), currency=currency,
        items=[OrderItemV1(sku=sku, quantity=quantity, unit_price=Decimal(price)) for sku, quantity, price in items],
        event_timestamp=_at(at),
    )


E1 = _event(1, 901, "login", "/", "2025-03-02T09:00:00", "web")
E2 = _event(2, 901, "purchase", "/product/42", "2025-03-02T09:05:00", "web")
E3 = _event(3, 902, "click", "/search", "2025-03-02T10:00:00", "mobile")
E4 = _event(4, 902, "purchase", "/checkout", "2025-03-02T10:30:00", "mobile")
E5 = _event(5, 903, "login", "/home", "2025-03-02T11:00:00", "web")
LATE = _event(6, 904, "click", "/cart", "2025-03-01T22:00:00", "web")
FUTURE = _event(7, 905, "purchase", "/checkout", "2025-03-02T12:10:00", "web")  # 10 min after receipt
OFF_MAP = _event(8, 903, "click", "/unknown", "2025-03-02T11:30:00", "web")  # a warning, kept
# E1 twice: a client retry.
USER_EVENT_STREAM = [E1, E1, E2, E3, E4, E5, LATE, FUTURE, OFF_MAP]

CREATED = _order("O-901", "created", "2025-03-02T08:00:00", "20.00", "EUR", [("A", 2, "10.00")])
SHIPPED = _order("O-901", "shipped", "2025-03-02T10:00:00", "20.00", "EUR", [("A", 2, "10.00")])
PAID = _order("O-901", "paid", "2025-03-02T09:00:00", "20.00", "EUR", [("A", 2, "10.00")])
PAID_USD = _order("O-902", "paid", "2025-03-02T09:30:00", "15.50", "USD", [("B", 1, "15.50")])
FAILED = _order("O-903", "failed", "2025-03-02T09:45:00", "5.00", "EUR", [("C", 1, "5.00")])
BAD_AMOUNT = _order("O-904", "paid", "2025-03-02T09:50:00", "30.00", "EUR", [("A", 2, "10.00")])
PAID_LATE = _order("O-905", "paid", "2025-03-01T23:00:00", "7.25", "EUR", [("D", 1, "7.25")])
# `shipped` is produced before its `paid`; PAID twice (a retry).
ORDER_STREAM = [CREATED, SHIPPED, PAID, PAID, PAID_USD, FAILED, BAD_AMOUNT, PAID_LATE]


@dataclass
class Lake:
    settings: Settings
    ingestion_dates: list[date]
    silver_results: dict
    gold_results: dict

    def table(self, spark: SparkSession, layer: str, name: str) -> DataFrame:
        return spark.read.format("delta").load(self.settings.lakehouse.table_uri(layer, name))


def _produce(settings: Settings, contract, events) -> None:
    produce_raw(settings, contract.raw_topic, [wrap(contract, e, "tests", received_at=RECEIVED_AT)[:2] for e in events])


@pytest.fixture(scope="module")
def lake(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Kafka -> the real Bronze job -> Silver for each ingestion date -> Gold for the touched dates."""
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    lake_settings = load_settings(kafka={"bootstrap_servers": settings.kafka.bootstrap},
                                  lakehouse={"root": (tmp_path_factory.mktemp("batch") / "lake").as_uri()})
    _produce(lake_settings, USER_EVENTS, USER_EVENT_STREAM)
    _produce(lake_settings, ORDERS, ORDER_STREAM)
    silver_results, gold_results = {}, {}
    ingestion_dates: set[date] = set()
    for contract in (USER_EVENTS, ORDERS):
        query = start_bronze_query(spark, lake_settings, contract.name, available_now=True)
        query.awaitTermination()
        assert query.exception() is None
        bronze_df = spark.read.format("delta").load(lake_settings.lakehouse.table_uri("bronze", contract.name))
        days = sorted(r.ingestion_date for r in bronze_df.select("ingestion_date").distinct().collect())
        ingestion_dates.update(days)
        silver_results[contract.name] = [run_silver(spark, lake_settings, contract.name, day) for day in days]
        touched = sorted({d for r in silver_results[contract.name] for d in r.details["event_dates_touched"]})
        gold_results[contract.name] = run_gold(spark, lake_settings, contract.name, touched)
    return Lake(lake_settings, sorted(ingestion_dates), silver_results, gold_results)


def _ours(df: DataFrame) -> DataFrame:
    return df.filter(F.col("event_date").isin(OUR_DATES))


def test_silver_keeps_one_row_per_identity_the_earliest_copy(spark: SparkSession, lake: Lake) -> None:
    rows = _ours(lake.table(spark, "silver", "user_events")).collect()
    assert sorted((r.event_id, r.event_date) for r in rows) == sorted(
        [(str(e.event_id), e.event_timestamp.date()) for e in (E1, E2, E3, E4, E5, OFF_MAP, LATE)]
    )
    bronze_e1 = (lake.table(spark, "bronze", "user_events").filter(F.col("event_id") == str(E1.event_id))
                 .orderBy("kafka_offset").collect())
    assert len(bronze_e1) == 2  # both copies reached Bronze; Silver kept the first
    kept = next(r for r in rows if r.event_id == str(E1.event_id))
    assert (kept.kafka_partition, kept.kafka_offset) == (bronze_e1[0].kafka_partition, bronze_e1[0].kafka_offset)
    assert (kept.user_id, kept.event_type, kept.page, kept.source, kept.received_at) == (901, "login", "/", "web", datetime(2025, 3, 2, 12))
    assert kept.silver_run_id == lake.silver_results["user_events"][0].run_id

    orders = _ours(lake.table(spark, "silver", "orders")).collect()
    assert sorted((r.order_id, r.status, r.event_timestamp) for r in orders) == sorted(
        (o.order_id, o.status, o.event_timestamp.replace(tzinfo=None)) for o in (CREATED, SHIPPED, PAID, PAID_USD, FAILED, PAID_LATE)
    )


def test_quarantine_holds_each_rule_breaker_with_rule_reason_and_coordinates(spark: SparkSession, lake: Lake) -> None:
    events = lake.table(spark, "quarantine", "user_events").filter(F.col("event_id") == str(FUTURE.event_id)).collect()
    assert [(r.rule, r.event_date) for r in events] == [("event_time_not_in_future", DAY)]
    assert "received_at" in events[0].reason and events[0].kafka_topic == USER_EVENTS.raw_topic and events[0].kafka_offset is not None
    orders = lake.table(spark, "quarantine", "orders").filter(F.col("order_id") == "O-904").collect()
    assert [(r.rule, r.amount) for r in orders] == [("amount_matches_items", Decimal("30.00"))]
    assert orders[0].quarantine_run_id == lake.silver_results["orders"][0].run_id
    result = lake.silver_results["user_events"][0].details
    assert result["quarantined_by_rule"]["event_time_not_in_future"] >= 1
    assert result["warnings_by_rule"]["page_in_site_map"] >= 1  # OFF_MAP: kept, and counted


def test_orders_current_never_moves_an_order_backwards(spark: SparkSession, lake: Lake) -> None:
    current = {r.order_id: r.status for r in lake.table(spark, "silver", "orders_current").collect()}
    # O-901's `shipped` arrived before its `paid`; the later state stands. O-904 was quarantined.
    assert {k: v for k, v in current.items() if k in ("O-901", "O-902", "O-903", "O-904", "O-905")} == {
        "O-901": "shipped", "O-902": "paid", "O-903": "failed", "O-905": "paid"
    }


def test_late_event_lands_in_its_own_date_and_the_run_reports_it(spark: SparkSession, lake: Lake) -> None:
    (late_row,) = lake.table(spark, "silver", "user_events").filter(F.col("event_id") == str(LATE.event_id)).collect()
    assert late_row.event_date == LATE_DAY and late_row.ingestion_date in lake.ingestion_dates
    touched = {d for r in lake.silver_results["user_events"] for d in r.details["event_dates_touched"]}
    assert {LATE_DAY, DAY} <= touched
    assert set(lake.gold_results["user_events"].dates) == touched


def _gold(spark: SparkSession, lake: Lake, name: str, *columns: str) -> list[tuple]:
    rows = _ours(lake.table(spark, "gold", name)).collect()
    return sorted(tuple(r[c] for c in ("event_date", *columns)) for r in rows)


def test_gold_user_events_tables_hold_the_hand_computed_metrics(spark: SparkSession, lake: Lake) -> None:
    assert _gold(spark, lake, "daily_active_users", "dau_count") == [(LATE_DAY, 1), (DAY, 3)]
    assert _gold(spark, lake, "conversion_rate_daily", "conversion_rate", "total_purchases", "purchasing_users", "dau_count") == [
        (LATE_DAY, 0.0, 0, 0, 1), (DAY, 2 / 3, 2, 2, 3)
    ]
    assert _gold(spark, lake, "events_per_source_daily", "source", "event_count") == [
        (LATE_DAY, "web", 1), (DAY, "mobile", 2), (DAY, "web", 4)
    ]
    assert _gold(spark, lake, "purchases_per_page_daily", "page", "purchase_count") == [(DAY, "/checkout", 1), (DAY, "/product/42", 1)]


def test_gold_orders_tables_hold_the_hand_computed_metrics(spark: SparkSession, lake: Lake) -> None:
    assert _gold(spark, lake, "revenue_daily", "currency", "revenue", "orders") == [
        (LATE_DAY, "EUR", Decimal("7.25"), 1), (DAY, "EUR", Decimal("20.00"), 1), (DAY, "USD", Decimal("15.50"), 1)
    ]
    assert _gold(spark, lake, "orders_per_status_daily", "status", "orders") == [
        (LATE_DAY, "paid", 1), (DAY, "created", 1), (DAY, "failed", 1), (DAY, "paid", 2), (DAY, "shipped", 1)
    ]
    assert _gold(spark, lake, "order_failure_rate_daily", "failed_orders", "paid_orders", "failure_rate") == [
        (LATE_DAY, 0, 1, 0.0), (DAY, 1, 2, 1 / 3)
    ]
    assert _gold(spark, lake, "average_order_value_daily", "currency", "average_order_value", "orders") == [
        (LATE_DAY, "EUR", Decimal("7.25"), 1), (DAY, "EUR", Decimal("20.00"), 1), (DAY, "USD", Decimal("15.50"), 1)
    ]


def test_each_run_reconciles_and_records_its_checks(spark: SparkSession, lake: Lake) -> None:
    for result in [*lake.silver_results["user_events"], *lake.silver_results["orders"]]:
        d = result.details
        assert d["bronze_rows"] == d["inserted"] + d["replaced"] + d["duplicates_in_input"] + d["duplicates_in_silver"] + d["quarantined"]
        # Only the rules our rows broke on purpose failed, and none of them is fatal.
        failed = {o["check"] for o in d["outcomes"] if not o["success"]}
        assert result.success and failed <= {"event_time_not_in_future", "page_in_site_map", "amount_matches_items"}
    first = lake.silver_results["user_events"][0]
    assert first.details["duplicates_in_input"] >= 1  # E1's retry
    events_df = spark.read.format("delta").load(lake.settings.lakehouse.table_uri("_ops", "quality_events"))
    ours = events_df.filter(F.col("run_id") == first.run_id).collect()
    by_check = {(r.check, r.column): r for r in ours}
    assert by_check[("bronze_rows_reconcile", None)].success
    for rule, action in (("event_time_not_in_future", "quarantine"), ("page_in_site_map", "warn")):
        assert (by_check[(rule, None)].action, by_check[(rule, None)].success) == (action, False)
    unique = by_check[("expect_compound_columns_to_be_unique", "event_id,event_date")]
    assert unique.success and unique.element_count == first.details["inserted"] + first.details["replaced"]
    assert {r.layer for r in ours} == {"silver"} and all(r.dates == [first.dates[0]] for r in ours)
    quality_dir = Path(lake.settings.lakehouse.root.removeprefix("file://")) / "_quality"
    recorded = json.loads((quality_dir / "silver" / "user_events" / f"{first.run_id}.json").read_text())
    assert recorded["success"] is True and recorded["inserted"] == first.details["inserted"]
    index = (quality_dir / "data_docs" / "index.html").read_text()
    assert "silver.user_events" in index and "gold.conversion_rate_daily" in index and "gold.revenue_daily" in index
    assert first.run_id in index  # the run, by the id its own records carry


def _snapshot(spark: SparkSession, lake: Lake) -> dict[str, list]:
    """Every Silver, quarantine and Gold row (Gold without `updated_at`, which a rebuild renews)."""
    tables = [("silver", "user_events"), ("silver", "orders"), ("silver", "orders_current"),
              ("quarantine", "user_events"), ("quarantine", "orders")]
    tables += [("gold", t) for t in ("daily_active_users", "conversion_rate_daily", "events_per_source_daily", "purchases_per_page_daily",
                                     "revenue_daily", "orders_per_status_daily", "order_failure_rate_daily", "average_order_value_daily")]
    return {f"{layer}.{name}": sorted(lake.table(spark, layer, name).drop("updated_at").collect(), key=repr) for layer, name in tables}


def test_reruns_overlapping_ranges_and_dates_out_of_order_change_nothing(spark: SparkSession, lake: Lake) -> None:
    before = _snapshot(spark, lake)
    day = lake.ingestion_dates[-1]
    for dataset in ("user_events", "orders"):
        # The date again, then the day before: a range over it, run backwards.
        rerun, _ = (run_silver(spark, lake.settings, dataset, d) for d in (day, day - timedelta(days=1)))
        first = lake.silver_results[dataset][-1].details
        assert (rerun.details["inserted"], rerun.details["replaced"], rerun.details["quarantined"]) == (0, 0, first["quarantined"])
        run_gold(spark, lake.settings, dataset, list(reversed(OUR_DATES)))
    assert _snapshot(spark, lake) == before


def test_a_failing_expectation_publishes_nothing_and_names_itself(
    spark: SparkSession, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    silver_path = lake.settings.lakehouse.table_uri("silver", "user_events")
    silver_version = delta_version(spark, silver_path)
    existing = spark.read.format("delta").load(silver_path).limit(1)

    def duplicate_identity(staged_df: DataFrame) -> DataFrame:
        return staged_df.unionByName(existing).unionByName(existing)

    caplog.set_level(logging.ERROR, logger="streamlake.quality")
    with pytest.raises(RunFailedError, match="expect_compound_columns_to_be_unique"):
        run_silver(spark, lake.settings, "user_events", lake.ingestion_dates[-1], stage_hook=duplicate_identity)
    assert delta_version(spark, silver_path) == silver_version
    failed = [r for r in caplog.records if r.getMessage() == "check failed"]
    assert [(r.check, r.column, r.unexpected_count) for r in failed] == [("expect_compound_columns_to_be_unique", "event_id,event_date", 2)]

    gold_paths = [lake.settings.lakehouse.table_uri("gold", name) for name in ("conversion_rate_daily", "daily_active_users")]
    gold_versions = [delta_version(spark, path) for path in gold_paths]

    def impossible_rate(table: str, frame: DataFrame) -> DataFrame:
        return frame.withColumn("conversion_rate", F.lit(1.5)) if table == "conversion_rate_daily" else frame

    with pytest.raises(RunFailedError, match="expect_column_values_to_be_between on conversion_rate"):
        run_gold(spark, lake.settings, "user_events", OUR_DATES, stage_hook=impossible_rate)
    assert [delta_version(spark, path) for path in gold_paths] == gold_versions  # not even the tables that passed
