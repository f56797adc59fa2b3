"""SQL serving benchmark: a BI tool's Gold query through the Thrift server against `spark.sql`.

Two Gold tables (`revenue_daily`: three years of days x three currencies; `daily_active_users`:
one row a day) are written once as Delta; `streamlake serve` then serves them (its own driver, as
analysts get it, read-only guard on), and a local session of this process reads the same folders.
The query is what a dashboard sends: a 90-day range, a join of the two tables, ordered; every run
fetches all its rows (PyHive `fetchall`, `collect`). Each side runs WARMUP times unmeasured, then
RUNS times measured, one after the other in the same run (never both at once: two cores). Target:
Thrift's p50 <= 1.5x the local session's.

Sizes: BENCH_THRIFT_RUNS (default 50).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BenchContext, Measurement
from jobs.spark_session import build_spark_session, spark_submit_env
from streamlake.ports import free_port

RUNS = int(os.environ.get("BENCH_THRIFT_RUNS", "50"))
WARMUP = 5
DAYS = 3 * 365
CURRENCIES = ("EUR", "GBP", "USD")
START = dt.date(2024, 1, 1)
QUERY = (
    "SELECT r.event_date, r.currency, r.revenue, r.orders, d.dau_count FROM {revenue} r "
    "JOIN {dau} d ON r.event_date = d.event_date "
    "WHERE r.event_date BETWEEN DATE'2025-03-01' AND DATE'2025-05-29' ORDER BY r.event_date, r.currency"
)
EXPECTED_ROWS = 90 * len(CURRENCIES)
STARTUP_TIMEOUT_S = 300.0


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _time_runs(run_once) -> list[float]:
    for _ in range(WARMUP):
        run_once()
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        rows = run_once()
        seconds.append(time.perf_counter() - started)
        if len(rows) != EXPECTED_ROWS:
            raise RuntimeError(f"the query returned {len(rows)} rows, not {EXPECTED_ROWS}")
    return seconds


def _write_gold(spark, root: str) -> None:
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    revenue = [(d, c, float(i % 97) + 0.5, i % 13 + 1) for i, d in enumerate(days) for c in CURRENCIES]
    spark.createDataFrame(revenue, "event_date date, currency string, revenue double, orders bigint") \
        .write.format("delta").save(f"{root}/gold/revenue_daily")
    spark.createDataFrame([(d, i % 50 + 10) for i, d in enumerate(days)], "event_date date, dau_count bigint") \
        .write.format("delta").save(f"{root}/gold/daily_active_users")


def _start_server(ctx: BenchContext, port: int) -> tuple[subprocess.Popen, Path]:
    serve_dir = ctx.workdir / "serve"
    serve_dir.mkdir()
    env = spark_submit_env({
        **os.environ, "STREAMLAKE_LAKEHOUSE__ROOT": ctx.settings.lakehouse.root, "STREAMLAKE_SERVE__PORT": str(port),
        "STREAMLAKE_SERVE__METASTORE_DIR": str(serve_dir / "metastore"),
        "STREAMLAKE_SERVE__STATE_FILE": str(serve_dir / "server.json"),
    })
    log = (serve_dir / "server.log").open("wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "streamlake"), "serve"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (serve_dir / "server.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"streamlake serve did not become ready: {(serve_dir / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    return process, serve_dir / "server.json"


def _stop(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run(ctx: BenchContext) -> list[Measurement]:
    from pyhive import hive

    root = ctx.settings.lakehouse.root
    spark = build_spark_session(ctx.settings, "bench-thrift")
    try:
        _write_gold(spark, root)
        local_query = QUERY.format(revenue=f"delta.`{root}/gold/revenue_daily`", dau=f"delta.`{root}/gold/daily_active_users`")
        local = _time_runs(lambda: spark.sql(local_query).collect())
    finally:
        spark.stop()  # before the server starts: the two never share the cores
    port = free_port()
    process, state_file = _start_server(ctx, port)
    try:
        tables = json.loads(state_file.read_text())["tables"]
        connection = hive.connect(host="127.0.0.1", port=port, username="bench")
        cursor = connection.cursor()
        thrift_query = QUERY.format(revenue="gold.revenue_daily", dau="gold.daily_active_users")

        def thrift_once() -> list:
            cursor.execute(thrift_query)
            return cursor.fetchall()

        thrift = _time_runs(thrift_once)
        connection.close()
    finally:
        _stop(process)
    local_p50, local_p95 = _percentiles(local)
    thrift_p50, thrift_p95 = _percentiles(thrift)
    details = {"runs": RUNS, "warmup_runs": WARMUP, "rows": EXPECTED_ROWS, "query": QUERY, "master": ctx.settings.spark.master}
    return [
        Measurement("spark.sql in a local session, p50", local_p50 * 1000, "ms", details={**details, "p95_ms": local_p95 * 1000}),
        Measurement("PyHive through the Thrift server, p50", thrift_p50 * 1000, "ms", baseline="spark.sql in a local session, p50",
                    target="ratio <= 1.5", details={**details, "p95_ms": thrift_p95 * 1000, "tables": tables}),
        Measurement("spark.sql in a local session, p95", local_p95 * 1000, "ms"),
        Measurement("PyHive through the Thrift server, p95", thrift_p95 * 1000, "ms", baseline="spark.sql in a local session, p95",
                    target="ratio <= 1.5"),
    ]
