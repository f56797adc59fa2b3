"""Data quality of the batch layers: Great Expectations suites built from the contracts and the
rules, and the record every run leaves of its checks.

Suites are built in code, never kept as JSON: Silver's from the contract (`contracts.constraints`:
required fields, closed vocabularies, bounds, patterns) and the identity; Gold's from each table's
declaration (`pipelines.gold.GoldTable`: keys, counts, rates, pairs). An expectation is `critical`
(a failure publishes nothing) or `warning` (logged and recorded, not fatal).

Every run, passed or failed, leaves:
    <lakehouse>/_quality/<layer>/<dataset>/<run_id>.json   the run's result and every check
    <lakehouse>/_ops/quality_events                          one row per check (Delta)
    <lakehouse>/_quality/data_docs/index.html                Great Expectations' Data Docs
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from conf.settings import Settings
from contracts.constraints import field_constraints
from contracts.registry import DatasetContract
from jobs.batch_run import RunResult, write_result
from jobs.lakehouse_io import append_delta_idempotent, copy_local_tree, delta_version
from jobs.ops_tables import QUALITY_EVENTS, ops_table_uri, record_run
from pipelines.gold import GoldTable
from pipelines.silver_rules import FAIL, RuleParams

log = logging.getLogger("streamlake.quality")

CRITICAL, WARNING = "critical", "warning"
# Event times before this are not real events of this platform: a unit or parsing mistake. Bounds
# are timezone-aware: GE would read a naive one in the process's zone, not Spark's UTC.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)

QUALITY_EVENTS_SCHEMA = StructType([
    StructField("run_id", StringType(), False),
    StructField("layer", StringType(), False),
    StructField("dataset", StringType(), False),
    StructField("dates", ArrayType(DateType(), False), False),
    StructField("table", StringType(), False),
    StructField("check", StringType(), False),  # a rule's name, an expectation's type, or `bronze_rows_reconcile`
    StructField("kind", StringType(), False),  # rule | expectation | reconciliation
    StructField("column", StringType(), True),
    StructField("action", StringType(), False),  # warn | quarantine | fail (rules); critical | warning (expectations)
    StructField("success", BooleanType(), False),
    StructField("unexpected_count", LongType(), True),
    StructField("element_count", LongType(), True),
    StructField("recorded_at", TimestampType(), False),
])


class RunFailedError(RuntimeError):
    """A batch run's audit failed: nothing was published; the message names each failed check."""


@dataclass(frozen=True)
class Expectation:
    """One expectation, independent of Great Expectations' classes: its type (snake case, as GE
    names it), its arguments and its severity."""

    type: str
    kwargs: dict[str, Any]
    severity: str = CRITICAL

    @property
    def column(self) -> str | None:
        if "column" in self.kwargs:
            return self.kwargs["column"]
        if "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        if "column_A" in self.kwargs:
            return f"{self.kwargs['column_A']},{self.kwargs['column_B']}"
        return None


@dataclass(frozen=True)
class Suite:
    name: str
    expectations: tuple[Expectation, ...]


def silver_suite(contract: DatasetContract, identity: tuple[str, ...], params: RuleParams, run_started: datetime) -> Suite:
    """Silver's checks on the rows a run stages: the contract's promises, and the identity not null
    and unique (within the staged rows; the MERGE keeps it unique within each event date)."""
    expectations: list[Expectation] = []
    for constraint in field_constraints(contract.model):
        column = constraint.name
        if constraint.required:
            expectations.append(Expectation("expect_column_values_to_not_be_null", {"column": column}))
        if constraint.allowed is not None:
            expectations.append(Expectation("expect_column_values_to_be_in_set", {"column": column, "value_set": list(constraint.allowed)}))
        if constraint.minimum is not None or constraint.maximum is not None:
            bounds = {"min_value": constraint.minimum, "max_value": constraint.maximum}
            expectations.append(Expectation("expect_column_values_to_be_between",
                                            {"column": column, **{k: v for k, v in bounds.items() if v is not None}}))
        if constraint.pattern is not None:
            expectations.append(Expectation("expect_column_values_to_match_regex", {"column": column, "regex": constraint.pattern}))
        if constraint.is_timestamp:
            latest = run_started + timedelta(seconds=params.future_tolerance_s)
            expectations.append(Expectation("expect_column_values_to_be_between",
                                            {"column": column, "min_value": EARLIEST_EVENT_TIME, "max_value": latest}))
    for column in identity:
        if not any(e.type == "expect_column_values_to_not_be_null" and e.column == column for e in expectations):
            expectations.append(Expectation("expect_column_values_to_not_be_null", {"column": column}))
    expectations.append(_unique([*identity, "event_date"]))
    return Suite(f"silver.{contract.name}", tuple(expectations))


def gold_suite(table: GoldTable) -> Suite:
    """A Gold table's checks: its key not null and unique per date, counts >= 0, rates in [0, 1],
    and its declared pairs (e.g. `dau_count >= purchasing_users`)."""
    expectations = [Expectation("expect_column_values_to_not_be_null", {"column": column}) for column in table.key_columns]
    expectations.append(_unique(list(table.key_columns)))
    expectations += [Expectation("expect_column_values_to_be_between", {"column": c, "min_value": 0}) for c in table.count_columns]
    expectations += [Expectation("expect_column_values_to_be_between", {"column": c, "min_value": 0, "max_value": 1})
                     for c in table.rate_columns]
    expectations += [Expectation("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": a, "column_B": b, "or_equal": True})
                     for a, b in table.at_least]
    return Suite(f"gold.{table.name}", tuple(expectations))


