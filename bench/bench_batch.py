"""Batch benchmark: Silver + Gold (with their checks) for one day of Bronze `user_events`, at 1 M and
4 M rows, against a plain Delta copy of the same Bronze partition.

Bronze is written directly by the benchmark (Spark SQL, no Kafka), in Bronze's own table and
schema: a realistic mix of users, pages and event types, 2% duplicates (a retry of the event just
before, at a later offset), 0.5% future-dated (quarantined), 1% off the site map (warnings) and 1%
late (the previous event date, so Gold rebuilds two dates).
For each size, in the same session and one after the other:
    baseline  read the day's Bronze partition and write it as a new Delta table
    batch     `run_silver` for the day, then `run_gold` for the event dates it touched
The ratio batch / baseline has a target of <= 3; the growth of the batch time from 1 M to 4 M rows a
target of <= 4.4x (linear). A 100k warm-up day runs first (Great Expectations' import, the JIT).
The JVM's resident memory is sampled throughout: its peak is the driver's (local mode: one JVM).

Sizes: BENCH_BATCH_SIZES (default "1000000,4000000").
"""

from __future__ import annotations

import os
import threading
import time
from datetime import date

import psutil
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.harness import BenchContext, Measurement
from conf.settings import Settings
from contracts.registry import get_contract
from jobs.bronze_table import create_bronze_table
from jobs.gold_batch import run_gold
from jobs.silver_batch import run_silver
from jobs.spark_session import build_spark_session

SIZES = [int(n) for n in os.environ.get("BENCH_BATCH_SIZES", "1000000,4000000").split(",")]
WARMUP_SIZE = 100_000
DUPLICATE_EVERY, FUTURE_EVERY, OFF_MAP_EVERY, LATE_EVERY = 50, 200, 100, 100
USER_EVENTS = get_contract("user_events")


