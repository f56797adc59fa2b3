"""Gold's daily metric tables on tiny Silver-shaped frames, against answers computed by hand: who is
counted once, which paid change is revenue, where a rate is 0.0 and where it is undefined, and that
an empty Silver gives empty tables of the right schema."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pipelines.gold import (
    GOLD_PARTITION_COLUMNS,
    GOLD_TABLES,
    average_order_value_daily,
    conversion_rate_daily,
    daily_active_users,
    events_per_source_daily,
    order_failure_rate_daily,
    orders_per_status_daily,
    purchases_per_page_daily,
    revenue_daily,
)

UPDATED_AT = datetime(2030, 1, 9, 6, 0)
LOADED_AT = datetime(2030, 1, 9, 5, 0)
DAY_1, DAY_2 = date(2030, 1, 1), date(2030, 1, 2)

MONEY = DecimalType(18, 2)
USER_EVENTS_SCHEMA = StructType([
    StructField("event_id", StringType(), False),
    StructField("user_id", LongType(), False),
    StructField("event_type", StringType(), False),
    StructField("page", StringType(), False),
    StructField("event_timestamp", TimestampType(), False),
    StructField("source", StringType(), False),
    StructField("event_date", DateType(), False),
    StructField("silver_loaded_at", TimestampType(), True),  # metadata: Gold ignores it
])
ORDERS_SCHEMA = StructType([
    StructField("order_id", StringType(), False),
    StructField("customer_id", StringType(), False),
    StructField("status", StringType(), False),
    StructField("amount", MONEY, False),
    StructField("currency", StringType(), False),
    StructField("items", ArrayType(StructType([
        StructField("sku", StringType(), False),
        StructField("quantity", IntegerType(), False),
        StructField("unit_price", MONEY, False),
    ]), containsNull=False), False),
    StructField("event_timestamp", TimestampType(), False),
    StructField("event_date", DateType(), False),
    StructField("kafka_partition", IntegerType(), False),
    StructField("kafka_offset", LongType(), False),
    StructField("silver_loaded_at", TimestampType(), True),  # metadata: Gold ignores it
])

OUTPUT_SCHEMAS = {
    "daily_active_users": "event_date date, dau_count long, updated_at timestamp",
    "conversion_rate_daily": "event_date date, conversion_rate double, total_purchases long, purchasing_users long, "
                             "dau_count long, updated_at timestamp",
    "events_per_source_daily": "event_date date, source string, event_count long, updated_at timestamp",
    "purchases_per_page_daily": "event_date date, page string, purchase_count long, updated_at timestamp",
    "revenue_daily": "event_date date, currency string, revenue decimal(28,2), orders long, updated_at timestamp",
    "orders_per_status_daily": "event_date date, status string, orders long, updated_at timestamp",
    "order_failure_rate_daily": "event_date date, failed_orders long, paid_orders long, failure_rate double, updated_at timestamp",
    "average_order_value_daily": "event_date date, currency string, average_order_value decimal(28,2), orders long, "
                                 "updated_at timestamp",
}
ALL_TABLES = [(dataset, table) for dataset, tables in GOLD_TABLES.items() for table in tables]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def user_events(spark: SparkSession, rows: list[tuple], loaded_at: datetime | None = LOADED_AT) -> DataFrame:
    """Silver user_events from (user_id, event_type, page, source, "YYYY-MM-DDTHH:MM") tuples."""
    return spark.createDataFrame(
        [(f"E-{i}", user_id, event_type, page, _at(at), source, _at(at).date(), loaded_at)
         for i, (user_id, event_type, page, source, at) in enumerate(rows)],
        USER_EVENTS_SCHEMA,
    )


def orders(spark: SparkSession, rows: list[tuple], loaded_at: datetime | None = LOADED_AT) -> DataFrame:
    """Silver orders from (order_id, status, amount, currency, "YYYY-MM-DDTHH:MM", partition, offset) tuples."""
    return spark.createDataFrame(
        [(order_id, f"C-{order_id}", status, Decimal(amount), currency, [("SKU-1", 1, Decimal(amount))], _at(at), _at(at).date(),
          partition, offset, loaded_at)
         for order_id, status, amount, currency, at, partition, offset in rows],
        ORDERS_SCHEMA,
    )


def expected(spark: SparkSession, table: str, rows: list[tuple]) -> DataFrame:
    """The expected Gold frame: `rows` without updated_at, which every row of a run shares."""
    return spark.createDataFrame([(*row, UPDATED_AT) for row in rows], OUTPUT_SCHEMAS[table])


def built(build, silver_df: DataFrame) -> DataFrame:
    return build(silver_df, F.lit(UPDATED_AT))


# Two days of events: on day 1 users 1 and 2 tie (two purchases each, on pages /cart and /shoes,
# which tie too) and user 3 only browses; day 2 has no purchase at all.
MIXED_EVENTS = [
    (1, "login", "/", "web", "2030-01-01T09:00"),
    (1, "purchase", "/cart", "web", "2030-01-01T09:05"),
    (1, "purchase", "/shoes", "mobile", "2030-01-01T12:00"),
    (2, "purchase", "/shoes", "mobile", "2030-01-01T10:01"),
    (2, "purchase", "/cart", "web", "2030-01-01T10:30"),
    (3, "click", "/shoes", "web", "2030-01-01T23:59"),
    (1, "login", "/", "web", "2030-01-02T00:00"),
    (4, "logout", "/", "mobile", "2030-01-02T08:00"),
]

# Three days of order changes: on day 1 several currencies, a repeated paid change and a paid and
# a failed change of one order at the same instant; on day 2 an order paid again (revenue of day 2);
# on day 3 changes with no outcome yet.
MIXED_ORDERS = [
    ("O-1", "created", "10.00", "EUR", "2030-01-01T08:00", 0, 1),
    ("O-1", "paid", "10.00", "EUR", "2030-01-01T08:05", 0, 2),
    ("O-1", "paid", "10.00", "EUR", "2030-01-01T08:05", 1, 7),  # same instant, later partition: not revenue again
    ("O-1", "paid", "10.00", "EUR", "2030-01-01T09:00", 0, 3),  # later the same day: not revenue again
    ("O-2", "paid", "10.01", "EUR", "2030-01-01T11:00", 2, 1),
    ("O-3", "paid", "5.50", "USD", "2030-01-01T12:00", 0, 4),
    ("O-3", "failed", "5.50", "USD", "2030-01-01T12:00", 0, 5),  # paid and failed at the same instant
    ("O-4", "failed", "3.00", "GBP", "2030-01-01T13:00", 1, 1),
    ("O-1", "shipped", "10.00", "EUR", "2030-01-01T14:00", 0, 6),
    ("O-1", "paid", "10.00", "EUR", "2030-01-02T00:10", 0, 8),  # paid again on the next day: that day's revenue
    ("O-5", "created", "7.00", "EUR", "2030-01-03T10:00", 1, 2),
    ("O-6", "cancelled", "8.00", "EUR", "2030-01-03T11:00", 1, 3),
]
DAY_3 = date(2030, 1, 3)


# -- user_events ----------------------------------------------------------------------------------


def test_daily_active_users_counts_each_user_once_per_day(spark: SparkSession) -> None:
    assert_df_equality(
        built(daily_active_users, user_events(spark, MIXED_EVENTS)),
        expected(spark, "daily_active_users", [(DAY_1, 3), (DAY_2, 2)]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_conversion_rate_counts_purchasing_users_once_and_is_zero_on_a_day_without_purchases(spark: SparkSession) -> None:
    # Day 1: users 1 and 2 purchased (four purchases), of 3 active: 2/3. Day 2: nobody purchased.
    assert_df_equality(
        built(conversion_rate_daily, user_events(spark, MIXED_EVENTS)),
        expected(spark, "conversion_rate_daily", [(DAY_1, 2 / 3, 4, 2, 3), (DAY_2, 0.0, 0, 0, 2)]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_events_per_source_counts_every_event(spark: SparkSession) -> None:
    assert_df_equality(
        built(events_per_source_daily, user_events(spark, MIXED_EVENTS)),
        expected(spark, "events_per_source_daily", [(DAY_1, "web", 4), (DAY_1, "mobile", 2), (DAY_2, "web", 1), (DAY_2, "mobile", 1)]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_purchases_per_page_has_only_pages_with_a_purchase(spark: SparkSession) -> None:
    # /cart and /shoes tie on day 1; "/" and day 2 saw no purchase, so they have no rows.
    assert_df_equality(
        built(purchases_per_page_daily, user_events(spark, MIXED_EVENTS)),
        expected(spark, "purchases_per_page_daily", [(DAY_1, "/cart", 2), (DAY_1, "/shoes", 2)]),
        ignore_row_order=True, ignore_nullable=True,
    )


# -- orders ---------------------------------------------------------------------------------------


def test_revenue_counts_one_paid_change_per_order_and_day_per_currency(spark: SparkSession) -> None:
    # Day 1: EUR = O-1 10.00 (once) + O-2 10.01; USD = O-3 5.50; GBP only failed. Day 2: O-1 again.
    assert_df_equality(
        built(revenue_daily, orders(spark, MIXED_ORDERS)),
        expected(spark, "revenue_daily", [
            (DAY_1, "EUR", Decimal("20.01"), 2), (DAY_1, "USD", Decimal("5.50"), 1), (DAY_2, "EUR", Decimal("10.00"), 1),
        ]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_revenue_takes_the_earliest_paid_change_by_time_then_partition_then_offset(spark: SparkSession) -> None:
    # Amounts differ only to show which change was taken; the contract never changes an amount on a repeat.
    changes = [
        ("O-1", "paid", "3.00", "EUR", "2030-01-01T08:06", 0, 0),
        ("O-1", "paid", "2.00", "EUR", "2030-01-01T08:05", 1, 5),
        ("O-1", "paid", "1.00", "EUR", "2030-01-01T08:05", 1, 4),  # earliest: same time and partition, lower offset
        ("O-1", "paid", "4.00", "EUR", "2030-01-01T08:05", 2, 0),
    ]
    assert_df_equality(
        built(revenue_daily, orders(spark, changes)),
        expected(spark, "revenue_daily", [(DAY_1, "EUR", Decimal("1.00"), 1)]),
        ignore_nullable=True,
    )


def test_orders_per_status_counts_each_order_once_per_status(spark: SparkSession) -> None:
    assert_df_equality(
        built(orders_per_status_daily, orders(spark, MIXED_ORDERS)),
        expected(spark, "orders_per_status_daily", [
            (DAY_1, "created", 1), (DAY_1, "paid", 3), (DAY_1, "failed", 2), (DAY_1, "shipped", 1),
            (DAY_2, "paid", 1), (DAY_3, "created", 1), (DAY_3, "cancelled", 1),
        ]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_failure_rate_counts_an_order_paid_and_failed_in_both_and_is_null_without_an_outcome(spark: SparkSession) -> None:
    # Day 1: failed O-3, O-4; paid O-1, O-2, O-3: 2 / (3 + 2). Day 2: only paid. Day 3: no outcome yet.
    assert_df_equality(
        built(order_failure_rate_daily, orders(spark, MIXED_ORDERS)),
        expected(spark, "order_failure_rate_daily", [(DAY_1, 2, 3, 0.4), (DAY_2, 0, 1, 0.0), (DAY_3, 0, 0, None)]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_failure_rate_is_one_on_a_day_with_only_failures(spark: SparkSession) -> None:
    changes = [("O-1", "failed", "1.00", "EUR", "2030-01-01T08:00", 0, 0), ("O-1", "failed", "1.00", "EUR", "2030-01-01T08:01", 0, 1)]
    assert_df_equality(
        built(order_failure_rate_daily, orders(spark, changes)),
        expected(spark, "order_failure_rate_daily", [(DAY_1, 1, 0, 1.0)]),
        ignore_nullable=True,
    )


def test_average_order_value_is_revenue_over_orders_rounded_half_up(spark: SparkSession) -> None:
    # Day 1 EUR: 20.01 / 2 = 10.005 -> 10.01 (half-even would give 10.00). Day 2 EUR: 10.00 / 1.
    assert_df_equality(
        built(average_order_value_daily, orders(spark, MIXED_ORDERS)),
        expected(spark, "average_order_value_daily", [
            (DAY_1, "EUR", Decimal("10.01"), 2), (DAY_1, "USD", Decimal("5.50"), 1), (DAY_2, "EUR", Decimal("10.00"), 1),
        ]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_average_order_value_rounds_down_below_half_a_cent(spark: SparkSession) -> None:
    changes = [(f"O-{i}", "paid", amount, "JPY", "2030-01-01T08:00", 0, i) for i, amount in enumerate(["10.00", "10.00", "10.01"])]
    assert_df_equality(  # 30.01 / 3 = 10.00333...
        built(average_order_value_daily, orders(spark, changes)),
        expected(spark, "average_order_value_daily", [(DAY_1, "JPY", Decimal("10.00"), 3)]),
        ignore_nullable=True,
    )


def test_average_order_value_agrees_with_revenue_and_paid_orders(spark: SparkSession) -> None:
    orders_df = orders(spark, MIXED_ORDERS)
    revenue_df = built(revenue_daily, orders_df)
    average_df = built(average_order_value_daily, orders_df)
    assert_df_equality(
        average_df.select("event_date", "currency", "orders"), revenue_df.select("event_date", "currency", "orders"),
        ignore_row_order=True,
    )
    paid_per_day_df = revenue_df.groupBy("event_date").agg(F.sum("orders").alias("paid_orders"))
    failure_df = built(order_failure_rate_daily, orders_df).filter(F.col("paid_orders") > 0)
    assert_df_equality(failure_df.select("event_date", "paid_orders"), paid_per_day_df, ignore_row_order=True, ignore_nullable=True)


# -- every table ----------------------------------------------------------------------------------


def _silver(spark: SparkSession, dataset: str, loaded_at: datetime | None = LOADED_AT) -> DataFrame:
    return user_events(spark, MIXED_EVENTS, loaded_at) if dataset == "user_events" else orders(spark, MIXED_ORDERS, loaded_at)


@pytest.mark.parametrize(("dataset", "table"), ALL_TABLES, ids=[t.name for _, t in ALL_TABLES])
def test_a_null_metadata_column_changes_nothing(spark: SparkSession, dataset: str, table) -> None:
    assert_df_equality(
        built(table.build, _silver(spark, dataset, loaded_at=None)), built(table.build, _silver(spark, dataset)), ignore_row_order=True,
    )


@pytest.mark.parametrize(("dataset", "table"), ALL_TABLES, ids=[t.name for _, t in ALL_TABLES])
def test_an_empty_silver_gives_an_empty_table_of_the_right_schema(spark: SparkSession, dataset: str, table) -> None:
    empty_df = user_events(spark, []) if dataset == "user_events" else orders(spark, [])
    assert_df_equality(built(table.build, empty_df), expected(spark, table.name, []), ignore_nullable=True)


@pytest.mark.parametrize(("dataset", "table"), ALL_TABLES, ids=[t.name for _, t in ALL_TABLES])
def test_keys_are_unique_and_columns_run_from_event_date_to_updated_at(spark: SparkSession, dataset: str, table) -> None:
    gold_df = built(table.build, _silver(spark, dataset))
    assert gold_df.columns[0] == "event_date" == table.key_columns[0] == GOLD_PARTITION_COLUMNS[0]
    assert gold_df.columns[-1] == "updated_at"
    assert set(table.key_columns + table.count_columns + table.rate_columns) <= set(gold_df.columns)
    assert gold_df.count() > 0
    assert gold_df.groupBy(*table.key_columns).count().filter(F.col("count") > 1).count() == 0


@pytest.mark.parametrize(("dataset", "table"), ALL_TABLES, ids=[t.name for _, t in ALL_TABLES])
def test_the_registered_invariants_hold_on_the_mixed_frames(spark: SparkSession, dataset: str, table) -> None:
    gold_df = built(table.build, _silver(spark, dataset))
    violations = [F.col(c) < 0 for c in table.count_columns]
    violations += [(F.col(c) < 0) | (F.col(c) > 1) for c in table.rate_columns]
    violations += [F.col(a) < F.col(b) for a, b in table.at_least]
    for violation in violations:
        assert gold_df.filter(violation).count() == 0, f"{table.name}: rows where {violation}"


def test_the_registry_names_every_table_once_with_its_expected_schema() -> None:
    names = [table.name for _, table in ALL_TABLES]
    assert sorted(names) == sorted(OUTPUT_SCHEMAS)
    assert all(table.description for _, table in ALL_TABLES)
