"""Speed layer: Bronze Delta (streamed) -> 1-minute metrics in `<lakehouse>/realtime/<metric>`.

    spark-submit jobs/realtime_metrics.py --dataset user_events
    streamlake stream realtime --dataset user_events

One streaming query per metric (pipelines.realtime_metrics.METRICS), each in update mode with its
own checkpoint. foreachBatch MERGEs the changed windows into the metric table on (window_start,
dimensions), replacing the value: a retried batch writes the same values again, so retries are
idempotent, and a metric is visible within one trigger of its events reaching Bronze.
"""

from __future__ import annotations

import logging
import sys
import time

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from conf.settings import Settings
from contracts.registry import get_contract
from jobs.entrypoint import run_streaming_job
from jobs.lakehouse_io import delta_table_exists, delta_version
from pipelines.realtime_metrics import METRICS, MetricSpec, windowed_metric

JOB = "realtime"
log = logging.getLogger("streamlake.realtime")


class MetricMergeWriter:
    """foreachBatch sink: upsert the changed windows of one metric, values replaced not added."""

    def __init__(self, spec: MetricSpec, table: str) -> None:
        self.spec = spec
        self.table = table

    def __call__(self, windows_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spark = windows_df.sparkSession
        if not delta_table_exists(spark, self.table):
            # An empty table with the metric's schema, so MERGE has a target from the first batch.
            windows_df.limit(0).write.format("delta").mode("append").save(self.table)
        condition = " AND ".join(f"target.{c} <=> source.{c}" for c in self.spec.key_columns)
        (
            DeltaTable.forPath(spark, self.table).alias("target")
            .merge(windows_df.alias("source"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
        log.info(
            "realtime metric merged",
            extra={"metric": self.spec.name, "batch_id": batch_id, "path": self.table,
                   "delta_version": delta_version(spark, self.table),
                   "duration_ms": round((time.monotonic() - started) * 1000)},
        )


def start_metric_queries(
    spark: SparkSession, settings: Settings, dataset: str, *, available_now: bool = False
) -> list[StreamingQuery]:
    get_contract(dataset)
    bronze = settings.lakehouse.table_uri("bronze", dataset)
    if not delta_table_exists(spark, bronze):
        raise FileNotFoundError(f"no Bronze table at {bronze} yet; start `streamlake stream bronze --dataset {dataset}` first")
    realtime = settings.realtime
    trigger = {"availableNow": True} if available_now else {"processingTime": realtime.trigger_interval}
    queries = []
    for spec in METRICS[dataset]:
        table = settings.lakehouse.table_uri("realtime", spec.name)
        windows_df = spark.readStream.format("delta").load(bronze).transform(
            windowed_metric, spec, realtime.window, realtime.watermark
        )
        queries.append(
            windows_df.writeStream.outputMode("update")
            .foreachBatch(MetricMergeWriter(spec, table))
            .option("checkpointLocation", settings.lakehouse.checkpoint_uri(JOB, spec.name))
            .queryName(f"realtime-{spec.name}")
            .trigger(**trigger)
            .start()
        )
        log.info("started realtime metric", extra={"metric": spec.name, "source": bronze, "path": table,
                                                    "window": realtime.window, "watermark": realtime.watermark})
    return queries


def main(argv: list[str] | None = None) -> int:
    return run_streaming_job(
        JOB, "Bronze -> 1-minute real-time metrics (Delta, MERGE per window).",
        lambda spark, settings, dataset, available_now: start_metric_queries(spark, settings, dataset, available_now=available_now),
        argv, "process what Bronze holds now, then exit",
    )


if __name__ == "__main__":
    sys.exit(main())
