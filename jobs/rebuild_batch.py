"""Rebuild: Silver for Bronze ingestion dates, then Gold for the event dates those runs own or touched.

    spark-submit jobs/rebuild_batch.py --dataset orders --from 2026-01-01 --to 2026-01-07   (a backfill)
    spark-submit jobs/rebuild_batch.py --dataset orders --replay-id R     (after a replay: the dates it added rows to)
    streamlake backfill --dataset orders --from 2026-01-01 --to 2026-01-07

The same jobs as the daily run (`jobs.silver_batch.run_silver`, `jobs.gold_batch.run_gold`), in one
Spark session: each ingestion date is its own Silver transaction, in order, then one Gold
transaction for the event dates. A backfill rebuilds Gold for every date of its range as well as the
event dates Silver touched (late events of the range land on earlier dates); after a replay, only
what Silver touched. Safe to repeat: Silver keeps one copy per identity, Gold replaces its dates.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from datetime import date

from pyspark.sql import SparkSession

from conf.settings import Settings
from jobs.batch_run import RunResult, run_batch_job
from jobs.gold_batch import run_gold
from jobs.ops_tables import run_dates
from jobs.silver_batch import run_silver

JOB = "rebuild"
log = logging.getLogger("streamlake.rebuild")


def rebuild(
    spark: SparkSession, settings: Settings, dataset: str, ingestion_dates: list[date], *,
    gold_dates: list[date] = (), stop_requested: threading.Event | None = None, results: list[RunResult] | None = None,
) -> list[date]:
    """Silver for each ingestion date, then Gold for `gold_dates` and every event date Silver
    touched; returns the Gold dates (none when stopped before Gold)."""
    touched = set(gold_dates)
    for day in sorted(ingestion_dates):
        if stop_requested is not None and stop_requested.is_set():
            log.info("SIGTERM received: stopping before the next date", extra={"dataset": dataset, "next_date": str(day)})
            return []
        silver = run_silver(spark, settings, dataset, day, results=results)
        touched.update(date.fromisoformat(str(d)) for d in silver.details["event_dates_touched"])
    run_gold(spark, settings, dataset, sorted(touched), results=results)
    log.info("rebuild done", extra={"dataset": dataset, "ingestion_dates": [str(d) for d in sorted(ingestion_dates)],
                                    "gold_dates": [str(d) for d in sorted(touched)]})
    return sorted(touched)


def main(argv: list[str] | None = None) -> int:
    def run(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop: threading.Event, results: list[RunResult]) -> None:
        if args.replay_id:
            dataset, dates = run_dates(spark, settings, args.replay_id)
            if dataset != args.dataset:
                raise ValueError(f"replay {args.replay_id} was of dataset {dataset}, not {args.dataset}")
            if not dates:
                log.info("the replay added no Bronze rows: nothing to rebuild", extra={"dataset": dataset, "replay_id": args.replay_id})
                return
            rebuild(spark, settings, args.dataset, dates, stop_requested=stop, results=results)
        else:
            rebuild(spark, settings, args.dataset, args.run_dates, gold_dates=args.run_dates, stop_requested=stop, results=results)

    return run_batch_job(JOB, "Silver for Bronze ingestion dates, then Gold for the event dates they touch (backfills, replays).",
                         run, argv, listed=False, by_replay=True)


if __name__ == "__main__":
    sys.exit(main())
