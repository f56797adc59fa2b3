"""The data-quality suites are built from the contracts and the Gold declarations, and a run's
checks decide what is fatal: critical expectations and `fail` rules are; warnings, `warn` and
`quarantine` rules are recorded and logged, never fatal. Real Great Expectations on real Spark."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from conf.settings import load_settings
from contracts.registry import get_contract
from jobs.batch_run import RunResult
from jobs.quality import WARNING, Expectation, QualityRecorder, RunFailedError, Suite, gold_suite, silver_suite
from pipelines.gold import GOLD_TABLES
from pipelines.silver import IDENTITY
from pipelines.silver_rules import RuleParams

RUN_STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _kinds(suite: Suite) -> set[tuple[str, str | None]]:
    return {(e.type, e.column) for e in suite.expectations}


def test_the_silver_suite_is_the_contract_and_the_identity() -> None:
    suite = silver_suite(get_contract("orders"), IDENTITY["orders"], RuleParams(future_tolerance_s=60), RUN_STARTED)
    assert suite.name == "silver.orders"
    by_kind = {(e.type, e.column): e.kwargs for e in suite.expectations}
    assert by_kind[("expect_column_values_to_be_in_set", "status")]["value_set"] == [
        "created", "paid", "shipped", "delivered", "cancelled", "failed"]
    assert by_kind[("expect_column_values_to_be_between", "amount")] == {"column": "amount", "min_value": 0}
    assert by_kind[("expect_column_values_to_match_regex", "currency")]["regex"] == "^[A-Z]{3}$"
    assert by_kind[("expect_column_values_to_be_between", "event_timestamp")]["max_value"] == datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    assert ("expect_compound_columns_to_be_unique", "order_id,status,event_timestamp,event_date") in by_kind
    assert {c for t, c in by_kind if t == "expect_column_values_to_not_be_null"} == {
        "order_id", "customer_id", "status", "amount", "currency", "items", "event_timestamp"}
    assert all(e.severity == "critical" for e in suite.expectations)


def test_each_gold_suite_follows_its_table_declaration() -> None:
    conversion = next(t for t in GOLD_TABLES["user_events"] if t.name == "conversion_rate_daily")
    assert _kinds(gold_suite(conversion)) >= {
        ("expect_column_values_to_be_unique", "event_date"),
        ("expect_column_values_to_be_between", "conversion_rate"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "dau_count,purchasing_users"),
    }
    revenue = next(t for t in GOLD_TABLES["orders"] if t.name == "revenue_daily")
    assert ("expect_compound_columns_to_be_unique", "event_date,currency") in _kinds(gold_suite(revenue))


def test_only_critical_expectations_and_fail_rules_stop_a_run(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(lakehouse={"root": (tmp_path / "lake").as_uri()})
    df = spark.createDataFrame([("a", "web"), ("b", "tv"), ("b", "web")], "id string, source string")
    quality = QualityRecorder(spark, settings, "silver", RunResult("silver", "run-1", "user_events", [RUN_STARTED.date()]))
    in_set = {"column": "source", "value_set": ["web", "mobile"]}
    quality.validate(Suite("test.warnings", (Expectation("expect_column_values_to_be_in_set", in_set, WARNING),)), df, "t")
    quality.rule("page_in_site_map", "t", "warn", 3)
    quality.rule("event_time_not_in_future", "t", "quarantine", 1)
    quality.rule("schema_version_known", "t", "fail", 0)
    caplog.set_level(logging.WARNING, logger="streamlake.quality")
    quality.raise_if_failed({"dataset": "user_events"})  # nothing fatal: returns
    not_fatal = [(r.check, r.unexpected_count) for r in caplog.records if r.getMessage() == "check failed (not fatal)"]
    assert not_fatal == [("expect_column_values_to_be_in_set", 1), ("page_in_site_map", 3), ("event_time_not_in_future", 1)]

    quality.validate(Suite("test.critical", (Expectation("expect_column_values_to_be_unique", {"column": "id"}),)), df, "t")
    quality.rule("schema_version_known", "t", "fail", 2)
    with pytest.raises(RunFailedError) as failed:
        quality.raise_if_failed({"dataset": "user_events"})
    named = "expect_column_values_to_be_unique on id (2 unexpected); schema_version_known on t (2 unexpected)"
    assert f"2 critical check(s) failed: {named}" in str(failed.value)
    recorded = spark.read.format("delta").load(settings.lakehouse.table_uri("_ops", "quality_events"))
    assert sorted((r.check, r.action, r.success, r.unexpected_count) for r in recorded.collect()) == [
        ("event_time_not_in_future", "quarantine", False, 1),
        ("expect_column_values_to_be_in_set", "warning", False, 1),
        ("expect_column_values_to_be_unique", "critical", False, 2),
        ("page_in_site_map", "warn", False, 3),
        ("schema_version_known", "fail", False, 2),
        ("schema_version_known", "fail", True, 0),
    ]