def _unique(columns: list[str]) -> Expectation:
    if len(columns) == 1:
        return Expectation("expect_column_values_to_be_unique", {"column": columns[0]})
    return Expectation("expect_compound_columns_to_be_unique", {"column_list": columns})


@dataclass
class CheckOutcome:
    table: str
    check: str
    kind: str
    action: str
    success: bool
    column: str | None = None
    unexpected_count: int | None = None
    element_count: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def fatal(self) -> bool:
        return not self.success and self.action in (CRITICAL, FAIL)


class QualityRecorder:
    """Collects one run's checks, tells whether it may publish, and records them all at the end."""

    def __init__(self, spark: SparkSession, settings: Settings, layer: str, result: RunResult) -> None:
        self.spark = spark
        self.settings = settings
        self.layer = layer
        self.result = result
        self.outcomes: list[CheckOutcome] = []

    # -- checks
    def check(self, name: str, table: str, *, success: bool, unexpected: int, details: dict[str, Any]) -> None:
        """A check the job computes itself (the reconciliation): always critical."""
        self.outcomes.append(CheckOutcome(table, name, "reconciliation", CRITICAL, success,
                                          unexpected_count=unexpected, details=details))

    def rule(self, name: str, table: str, action: str, violations: int) -> None:
        """A row rule's count: it fails when any row broke it, and only a `fail` rule's failure is fatal."""
        self.outcomes.append(CheckOutcome(table, name, "rule", action, violations == 0, unexpected_count=violations))

    def validate(self, suite: Suite, df: DataFrame, table: str) -> None:
        """Validate `df` (the frame the run will write) with `suite` through Great Expectations."""
        from jobs import gx_runner  # Great Expectations takes seconds to import; only the batch jobs need it

        results_dir, docs_dir = _local_quality_dir(self.settings, "ge_results"), _local_quality_dir(self.settings, "data_docs")
        for expectation, outcome in gx_runner.validate(self.spark, suite, df, self.result.run_id, results_dir, docs_dir):
            self.outcomes.append(CheckOutcome(
                table, expectation.type, "expectation", expectation.severity, outcome["success"], column=expectation.column,
                unexpected_count=outcome.get("unexpected_count"), element_count=outcome.get("element_count"),
            ))

    # -- decisions and records
    @property
    def failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.fatal]

    def raise_if_failed(self, context: dict[str, Any]) -> None:
        """Record the run and raise RunFailedError when a critical check failed; else return."""
        failures = self.failures
        for outcome in self.outcomes:
            if not outcome.success and not outcome.fatal:
                log.warning("check failed (not fatal)", extra={**context, **_outcome_fields(outcome)})
        if not failures:
            return
        for outcome in failures:
            log.error("check failed", extra={**context, **_outcome_fields(outcome)})
        self.result.success = False
        self._record()
        named = "; ".join(f"{o.check} on {o.column or o.table} ({o.unexpected_count} unexpected)" for o in failures)
        raise RunFailedError(f"{self.layer} run {self.result.run_id} published nothing: {len(failures)} critical check(s) failed: {named}")

    def publish_succeeded(self) -> None:
        self.result.success = True
        self._record()

    def _record(self) -> None:
        passed = sum(o.success for o in self.outcomes)
        self.result.details["checks"] = {"passed": passed, "failed": len(self.outcomes) - passed}
        self.result.details["outcomes"] = [_outcome_fields(o) for o in self.outcomes]
        self.result.details["duration_s"] = round((datetime.now(UTC) - self.result.started_at).total_seconds(), 1)
        lake = self.settings.lakehouse
        write_result(self.spark, f"{lake.root}/_quality/{self.layer}/{self.result.dataset}/{self.result.run_id}.json", self.result)
        self._append_events()
        record_run(self.spark, self.settings, self.result)
        if not _is_local(self.settings.lakehouse.root):
            # Data Docs were rendered locally with each validation; the lakehouse keeps a copy.
            root = self.settings.lakehouse.root
            copy_local_tree(self.spark, _local_quality_dir(self.settings, "data_docs"), f"{root}/_quality/data_docs")

    def _append_events(self) -> None:
        recorded_at = datetime.now(UTC).replace(tzinfo=None)
        rows = [
            (self.result.run_id, self.layer, self.result.dataset, list(self.result.dates), o.table, o.check, o.kind, o.column,
             o.action, o.success, o.unexpected_count, o.element_count, recorded_at)
            for o in self.outcomes
        ]
        path = ops_table_uri(self.settings, QUALITY_EVENTS)
        # Once per run id: a retried record does not add the same rows twice.
        append_delta_idempotent(self.spark.createDataFrame(rows, QUALITY_EVENTS_SCHEMA), path, self.result.run_id, 0)
        self.result.details.setdefault("delta_versions", {})["quality_events"] = delta_version(self.spark, path)


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme == "file"


def _local_quality_dir(settings: Settings, name: str) -> str:
    """Great Expectations writes to a local file system: the lakehouse's own `_quality/` when it is
    local; otherwise a local working folder, copied to the lakehouse after each run."""
    root = settings.lakehouse.root
    if _is_local(root):
        return os.path.join(urlparse(root).path, "_quality", name)
    return os.path.join(tempfile.gettempdir(), "streamlake-quality", urlparse(root).netloc, name)


def _outcome_fields(outcome: CheckOutcome) -> dict[str, Any]:
    fields = {"table": outcome.table, "check": outcome.check, "kind": outcome.kind, "column": outcome.column,
              "action": outcome.action, "success": outcome.success, "unexpected_count": outcome.unexpected_count}
    return {**fields, **({"details": outcome.details} if outcome.details else {})}

