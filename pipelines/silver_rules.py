"""Silver's row rules beyond the contract, declared once per dataset here (pure).

In the manner of Delta Live Tables expectations, each rule has a name, a condition that a good row
satisfies (SQL text or a Column built from the rule parameters) and an action:

    warn        the row is kept; the violation is counted and recorded
    quarantine  the row goes to `<lakehouse>/quarantine/<dataset>` with the rule and reason, not to Silver
    fail        the run writes nothing and exits non-zero

A condition that evaluates to null counts as violated: a rule never lets through what it could not judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

Action = Literal["warn", "quarantine", "fail"]
WARN, QUARANTINE, FAIL = "warn", "quarantine", "fail"
VIOLATIONS = "rule_violations"
VIOLATION_TYPE = ArrayType(StructType([
    StructField("rule", StringType()),
    StructField("action", StringType()),
    StructField("reason", StringType()),
]))
# The schema versions whose rows Silver knows how to shape; a row of any other stops the run.
SILVER_SCHEMA_VERSIONS = ("v1",)


@dataclass(frozen=True)
class RuleParams:
    """The settings rules depend on, handed over by the job (pipelines read no configuration)."""

    future_tolerance_s: int = 300
    site_map: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowRule:
    name: str
    action: Action
    holds: str | Callable[[RuleParams], Column]  # true for a good row
    reason: str

    def condition(self, params: RuleParams) -> Column:
        return F.expr(self.holds) if isinstance(self.holds, str) else self.holds(params)


def _not_in_future(params: RuleParams) -> Column:
    return F.col("event_timestamp") <= F.col("received_at") + F.make_dt_interval(secs=F.lit(params.future_tolerance_s))


def _page_in_site_map(params: RuleParams) -> Column:
    exact = [page for page in params.site_map if not page.endswith("*")]
    prefixes = [page[:-1] for page in params.site_map if page.endswith("*")]
    in_map = F.col("page").isin(exact) if exact else F.lit(False)
    for prefix in prefixes:
        in_map = in_map | F.col("page").startswith(prefix)
    return in_map


# The sum of the line items, exact: each product is cast to the accumulator's type so that
# `aggregate` sees one type throughout.
_ITEMS_TOTAL = (
    "aggregate(items, CAST(0 AS DECIMAL(38, 2)), "
    "(total, item) -> CAST(total + item.quantity * item.unit_price AS DECIMAL(38, 2)))"
)

_KNOWN_VERSION = RowRule(
    "schema_version_known", FAIL, f"schema_version IN ({', '.join(repr(v) for v in SILVER_SCHEMA_VERSIONS)})",
    "a schema version Silver cannot shape yet: deploy the Silver job for it before rerunning",
)
_NOT_IN_FUTURE = RowRule(
    "event_time_not_in_future", QUARANTINE, _not_in_future,
    "event_timestamp is later than received_at plus the allowed clock skew (silver.future_tolerance_s)",
)

SILVER_RULES: dict[str, tuple[RowRule, ...]] = {
    "user_events": (
        _KNOWN_VERSION,
        _NOT_IN_FUTURE,
        RowRule("page_in_site_map", WARN, _page_in_site_map, "page is not in the configured site map (silver.site_map)"),
    ),
    "orders": (
        _KNOWN_VERSION,
        _NOT_IN_FUTURE,
        RowRule("amount_matches_items", QUARANTINE, f"abs(amount - {_ITEMS_TOTAL}) <= 0.01",
                "amount differs from the sum of quantity * unit_price over the items by more than 0.01"),
    ),
}


def with_rule_violations(df: DataFrame, rules: tuple[RowRule, ...], params: RuleParams) -> DataFrame:
    """`df` plus `rule_violations`: one (rule, action, reason) per rule the row breaks, empty when none."""
    broken = [
        F.when(F.coalesce(rule.condition(params), F.lit(False)), F.lit(None)).otherwise(
            F.struct(F.lit(rule.name).alias("rule"), F.lit(rule.action).alias("action"), F.lit(rule.reason).alias("reason"))
        )
        for rule in rules
    ]
    violations = F.filter(F.array(*broken), lambda v: v.isNotNull()) if broken else F.array()
    return df.withColumn(VIOLATIONS, violations.cast(VIOLATION_TYPE))


def breaks(action: Action) -> Column:
    """True for a row with at least one violation of a rule with this action."""
    return F.exists(VIOLATIONS, lambda v: v["action"] == F.lit(action))


def count_violations(judged_df: DataFrame) -> DataFrame:
    """(rule, action, rows): how many rows broke each rule; rules nobody broke are absent."""
    return (
        judged_df.select(F.explode(VIOLATIONS).alias("v"))
        .groupBy(F.col("v.rule").alias("rule"), F.col("v.action").alias("action"))
        .agg(F.count(F.lit(1)).alias("rows"))
    )
