"""Silver's pure transformations on tiny Silver-shaped frames, against answers computed by hand: the
Silver row and its event date, which rule each row breaks (at the edges of each tolerance), what a
run does with every row it reads, what it stages and quarantines, and each order's latest state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from contracts.registry import get_contract
from pipelines.bronze import KAFKA_SOURCE_SCHEMA, to_bronze_rows, with_verdict
from pipelines.silver import (
    IDENTITY,
    SilverAction,
    filter_latest_order_states,
    filter_staged_rows,
    plan_silver_actions,
    quarantine_rows,
    silver_columns,
    state_order,
    to_silver_rows,
)
from pipelines.silver_rules import (
    FAIL,
    QUARANTINE,
    SILVER_RULES,
    VIOLATIONS,
    WARN,
    RowRule,
    RuleParams,
    breaks,
    count_violations,
    with_rule_violations,
)

RUN = "silver-run-1"
PARAMS = RuleParams(future_tolerance_s=300, site_map=("/", "/product/*"))
DAY_1, DAY_2 = date(2030, 1, 1), date(2030, 1, 2)
INSERT, REPLACE, QUARANTINED = SilverAction.INSERT, SilverAction.REPLACE, SilverAction.QUARANTINED
IN_SILVER, IN_INPUT = SilverAction.DUPLICATE_IN_SILVER, SilverAction.DUPLICATE_IN_INPUT

# Silver's schemas written out, so that `to_silver_rows` is checked against them rather than against itself.
PAYLOAD_DDL = {
    "user_events": "event_id string, user_id long, event_type string, page string, event_timestamp timestamp, source string",
    "orders": "order_id string, customer_id string, status string, amount decimal(18,2), currency string, "
              "items array<struct<sku:string,quantity:int,unit_price:decimal(18,2)>>, event_timestamp timestamp",
}
ENVELOPE_AND_COORDINATES_DDL = (
    "ingestion_id string, received_at timestamp, dataset string, schema_version string, producer string, "
    "kafka_topic string, kafka_partition int, kafka_offset long, kafka_timestamp timestamp, ingestion_date date"
)
SILVER_DDL = {ds: f"{ddl}, {ENVELOPE_AND_COORDINATES_DDL}, silver_run_id string, event_date date" for ds, ddl in PAYLOAD_DDL.items()}
QUARANTINE_DDL = {
    ds: f"{ddl}, {ENVELOPE_AND_COORDINATES_DDL}, event_date date, rule string, reason string, quarantine_run_id string"
    for ds, ddl in PAYLOAD_DDL.items()
}
JUDGED_DDL = "{key} string, rule_violations array<struct<rule:string,action:string,reason:string>>"
REASONS = {rule.name: rule.reason for rules in SILVER_RULES.values() for rule in rules}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


RECEIVED = at("2030-01-01T12:00:00")
_COMMON = {
    "ingestion_id": "I-1", "received_at": RECEIVED, "schema_version": "v1", "producer": "tests",
    "kafka_partition": 0, "kafka_offset": 0, "kafka_timestamp": RECEIVED, "ingestion_date": DAY_1, "silver_run_id": RUN,
}
DEFAULTS = {
    "user_events": {**_COMMON, "event_id": "E-1", "user_id": 1, "event_type": "click", "page": "/", "event_timestamp": RECEIVED,
                    "source": "web", "dataset": "user_events", "kafka_topic": "streamlake.user_events.raw"},
    "orders": {**_COMMON, "order_id": "O-1", "customer_id": "C-1", "status": "paid", "amount": Decimal("12.00"), "currency": "EUR",
               "items": [("S-1", 2, Decimal("6.00"))], "event_timestamp": RECEIVED, "dataset": "orders",
               "kafka_topic": "streamlake.orders.raw"},
}
BRONZE_ONLY = {"kafka_key": "K-1", "raw_value": "{}", "kafka_headers": [("streamlake.producer", b"tests")], "bronze_batch_id": 3,
               "bronze_replay_id": None}


def row(dataset: str, **changes) -> dict:
    """A Silver row of `dataset` with `changes`; its event date is its event's UTC date unless given."""
    values = {**DEFAULTS[dataset], **changes}
    if "event_date" not in changes:
        values["event_date"] = values["event_timestamp"].date()
    return values


def silver(spark: SparkSession, dataset: str, rows: list[dict]) -> DataFrame:
    columns = silver_columns(get_contract(dataset))
    return spark.createDataFrame([tuple(r[c] for c in columns) for r in rows], SILVER_DDL[dataset])


