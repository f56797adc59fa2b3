"""Gold batch: Silver -> the dataset's daily metric tables, rebuilt for exactly the given event dates.

    spark-submit jobs/gold_batch.py --dataset user_events --dates 2026-01-01,2026-01-02
    spark-submit jobs/gold_batch.py --dataset orders --from 2026-01-01 --to 2026-01-07
    streamlake batch gold --dataset user_events --dates 2026-01-01        (the same, through spark-submit)

One run is one write-audit-publish transaction over all of the dataset's tables
(`pipelines.gold.GOLD_TABLES`): every table is computed for the dates from Silver and checked with
its Great Expectations suite; only when every critical check passes is each table written, with
`replaceWhere` on exactly those event dates. A rerun writes the same rows again; a date with no
Silver rows gets no rows (its old rows are removed, never replaced by zeros). The dates to pass are
the event dates a Silver run reports as touched.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts.registry import get_contract
from jobs.batch_run import RunResult, run_batch_job
from jobs.lakehouse_io import delta_table_exists, delta_version, ensure_delta_table
from jobs.ops_tables import event_dates_touched
from jobs.quality import QualityRecorder, gold_suite
from pipelines.gold import GOLD_PARTITION_COLUMNS, GOLD_TABLES, GoldTable

JOB = "gold"
log = logging.getLogger("streamlake.gold")

# Lets a test change a table's frame between write and audit: (table name, frame) -> frame.
StageHook = Callable[[str, DataFrame], DataFrame]


def run_gold(
    spark: SparkSession, settings: Settings, dataset: str, dates: list[date],
    *, stage_hook: StageHook | None = None, results: list[RunResult] | None = None,
) -> RunResult:
    """Rebuild every Gold table of `dataset` for `dates`; raises RunFailedError when the audit fails
    (after recording why), and publishes only when it passes."""
    get_contract(dataset)
    result = RunResult.start(JOB, dataset, sorted(dates))
    result.details["event_dates_touched"] = result.dates
    if results is not None:
        results.append(result)
    context = {"dataset": dataset, "dates": [str(d) for d in result.dates], "run_id": result.run_id}
    if not result.dates:  # e.g. a Silver run that touched no date: nothing to rebuild, nothing to check
        result.success = True
        log.info("gold run: no dates to rebuild", extra=context)
        return result
    silver = settings.lakehouse.table_uri("silver", dataset)
    if not delta_table_exists(spark, silver):
        raise FileNotFoundError(f"no Silver table at {silver}; run `streamlake batch silver --dataset {dataset}` first")
    log.info("gold run started", extra={**context, "source": silver})

    # -- write: each table's rows for the dates, computed once and kept for audit and publish
    # Not cached: each table reads only the Silver columns it needs (Parquet column pruning), which
    # costs less than holding every column of the dates in memory once. All from one Silver
    # snapshot, so the tables agree even if Silver is published meanwhile.
    silver_version = delta_version(spark, silver)
    result.details["silver_version"] = silver_version
    silver_df = (
        spark.read.format("delta").option("versionAsOf", silver_version).load(silver)
        .where(F.col("event_date").isin(result.dates))
    )
    updated_at = F.lit(result.started_at.replace(tzinfo=None)).cast("timestamp")
    staged: list[tuple[GoldTable, str, DataFrame]] = []
    try:
        silver_rows = silver_df.count()
        for table in GOLD_TABLES[dataset]:
            frame = table.build(silver_df, updated_at)
            if stage_hook is not None:
                frame = stage_hook(table.name, frame)
            staged.append((table, settings.lakehouse.table_uri("gold", table.name), frame.persist(StorageLevel.MEMORY_AND_DISK)))

        result.end_phase("write", log)

        # -- audit
        quality = QualityRecorder(spark, settings, "gold", result)
        rows_out = {}
        for table, _, frame in staged:
            rows_out[table.name] = frame.count()
            quality.validate(gold_suite(table), frame, f"gold.{table.name}")
        result.details.update({"silver_rows": silver_rows, "rows_out": rows_out})
        quality.raise_if_failed(context)

        result.end_phase("audit", log)

        # -- publish
        only_dates = " OR ".join(f"event_date = DATE'{d}'" for d in result.dates)
        versions = {}
        for table, path, frame in staged:
            ensure_delta_table(spark, path, frame.schema, GOLD_PARTITION_COLUMNS, {})
            frame.write.format("delta").mode("overwrite").option("replaceWhere", only_dates).save(path)
            versions[table.name] = delta_version(spark, path)
        result.details["delta_versions"] = versions
        result.end_phase("publish", log)
        quality.publish_succeeded()
    finally:
        for _, _, frame in staged:
            frame.unpersist()
    log.info("gold run published", extra={**context, **result.summary()})
    return result


def main(argv: list[str] | None = None) -> int:
    def run_dates(spark: SparkSession, settings: Settings, args: argparse.Namespace, _: threading.Event, results: list[RunResult]) -> None:
        dates = args.run_dates
        if args.silver_dates:
            dates = event_dates_touched(spark, settings, "silver", args.dataset, args.silver_dates)
            log.info("gold dates from silver runs", extra={"dataset": args.dataset, "silver_dates": [str(d) for d in args.silver_dates],
                                                          "event_dates": [str(d) for d in dates]})
        run_gold(spark, settings, args.dataset, dates, results=results)  # one transaction for all the dates

    return run_batch_job(JOB, "Silver -> Gold daily metrics for the given event dates, write-audit-publish.", run_dates, argv, listed=True)


if __name__ == "__main__":
    sys.exit(main())
