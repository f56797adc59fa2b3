"""Silver batch: the Bronze rows ingested on a date -> Silver (deduplicated, judged by the row rules).

    spark-submit jobs/silver_batch.py --dataset user_events --date 2026-01-01
    spark-submit jobs/silver_batch.py --dataset orders --from 2026-01-01 --to 2026-01-03
    streamlake batch silver --dataset user_events --date 2026-01-01     (the same, through spark-submit)

Each ingestion date is one run and one write-audit-publish transaction (`pipelines.silver`):
    write    compute every row's action: insert, replace, duplicate (in the input or in Silver),
             quarantine; stage the rows Silver gets
    audit    reconcile the counts against the Bronze rows read; count each rule's violations; check
             the staged rows with the Great Expectations suite built from the contract
    publish  only when nothing critical failed: MERGE into `<lakehouse>/silver/<dataset>` on the
             identity, limited to the event dates the run touches; quarantined rows into
             `<lakehouse>/quarantine/<dataset>`; for orders, `silver/orders_current`
A failed audit publishes nothing and the job exits 1; the run's results are recorded either way
(`jobs.quality`). Rerunning a date, a range over it or dates out of order leaves Silver as it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts.registry import DatasetContract, get_contract
from jobs.batch_run import RunResult, run_batch_job
from jobs.lakehouse_io import delta_table_exists, delta_version, ensure_delta_table, session_conf
from jobs.quality import QualityRecorder, silver_suite
from pipelines.silver import (
    IDENTITY,
    ORDERS_CURRENT_KEY,
    QUARANTINE_PARTITION_COLUMNS,
    SILVER_PARTITION_COLUMNS,
    SilverAction,
    filter_latest_order_states,
    filter_staged_rows,
    plan_silver_actions,
    quarantine_rows,
    state_order,
    to_silver_rows,
)
from pipelines.silver_rules import FAIL, SILVER_RULES, RuleParams, count_violations, with_rule_violations

JOB = "silver"
log = logging.getLogger("streamlake.silver")

# Lets a test change the staged rows between write and audit (e.g. to inject a duplicate identity).
StageHook = Callable[[DataFrame], DataFrame]


@dataclass(frozen=True)
class SilverTables:
    bronze: str
    silver: str
    quarantine: str
    orders_current: str

    @classmethod
    def of(cls, settings: Settings, dataset: str) -> SilverTables:
        lake = settings.lakehouse
        return cls(
            bronze=lake.table_uri("bronze", dataset), silver=lake.table_uri("silver", dataset),
            quarantine=lake.table_uri("quarantine", dataset), orders_current=lake.table_uri("silver", "orders_current"),
        )


def rule_params(settings: Settings) -> RuleParams:
    return RuleParams(future_tolerance_s=settings.silver.future_tolerance_s, site_map=tuple(settings.silver.site_map))


def run_silver(
    spark: SparkSession, settings: Settings, dataset: str, ingestion_date: date,
    *, stage_hook: StageHook | None = None, results: list[RunResult] | None = None,
) -> RunResult:
    """One Silver run for the Bronze rows ingested on `ingestion_date`; raises RunFailedError when
    its audit fails (after recording why), and publishes only when it passes. The run's result is
    appended to `results` (when given) as soon as it exists, so a failed run is reported too."""
    contract = get_contract(dataset)
    tables = SilverTables.of(settings, dataset)
    result = RunResult.start(JOB, dataset, [ingestion_date])
    if results is not None:
        results.append(result)
    context = {"dataset": dataset, "ingestion_date": str(ingestion_date), "run_id": result.run_id}
    if not delta_table_exists(spark, tables.bronze):
        raise FileNotFoundError(f"no Bronze table at {tables.bronze}; run `streamlake stream bronze --dataset {dataset}` first")
    log.info("silver run started", extra={**context, "source": tables.bronze, "path": tables.silver})

    # -- write: every Bronze row of the date gets its action; the rows Silver gets are staged
    identity = IDENTITY[dataset]
    # One Bronze snapshot for the whole run: the stream may append to the same date meanwhile, and
    # the count and the plan must see the same rows.
    bronze_version = delta_version(spark, tables.bronze)
    result.details["bronze_version"] = bronze_version
    bronze_df = (
        spark.read.format("delta").option("versionAsOf", bronze_version).load(tables.bronze)
        .where(F.col("ingestion_date") == F.lit(ingestion_date))
    )
    bronze_rows = bronze_df.count()
    judged_df = (
        bronze_df.transform(to_silver_rows, contract, result.run_id)
        .transform(with_rule_violations, SILVER_RULES[dataset], rule_params(settings))
    )
    input_dates = sorted(r.event_date for r in judged_df.select("event_date").distinct().collect())
    silver_keys_df = _silver_keys(spark, tables.silver, judged_df, input_dates)
    # Materialized, lineage cut: the plan reads Silver, so computed again after the Silver MERGE it
    # would see its own rows as duplicates and stage nothing for quarantine and orders_current.
    # On local disk at once: the plan holds every Silver column of the day, more than a default
    # driver's storage memory, where each block would be unrolled in memory first and spilled anyway.
    planned_df = plan_silver_actions(judged_df, silver_keys_df, identity).localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    try:
        counts = {(r.silver_action, r.event_date): r["count"] for r in planned_df.groupBy("silver_action", "event_date").count().collect()}
        by_action = {action: sum(n for (a, _), n in counts.items() if a == action) for action in SilverAction.ALL}
        touched = sorted({d for (a, d) in counts if a in SilverAction.WRITTEN})
        violations = [(r.rule, r.action, r.rows) for r in count_violations(planned_df).collect()]
        staged_df = filter_staged_rows(planned_df, contract)
        if stage_hook is not None:
            staged_df = stage_hook(staged_df)

        result.end_phase("write", log)

        # -- audit
        quality = QualityRecorder(spark, settings, "silver", result)
        accounted = sum(by_action.values())
        table = f"silver.{dataset}"
        quality.check("bronze_rows_reconcile", table, success=accounted == bronze_rows, unexpected=abs(accounted - bronze_rows),
                      details={"bronze_rows": bronze_rows, **by_action})
        broken = {rule: rows for rule, _, rows in violations}
        for rule in SILVER_RULES[dataset]:
            quality.rule(rule.name, table, rule.action, broken.get(rule.name, 0))
        quality.validate(silver_suite(contract, identity, rule_params(settings), result.started_at), staged_df, table)
        result.details.update({
            "bronze_rows": bronze_rows, "inserted": by_action[SilverAction.INSERT], "replaced": by_action[SilverAction.REPLACE],
            "duplicates_in_input": by_action[SilverAction.DUPLICATE_IN_INPUT],
            "duplicates_in_silver": by_action[SilverAction.DUPLICATE_IN_SILVER],
            "quarantined": by_action[SilverAction.QUARANTINED],
            "quarantined_by_rule": {rule: rows for rule, action, rows in violations if action == "quarantine"},
            "warnings_by_rule": {rule: rows for rule, action, rows in violations if action == "warn"},
            "failed_by_rule": {rule: rows for rule, action, rows in violations if action == FAIL},
            "event_dates_touched": touched,
        })
        quality.raise_if_failed(context)

        result.end_phase("audit", log)

        # -- publish
        _create_tables(spark, contract, tables, planned_df)
        versions = {"silver": _merge_silver(spark, tables.silver, staged_df, identity, touched, by_action)}
        if by_action[SilverAction.QUARANTINED]:
            versions["quarantine"] = _merge_quarantine(spark, tables.quarantine, quarantine_rows(planned_df, contract))
        if dataset == "orders" and touched:
            versions["orders_current"] = _merge_orders_current(spark, tables.orders_current, staged_df)
        result.details["delta_versions"] = versions
        result.end_phase("publish", log)
        quality.publish_succeeded()
    finally:
        planned_df.unpersist()
    log.info("silver run published", extra={**context, **result.summary()})
    return result


def silver_table_properties(contract: DatasetContract) -> dict[str, str]:
    """File statistics only on what Silver is filtered and joined by (the identity, event and
    arrival time, the business key, the Kafka coordinates): statistics on every text column cost
    each write more than they ever save a reader."""
    columns = dict.fromkeys([*IDENTITY[contract.name], contract.business_key, "event_timestamp", "received_at",
                             "kafka_partition", "kafka_offset"])
    return {"delta.dataSkippingStatsColumns": ",".join(columns)}


def _silver_keys(spark: SparkSession, path: str, judged_df: DataFrame, event_dates: list[date]) -> DataFrame:
    """What Silver holds for these event dates (none before its first publish)."""
    if delta_table_exists(spark, path):
        return spark.read.format("delta").load(path).where(F.col("event_date").isin(event_dates))
    return judged_df.limit(0)


def _create_tables(spark: SparkSession, contract: DatasetContract, tables: SilverTables, planned_df: DataFrame) -> None:
    """Silver, quarantine (and for orders, orders_current) exist from the first publish on, so that
    a MERGE always has a target and readers always find a table; a failed run creates nothing."""
    silver_schema = filter_staged_rows(planned_df, contract).schema
    ensure_delta_table(spark, tables.silver, silver_schema, SILVER_PARTITION_COLUMNS, silver_table_properties(contract))
    quarantine_schema = quarantine_rows(planned_df, contract).schema
    ensure_delta_table(spark, tables.quarantine, quarantine_schema, QUARANTINE_PARTITION_COLUMNS, {"delta.appendOnly": "true"})
    if contract.name == "orders":
        ensure_delta_table(spark, tables.orders_current, silver_schema, [], {})


# The staged copy replaces the one Silver holds only when it is the earlier (pipelines.silver).
_EARLIER_COPY = "struct(source.kafka_partition, source.kafka_offset) < struct(target.kafka_partition, target.kafka_offset)"


def _merge_silver(
    spark: SparkSession, path: str, staged_df: DataFrame, identity: tuple[str, ...], touched: list[date], expected: dict[str, int]
) -> int:
    """MERGE the staged rows on the identity, limited to the touched event dates; then hold Delta's
    own counts of what it did against the plan (a difference means a concurrent writer or a bug)."""
    if not touched:
        return delta_version(spark, path)
    dates = ", ".join(f"DATE'{d}'" for d in touched)
    on = " AND ".join([f"target.event_date IN ({dates})", "target.event_date = source.event_date",
                       *(f"target.{c} = source.{c}" for c in identity)])
    merge = DeltaTable.forPath(spark, path).alias("target").merge(staged_df.alias("source"), on)
    if expected[SilverAction.REPLACE]:
        merge = merge.whenMatchedUpdateAll(condition=_EARLIER_COPY)
    # Nothing to replace: an insert-only MERGE, which Delta runs as an anti-join and rewrites no file.
    # The source is a materialized plan already; a full MERGE would materialize it once more (it is
    # not a Delta scan), for nothing.
    with session_conf(spark, "spark.databricks.delta.merge.materializeSource", "none"):
        metrics = merge.whenNotMatchedInsertAll().execute().first()
    inserted, updated = int(metrics["num_inserted_rows"]), int(metrics["num_updated_rows"])
    if (inserted, updated) != (expected[SilverAction.INSERT], expected[SilverAction.REPLACE]):
        raise RuntimeError(
            f"Silver MERGE into {path} inserted {inserted} and replaced {updated} rows where the run planned "
            f"{expected[SilverAction.INSERT]} and {expected[SilverAction.REPLACE]}: another writer changed the table meanwhile?"
        )
    return delta_version(spark, path)


def _merge_quarantine(spark: SparkSession, path: str, quarantine_df: DataFrame) -> int:
    """Insert-only on (Bronze coordinates, rule): a rerun never quarantines a record twice."""
    on = " AND ".join(f"target.{c} = source.{c}" for c in ("kafka_topic", "kafka_partition", "kafka_offset", "rule", "ingestion_date"))
    DeltaTable.forPath(spark, path).alias("target").merge(quarantine_df.alias("source"), on).whenNotMatchedInsertAll().execute()
    return delta_version(spark, path)


def _merge_orders_current(spark: SparkSession, path: str, staged_df: DataFrame) -> int:
    """Each order's latest state: replaced only by a later change (`state_order`), so a `shipped`
    that arrived before its `paid` is never moved back."""
    (
        DeltaTable.forPath(spark, path).alias("target")
        .merge(filter_latest_order_states(staged_df).alias("source"), f"target.{ORDERS_CURRENT_KEY} = source.{ORDERS_CURRENT_KEY}")
        .whenMatchedUpdateAll(condition=state_order("source.") > state_order("target."))
        .whenNotMatchedInsertAll()
        .execute()
    )
    return delta_version(spark, path)


def main(argv: list[str] | None = None) -> int:
    def run_dates(
        spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event, results: list[RunResult]
    ) -> None:
        for day in args.run_dates:  # in order, each date its own transaction
            if stop_requested.is_set():
                log.info("SIGTERM received: stopping before the next date", extra={"dataset": args.dataset, "next_date": str(day)})
                return
            run_silver(spark, settings, args.dataset, day, results=results)

    return run_batch_job(JOB, "Bronze (per ingestion date) -> Silver, deduplicated and judged, write-audit-publish.", run_dates, argv,
                         listed=False)


if __name__ == "__main__":
    sys.exit(main())