def judged(spark: SparkSession, key: str, rows: list[tuple]) -> DataFrame:
    """Expected (key, rule_violations) from (key, [(rule, action), ...]); each rule's reason is its declared one."""
    return spark.createDataFrame([(k, [(r, a, REASONS[r]) for r, a in broken]) for k, broken in rows], JUDGED_DDL.format(key=key))


def bronze_schema(spark: SparkSession, dataset: str) -> StructType:
    contract = get_contract(dataset)
    return to_bronze_rows(with_verdict(spark.createDataFrame([], KAFKA_SOURCE_SCHEMA), contract, 1), contract, 0).schema


# -- the Silver row -------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["user_events", "orders"])
def test_to_silver_rows_gives_silvers_columns_and_dates_each_event_by_its_own_utc_timestamp(spark: SparkSession, dataset: str) -> None:
    # Both arrived on Jan 5th (a late pair); each lands on its own event's UTC date, a second apart.
    late = {"kafka_timestamp": at("2030-01-05T08:00:00"), "ingestion_date": date(2030, 1, 5), "silver_run_id": "run-9"}
    rows = [
        row(dataset, event_timestamp=at("2030-01-01T23:59:59"), kafka_offset=0, event_date=DAY_1, **late),
        row(dataset, event_timestamp=at("2030-01-02T00:00:00"), kafka_offset=1, event_date=DAY_2, **late),
    ]
    schema = bronze_schema(spark, dataset)
    bronze_df = spark.createDataFrame([tuple({**r, **BRONZE_ONLY}[c] for c in schema.fieldNames()) for r in rows], schema)

    silver_df = to_silver_rows(bronze_df, get_contract(dataset), "run-9")
    assert silver_df.columns == silver_columns(get_contract(dataset))
    assert_df_equality(silver_df, silver(spark, dataset, rows), ignore_row_order=True, ignore_nullable=True)


# -- the row rules --------------------------------------------------------------------------------