def bronze_day(spark: SparkSession, rows: int, day: date, first_offset: int) -> DataFrame:
    """`rows` Bronze rows ingested on `day`, in the Bronze table's columns."""
    n = F.col("id")
    # A duplicate repeats the previous row's event (same id and payload), one offset later.
    event_n = F.when(n % DUPLICATE_EVERY == DUPLICATE_EVERY - 1, n - 1).otherwise(n)
    received_at = F.lit(f"{day} 00:00:00").cast("timestamp") + F.make_dt_interval(secs=(event_n % 86_000) + 60)
    event_ts = (
        F.when(n % FUTURE_EVERY == 7, received_at + F.expr("INTERVAL 1 HOUR"))
        .when(event_n % LATE_EVERY == 11, received_at - F.expr("INTERVAL 1 DAY"))
        .otherwise(received_at - F.make_dt_interval(secs=event_n % 30))
    )
    pages = F.array(*(F.lit(p) for p in ("/", "/home", "/search", "/product/42", "/product/7", "/cart", "/checkout")))
    page = F.when(n % OFF_MAP_EVERY == 3, F.lit("/old-landing")).otherwise(pages[(event_n * 13 % 7).cast("int")])
    kinds = F.array(*(F.lit(k) for k in ("click", "click", "click", "login", "logout", "purchase")))
    frame = spark.range(first_offset, first_offset + rows).select(
        F.expr("uuid()").alias("_fresh_id"), n.alias("id"), event_n.alias("event_n"), received_at.alias("received_at"),
        event_ts.alias("event_timestamp"), page.alias("page"),
    )
    # Event ids derive from event_n, so a duplicate carries the id of the row it repeats.
    event_id = F.format_string(
        "%08x-%04x-4%03x-8%03x-%012x", (F.col("event_n") * 2654435761) % 4294967296, F.col("event_n") % 65536,
        F.col("event_n") % 4096, (F.col("event_n") * 7) % 4096, F.col("event_n"))
    user_id = (F.col("event_n") * 7919 % (rows // 20 + 1)).cast("long")
    shaped = frame.select(
        event_id.alias("event_id"),
        user_id.alias("user_id"),
        kinds[(F.col("event_n") * 31 % 6).cast("int")].alias("event_type"),
        "page",
        "event_timestamp",
        F.when(F.col("event_n") % 3 == 0, "mobile").otherwise("web").alias("source"),
        "_fresh_id",
        "received_at",
        "id",
    )
    envelope = F.to_json(F.struct(
        F.col("_fresh_id").alias("ingestion_id"), F.col("received_at"), F.lit("user_events").alias("dataset"),
        F.lit("v1").alias("schema_version"), F.lit("bench").alias("producer"),
        F.struct("event_id", "user_id", "event_type", "page", "event_timestamp", "source").alias("payload"),
    ))
    header = F.struct(F.lit("streamlake.ingestion_id").alias("key"), F.col("_fresh_id").cast("binary").alias("value"))
    return shaped.select(
        "event_id", "user_id", "event_type", "page", "event_timestamp", "source",
        F.col("_fresh_id").alias("ingestion_id"), "received_at", F.lit("user_events").alias("dataset"),
        F.lit("v1").alias("schema_version"), F.lit("bench").alias("producer"),
        F.col("user_id").cast("string").alias("kafka_key"), envelope.alias("raw_value"),
        F.lit(USER_EVENTS.raw_topic).alias("kafka_topic"), F.lit(0).alias("kafka_partition"), F.col("id").alias("kafka_offset"),
        F.lit(f"{day} 12:00:00").cast("timestamp").alias("kafka_timestamp"), F.array(header).alias("kafka_headers"),
        F.lit(0).cast("long").alias("bronze_batch_id"), F.lit(None).cast("string").alias("bronze_replay_id"),
        F.lit(day).cast("date").alias("ingestion_date"),
    )


class PeakRss:
    """The peak resident memory of a process, sampled every `interval_s` over a `with` block."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(self.interval_s):
            self.peak = max(self.peak, self.process.memory_info().rss)


def write_day(spark: SparkSession, settings: Settings, rows: int, day: date, first_offset: int) -> None:
    table = settings.lakehouse.table_uri("bronze", USER_EVENTS.name)
    create_bronze_table(spark, USER_EVENTS, table)
    bronze_day(spark, rows, day, first_offset).write.format("delta").mode("append").save(table)


def copy_day(spark: SparkSession, settings: Settings, day: date) -> float:
    started = time.perf_counter()
    bronze = spark.read.format("delta").load(settings.lakehouse.table_uri("bronze", USER_EVENTS.name))
    day_df = bronze.where(F.col("ingestion_date") == F.lit(day))
    day_df.write.format("delta").mode("overwrite").save(f"{settings.lakehouse.root}/copy_{day}")
    return time.perf_counter() - started


def batch_day(spark: SparkSession, settings: Settings, day: date) -> tuple[float, dict]:
    started = time.perf_counter()
    silver = run_silver(spark, settings, USER_EVENTS.name, day)
    silver_s = time.perf_counter() - started
    gold = run_gold(spark, settings, USER_EVENTS.name, silver.details["event_dates_touched"])
    seconds = time.perf_counter() - started
    return seconds, {"silver_s": round(silver_s, 1), "gold_s": round(seconds - silver_s, 1),
                     "bronze_rows": silver.details["bronze_rows"], "inserted": silver.details["inserted"],
                     "duplicates": silver.details["duplicates_in_input"], "quarantined": silver.details["quarantined"],
                     "event_dates": len(gold.dates), "checks": silver.details["checks"]["passed"] + gold.details["checks"]["passed"],
                     "silver_phase_s": silver.details["phase_s"], "gold_phase_s": gold.details["phase_s"]}


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings
    spark = build_spark_session(settings, "streamlake-bench-batch")
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    measurements: list[Measurement] = []
    batch_seconds: dict[int, float] = {}
    try:
        days = [date(2026, 2, 1 + i) for i in range(len(SIZES) + 1)]
        offset = 0
        for rows, day in zip([WARMUP_SIZE, *SIZES], days, strict=True):
            write_day(spark, settings, rows, day, offset)
            offset += rows
        copy_day(spark, settings, days[0])
        batch_day(spark, settings, days[0])  # warm-up, not reported
        for rows, day in zip(SIZES, days[1:], strict=True):
            with PeakRss(jvm_pid) as memory:
                copy_s = copy_day(spark, settings, day)
                seconds, details = batch_day(spark, settings, day)
            batch_seconds[rows] = seconds
            label = f"{rows // 1_000_000} M" if rows >= 1_000_000 else f"{rows // 1000}k"
            baseline = f"Bronze day -> Delta copy, {label} rows (baseline)"
            measurements += [
                Measurement(baseline, copy_s, "s"),
                Measurement(f"Silver + Gold with checks, {label} rows", seconds, "s", baseline=baseline,
                            target="ratio <= 3", details={**details, "rows_per_s": round(rows / seconds)}),
                Measurement(f"driver JVM peak RSS, {label} rows", memory.peak / 2**20, "MiB",
                            details={"driver_memory": settings.spark.driver_memory, "master": settings.spark.master}),
            ]
    finally:
        spark.stop()
    if len(SIZES) >= 2:
        small, large = SIZES[0], SIZES[-1]
        measurements.append(Measurement(
            f"growth {large // small}x rows: time ratio", batch_seconds[large] / batch_seconds[small], "x",
            target=f"<= {1.1 * large / small:.1f}x (linear)", details={"rows": [small, large]},
        ))
    return measurements
