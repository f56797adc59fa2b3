"""Daily DAG benchmark: `streamlake_daily` through `airflow dags test` against the same jobs run
directly with spark-submit, for one day of both datasets at the seed design's rate (5 events/s:
432,000 events per dataset).

Bronze is written directly (Spark, no Kafka) into two identical lakehouses: user_events as
`bench/bench_batch.py` shapes it, orders as created -> paid -> shipped changes of 144,000 orders.
Then, one after the other on the same machine:
    direct  spark-submit silver_batch.py and gold_batch.py --silver-dates for each dataset, then
            ops_summary.py: the sum of their wall times
    dag     `airflow dags test streamlake_daily <day>` (Airflow's own CLI, SQLite, the Spark
            provider calling spark-submit), on the other lakehouse; `airflow db migrate` before it is
            reported apart
Orchestration overhead = dag / direct - 1; target <= 25%. The absolute wall time of the DAG run is
reported too (the seed design reports 2-3 minutes for its DAG).

Sizes: BENCH_DAILY_EVENTS (default 432000, per dataset).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.bench_batch import bronze_day
from bench.harness import BenchContext, Measurement
from conf.settings import Settings
from contracts.registry import get_contract
from jobs.bronze_table import create_bronze_table
from jobs.spark_session import build_spark_session, spark_submit_command, spark_submit_env
from streamlake.airflow_env import airflow_environment, build_py_files

EVENTS = int(os.environ.get("BENCH_DAILY_EVENTS", "432000"))
DAY = date(2025, 6, 2)
JOBS = Path(__file__).resolve().parent.parent / "jobs"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
ORDERS = get_contract("orders")
STATUSES = ("created", "paid", "shipped")


def orders_bronze_day(spark: SparkSession, rows: int, day: date) -> DataFrame:
    """`rows` Bronze `orders` rows ingested on `day`: each order created, paid, then shipped."""
    n = F.col("id")
    order_n = (n / len(STATUSES)).cast("long")
    at = F.lit(f"{day} 00:00:00").cast("timestamp") + F.make_dt_interval(secs=(order_n % 80_000) + (n % len(STATUSES)) * 60)
    quantity, unit_price = (order_n % 3 + 1).cast("int"), (F.lit(5) + order_n % 20).cast("decimal(18,2)")
    item = F.struct(F.format_string("SKU-%03d", order_n % 500).alias("sku"), quantity.alias("quantity"), unit_price.alias("unit_price"))
    statuses = F.array(*(F.lit(s) for s in STATUSES))
    return spark.range(0, rows).select(
        F.format_string("O-%08d", order_n).alias("order_id"),
        F.format_string("C-%05d", order_n % 20_000).alias("customer_id"),
        statuses[(n % len(STATUSES)).cast("int")].alias("status"),
        (quantity * unit_price).cast("decimal(18,2)").alias("amount"),
        F.lit("EUR").alias("currency"),
        F.array(item).alias("items"),
        at.alias("event_timestamp"),
        F.expr("uuid()").alias("ingestion_id"), (at + F.expr("INTERVAL 1 SECOND")).alias("received_at"),
        F.lit("orders").alias("dataset"), F.lit("v1").alias("schema_version"), F.lit("bench").alias("producer"),
        F.format_string("O-%08d", order_n).alias("kafka_key"), F.lit("{}").alias("raw_value"),
        F.lit(ORDERS.raw_topic).alias("kafka_topic"), (order_n % 3).cast("int").alias("kafka_partition"), n.alias("kafka_offset"),
        F.lit(f"{day} 12:00:00").cast("timestamp").alias("kafka_timestamp"),
        F.array(F.struct(F.lit("streamlake.producer").alias("key"), F.lit("bench").cast("binary").alias("value"))).alias("kafka_headers"),
        F.lit(0).cast("long").alias("bronze_batch_id"), F.lit(None).cast("string").alias("bronze_replay_id"),
        F.lit(day).cast("date").alias("ingestion_date"),
    )


def _lake(settings: Settings, root: Path) -> Settings:
    return settings.model_copy(update={"lakehouse": settings.lakehouse.model_copy(update={"root": root.as_uri()})})


def _write_bronze(settings: Settings) -> None:
    spark = build_spark_session(settings, "streamlake-bench-daily-bronze")
    try:
        frames = ((get_contract("user_events"), bronze_day(spark, EVENTS, DAY, 0)), (ORDERS, orders_bronze_day(spark, EVENTS, DAY)))
        for contract, frame in frames:
            table = settings.lakehouse.table_uri("bronze", contract.name)
            create_bronze_table(spark, contract, table)
            frame.write.format("delta").mode("append").save(table)
    finally:
        spark.stop()


def _env(settings: Settings) -> dict[str, str]:
    return spark_submit_env({**os.environ, "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap,
                             "STREAMLAKE_LAKEHOUSE__ROOT": settings.lakehouse.root})


def _timed(command: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("ab") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3600, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[-6:])} exited {done.returncode}; see {log}")
    return time.perf_counter() - started


def _direct(settings: Settings, log: Path) -> dict[str, float]:
    env, seconds = _env(settings), {}
    for dataset in ("orders", "user_events"):
        for job, args in (("silver_batch", ["--date", str(DAY)]), ("gold_batch", ["--silver-dates", str(DAY)])):
            command = spark_submit_command(settings, JOBS / f"{job}.py", "--dataset", dataset, *args)
            seconds[f"{job}/{dataset}"] = _timed(command, env, log)
    seconds["ops_summary"] = _timed(spark_submit_command(settings, JOBS / "ops_summary.py", "--date", str(DAY)), env, log)
    return seconds


def _dag(settings: Settings, workdir: Path, log: Path) -> tuple[float, float]:
    home = workdir / "airflow_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap, "STREAMLAKE_LAKEHOUSE__ROOT": settings.lakehouse.root}
    py_files = build_py_files(workdir / "dist" / "streamlake.zip")
    env |= airflow_environment(settings, home=home, py_files=py_files, retries=0, retry_delay_s=1)
    migrate = _timed([AIRFLOW, "db", "migrate"], env, log)
    return migrate, _timed([AIRFLOW, "dags", "test", "streamlake_daily", str(DAY)], env, log)


def run(ctx: BenchContext) -> list[Measurement]:
    direct_lake, dag_lake = _lake(ctx.settings, ctx.workdir / "direct"), _lake(ctx.settings, ctx.workdir / "dag")
    _write_bronze(direct_lake)
    shutil.copytree(ctx.workdir / "direct", ctx.workdir / "dag")
    log = ctx.workdir / "daily.log"
    direct = _direct(direct_lake, log)
    migrate_s, dag_s = _dag(dag_lake, ctx.workdir, log)
    direct_s = sum(direct.values())
    details = {"events_per_dataset": EVENTS, "day": str(DAY), "master": ctx.settings.spark.master}
    return [
        Measurement("daily jobs run directly with spark-submit (sum)", direct_s, "s",
                    details={**details, "seconds": {k: round(v, 1) for k, v in direct.items()}}),
        Measurement("streamlake_daily through airflow dags test", dag_s, "s", baseline="daily jobs run directly with spark-submit (sum)",
                    target="ratio <= 1.25 (overhead <= 25%)", details={**details, "airflow_db_migrate_s": round(migrate_s, 1)}),
    ]