def test_user_event_rules_allow_the_clock_skew_warn_off_the_site_map_and_judge_a_null_as_broken(spark: SparkSession) -> None:
    skew_ok, skew_over = RECEIVED + timedelta(seconds=300), RECEIVED + timedelta(seconds=301)
    rows = [
        row("user_events", event_id="E-1", page="/", event_timestamp=skew_ok),
        row("user_events", event_id="E-2", page="/product/42", event_timestamp=skew_over),
        row("user_events", event_id="E-3", page="/products"),  # "/product/*" covers "/product/..." only
        row("user_events", event_id="E-4", page="/cart"),
        row("user_events", event_id="E-5", schema_version="v2"),
        row("user_events", event_id="E-6", schema_version="v2", event_timestamp=skew_over, page="/cart"),
        row("user_events", event_id="E-7", received_at=None),
        row("user_events", event_id="E-8", page=None),
    ]
    silver_df = silver(spark, "user_events", rows)

    judged_df = with_rule_violations(silver_df, SILVER_RULES["user_events"], PARAMS)
    assert judged_df.columns == [*silver_df.columns, VIOLATIONS]
    future, page, known = ("event_time_not_in_future", QUARANTINE), ("page_in_site_map", WARN), ("schema_version_known", FAIL)
    assert_df_equality(
        judged_df.select("event_id", VIOLATIONS),
        judged(spark, "event_id", [
            ("E-1", []), ("E-2", [future]), ("E-3", [page]), ("E-4", [page]), ("E-5", [known]),
            ("E-6", [known, future, page]), ("E-7", [future]), ("E-8", [page]),
        ]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_order_rules_allow_a_cent_between_amount_and_items(spark: SparkSession) -> None:
    # The items of every row but O-6 sum to 2 * 6.00 = 12.00; O-6's to 3 * 0.10 + 1 * 19.99 = 20.29.
    rows = [
        row("orders", order_id="O-1", amount=Decimal("12.00")),
        row("orders", order_id="O-2", amount=Decimal("12.01")),
        row("orders", order_id="O-3", amount=Decimal("11.99")),
        row("orders", order_id="O-4", amount=Decimal("12.02")),
        row("orders", order_id="O-5", amount=Decimal("11.98")),
        row("orders", order_id="O-6", amount=Decimal("20.29"), items=[("S-1", 3, Decimal("0.10")), ("S-2", 1, Decimal("19.99"))]),
        row("orders", order_id="O-7", schema_version="v2", event_timestamp=RECEIVED + timedelta(seconds=301), amount=Decimal("12.02")),
        row("orders", order_id="O-8", amount=None),
    ]
    amount, future, known = ("amount_matches_items", QUARANTINE), ("event_time_not_in_future", QUARANTINE), ("schema_version_known", FAIL)
    assert_df_equality(
        with_rule_violations(silver(spark, "orders", rows), SILVER_RULES["orders"], PARAMS).select("order_id", VIOLATIONS),
        judged(spark, "order_id", [
            ("O-1", []), ("O-2", []), ("O-3", []), ("O-4", [amount]), ("O-5", [amount]), ("O-6", []),
            ("O-7", [known, future, amount]), ("O-8", [amount]),
        ]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_rules_given_as_sql_or_as_a_column_builder_judge_alike_and_no_rules_break_nothing(spark: SparkSession) -> None:
    rules = (
        RowRule("user_is_positive", WARN, "user_id > 0", "user ids start at 1"),
        RowRule("source_is_web", QUARANTINE, lambda params: F.col("source") == F.lit("web"), "only the web is trusted"),
        RowRule("user_within_tolerance", FAIL, lambda params: F.col("user_id") <= params.future_tolerance_s, "user id above 300"),
    )
    rows = [("E-1", 1, "web"), ("E-2", 0, "mobile"), ("E-3", 301, "web"), ("E-4", None, "web")]
    silver_df = silver(spark, "user_events", [row("user_events", event_id=e, user_id=u, source=s) for e, u, s in rows])
    positive = ("user_is_positive", WARN, "user ids start at 1")
    web = ("source_is_web", QUARANTINE, "only the web is trusted")
    tolerance = ("user_within_tolerance", FAIL, "user id above 300")

    assert_df_equality(
        with_rule_violations(silver_df, rules, PARAMS).select("event_id", VIOLATIONS),
        spark.createDataFrame([("E-1", []), ("E-2", [positive, web]), ("E-3", [tolerance]), ("E-4", [positive, tolerance])],
                              JUDGED_DDL.format(key="event_id")),
        ignore_row_order=True, ignore_nullable=True,
    )
    assert_df_equality(
        with_rule_violations(silver_df, (), PARAMS).select("event_id", VIOLATIONS),
        judged(spark, "event_id", [("E-1", []), ("E-2", []), ("E-3", []), ("E-4", [])]),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_breaks_and_violation_counts_see_only_the_rules_broken(spark: SparkSession) -> None:
    over = RECEIVED + timedelta(seconds=301)
    rows = [row("user_events", event_id="E-1"), row("user_events", event_id="E-2", page="/cart"),
            row("user_events", event_id="E-3", page="/cart", event_timestamp=over), row("user_events", event_id="E-4", page="/cart")]
    judged_df = with_rule_violations(silver(spark, "user_events", rows), SILVER_RULES["user_events"], PARAMS)

    assert_df_equality(
        judged_df.select("event_id", breaks(WARN).alias("is_warned"), breaks(QUARANTINE).alias("is_quarantined"),
                         breaks(FAIL).alias("is_failed")),
        spark.createDataFrame(
            [("E-1", False, False, False), ("E-2", True, False, False), ("E-3", True, True, False), ("E-4", True, False, False)],
            "event_id string, is_warned boolean, is_quarantined boolean, is_failed boolean",
        ),
        ignore_row_order=True, ignore_nullable=True,
    )
    counts_ddl = "rule string, action string, rows long"
    assert_df_equality(  # nobody broke schema_version_known: it has no row
        count_violations(judged_df),
        spark.createDataFrame([("page_in_site_map", WARN, 3), ("event_time_not_in_future", QUARANTINE, 1)], counts_ddl),
        ignore_row_order=True, ignore_nullable=True,
    )
    assert_df_equality(count_violations(judged_df.filter(F.col("event_id") == "E-1")), spark.createDataFrame([], counts_ddl),
                       ignore_nullable=True)


# -- what a run does with each row ----------------------------------------------------------------

# (event_id, kafka_partition, kafka_offset, event date, breaks the future rule, the action expected).
USER_EVENT_CASES = [
    ("A", 0, 5, DAY_1, False, INSERT),
    ("A", 0, 7, DAY_1, False, IN_INPUT),
    ("B", 1, 2, DAY_1, False, IN_INPUT),  # partition comes first: 0/9 is the earlier copy
    ("B", 0, 9, DAY_1, False, INSERT),
    ("C", 0, 4, DAY_1, False, REPLACE),  # Silver holds 0/8
    ("D", 0, 4, DAY_1, False, IN_SILVER),  # Silver holds this very copy
    ("E", 0, 6, DAY_1, False, IN_SILVER),  # Silver holds 0/2
    ("F", 0, 1, DAY_1, True, QUARANTINED),  # no stand-in for the good copy, though earlier
    ("F", 0, 3, DAY_1, False, INSERT),
    ("G", 0, 10, DAY_1, False, INSERT),  # one event id on two dates: two identities
    ("G", 0, 11, DAY_2, False, INSERT),
    ("H", 0, 12, DAY_1, False, INSERT),  # Silver holds H on day 2 only
    ("I", 0, 50, DAY_1, False, REPLACE),  # Silver holds 1/0
    ("J", 0, 5, DAY_1, False, IN_SILVER),  # Silver holds 0/1; the later copy is still a duplicate in the input
    ("J", 0, 6, DAY_1, False, IN_INPUT),
    ("K", 0, 13, DAY_1, True, QUARANTINED),
    ("K", 0, 14, DAY_1, True, QUARANTINED),
]
ORDERS_HELD_DDL = "order_id string, status string, event_timestamp timestamp, event_date date, kafka_partition int, kafka_offset long"
USER_EVENTS_HELD = [("C", DAY_1, 0, 8), ("D", DAY_1, 0, 4), ("E", DAY_1, 0, 2), ("H", DAY_2, 0, 1), ("I", DAY_1, 1, 0),
                    ("J", DAY_1, 0, 1), ("L", DAY_1, 0, 0)]


def user_event_case(event_id: str, partition: int, offset: int, day: date, in_future: bool) -> dict:
    # A copy quarantined for clock skew was received an hour before the event it carries.
    event_at = datetime.combine(day, RECEIVED.timetz())
    return row("user_events", event_id=event_id, kafka_partition=partition, kafka_offset=offset, event_timestamp=event_at,
               received_at=event_at - timedelta(hours=1 if in_future else 0))


def planned_user_events(spark: SparkSession) -> DataFrame:
    judged_df = with_rule_violations(
        silver(spark, "user_events", [user_event_case(*case[:5]) for case in USER_EVENT_CASES]), SILVER_RULES["user_events"], PARAMS,
    )
    held_df = spark.createDataFrame(USER_EVENTS_HELD, "event_id string, event_date date, kafka_partition int, kafka_offset long")
    return plan_silver_actions(judged_df, held_df, IDENTITY["user_events"])


def test_plan_gives_each_user_event_one_action_keeping_the_earliest_good_copy_per_event_date(spark: SparkSession) -> None:
    planned_df = planned_user_events(spark)
    assert sorted(planned_df.columns) == sorted([*silver_columns(get_contract("user_events")), VIOLATIONS, "silver_action"])
    assert planned_df.count() == len(USER_EVENT_CASES)
    assert_df_equality(
        planned_df.select("event_id", "kafka_partition", "kafka_offset", "event_date", "silver_action"),
        spark.createDataFrame([(e, p, o, d, action) for e, p, o, d, _, action in USER_EVENT_CASES],
                              "event_id string, kafka_partition int, kafka_offset long, event_date date, silver_action string"),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_plan_knows_an_order_change_by_order_status_and_time(spark: SparkSession) -> None:
    # (order_id, status, event time, partition, offset, the action expected)
    cases = [
        ("O-1", "paid", "2030-01-01T08:00:00", 0, 1, INSERT),
        ("O-1", "paid", "2030-01-01T08:00:00", 0, 2, IN_INPUT),
        ("O-1", "shipped", "2030-01-01T09:00:00", 0, 3, INSERT),
        ("O-1", "paid", "2030-01-01T10:00:00", 0, 4, INSERT),  # paid again later: another change
        ("O-2", "paid", "2030-01-01T08:00:00", 1, 0, REPLACE),  # Silver holds 1/5
        ("O-2", "shipped", "2030-01-01T09:00:00", 1, 1, INSERT),
    ]
    rows = [row("orders", order_id=o, status=s, event_timestamp=at(t), received_at=at(t), kafka_partition=p, kafka_offset=n)
            for o, s, t, p, n, _ in cases]
    judged_df = with_rule_violations(silver(spark, "orders", rows), SILVER_RULES["orders"], PARAMS)
    held_df = spark.createDataFrame([("O-2", "paid", at("2030-01-01T08:00:00"), DAY_1, 1, 5)], ORDERS_HELD_DDL)

    assert_df_equality(
        plan_silver_actions(judged_df, held_df, IDENTITY["orders"]).select("order_id", "status", "kafka_offset", "silver_action"),
        spark.createDataFrame([(o, s, n, action) for o, s, _, _, n, action in cases],
                              "order_id string, status string, kafka_offset long, silver_action string"),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_staged_silver_rows_are_the_inserts_and_replacements_in_silvers_columns(spark: SparkSession) -> None:
    written = [user_event_case(*case[:5]) for case in USER_EVENT_CASES if case[5] in (INSERT, REPLACE)]
    assert_df_equality(
        filter_staged_rows(planned_user_events(spark), get_contract("user_events")), silver(spark, "user_events", written),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_quarantine_rows_have_one_row_per_quarantine_rule_broken_and_none_for_warn_or_fail(spark: SparkSession) -> None:
    rules = (*SILVER_RULES["orders"], RowRule("currency_is_eur", WARN, "currency = 'EUR'", "a currency other than the euro"))
    over = RECEIVED + timedelta(seconds=301)
    rows = [
        row("orders", order_id="O-1", currency="USD"),  # warned only: to Silver
        row("orders", order_id="O-2", schema_version="v2", event_timestamp=over, amount=Decimal("11.98"), currency="USD"),
        row("orders", order_id="O-3", amount=Decimal("12.02")),
        row("orders", order_id="O-4", schema_version="v2"),  # fails the run, but is not quarantined
    ]
    judged_df = with_rule_violations(silver(spark, "orders", rows), rules, PARAMS)
    planned_df = plan_silver_actions(judged_df, spark.createDataFrame([], ORDERS_HELD_DDL), IDENTITY["orders"])
    columns = [c for c in silver_columns(get_contract("orders")) if c != "silver_run_id"]
    expected = [(rows[1], "event_time_not_in_future"), (rows[1], "amount_matches_items"), (rows[2], "amount_matches_items")]

    quarantine_df = quarantine_rows(planned_df, get_contract("orders"))
    assert quarantine_df.columns == [*columns, "rule", "reason", "quarantine_run_id"]
    assert_df_equality(
        quarantine_df,
        spark.createDataFrame([(*(r[c] for c in columns), rule, REASONS[rule], RUN) for r, rule in expected], QUARANTINE_DDL["orders"]),
        ignore_row_order=True, ignore_nullable=True,
    )


# -- orders' current state ------------------------------------------------------------------------


def test_state_order_is_event_time_then_partition_then_offset(spark: SparkSession) -> None:
    ddl = "event_timestamp timestamp, kafka_partition int, kafka_offset long"
    held_ddl = "held_event_timestamp timestamp, held_kafka_partition int, held_kafka_offset long"
    t8, t9 = at("2030-01-01T08:00:00"), at("2030-01-01T09:00:00")
    pairs = [
        ((t9, 0, 1), (t8, 0, 7), True),  # later in time, though written first
        ((t8, 1, 0), (t8, 0, 9), True),  # same time: the higher partition
        ((t8, 0, 3), (t8, 0, 4), False),  # same time and partition: the lower offset is earlier
        ((t8, 0, 4), (t8, 0, 4), False),
    ]
    states_df = spark.createDataFrame([(*new, *held) for new, held, _ in pairs], f"{ddl}, {held_ddl}")
    assert_df_equality(
        states_df.select("event_timestamp", "kafka_partition", "kafka_offset", (state_order() > state_order("held_")).alias("is_later")),
        spark.createDataFrame([(*new, is_later) for new, _, is_later in pairs], f"{ddl}, is_later boolean"),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_latest_order_states_take_the_latest_event_time_then_partition_then_offset(spark: SparkSession) -> None:
    changes = [
        row("orders", order_id="O-1", status="paid", event_timestamp=at("2030-01-01T08:00:00"), kafka_offset=5),
        row("orders", order_id="O-1", status="shipped", event_timestamp=at("2030-01-01T09:00:00"), kafka_offset=3),  # arrived first
        row("orders", order_id="O-2", status="failed", event_timestamp=at("2030-01-01T08:00:00"), kafka_offset=4),
        row("orders", order_id="O-2", status="paid", event_timestamp=at("2030-01-01T08:00:00"), kafka_offset=6),
        row("orders", order_id="O-3", status="paid", event_timestamp=at("2030-01-01T08:00:00"), kafka_partition=0, kafka_offset=9),
        row("orders", order_id="O-3", status="cancelled", event_timestamp=at("2030-01-01T08:00:00"), kafka_partition=1, kafka_offset=2),
        row("orders", order_id="O-4", status="created", event_timestamp=at("2030-01-02T00:00:00"), kafka_offset=1),
    ]
    assert_df_equality(
        filter_latest_order_states(silver(spark, "orders", changes)),
        silver(spark, "orders", [changes[1], changes[3], changes[5], changes[6]]),
        ignore_row_order=True, ignore_nullable=True,
    )
