"""Replay benchmark: a bounded replay of a raw topic against the Bronze stream over the same records.

Both run in one local[2] session over the same 300,000 `user_events` records (1% poison pills):
the Bronze stream (`--available-now`, the configured batch size) lands them in a fresh lakehouse;
then Bronze's rows are removed (the lakehouse is the benchmark's own) and a replay of the whole range
(`jobs.replay_batch`, without the Silver/Gold rebuild) lands them again: the same verdict and DLQ
code, one bounded read instead of micro-batches, plus the anti-join against what Bronze holds.
Events/s of each: records over the whole run (the stream's from its start to its end, the replay's
from resolving its range to its last commit). The first round warms the JVM and the Python
workers and is reported, not counted; the median of the measured rounds counts. Target: replay /
stream >= 0.8.

Sizes: BENCH_REPLAY_EVENTS (default 300000), BENCH_REPLAY_ROUNDS (default 2).
"""

from __future__ import annotations

import json
import os
import statistics
import time

from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from bench.bench_bronze import POISON_SHARE, SparkCpu, produce_with_poison
from bench.harness import BenchContext, Measurement, TreeCpuMeter
from conf.settings import Settings
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.kafka_offsets import watermarks
from jobs.replay_batch import parse_arguments, replay_command
from jobs.spark_session import build_spark_session
from streamlake.topics import apply_topics, declared_topics

EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "300000"))
WARMUP_ROUNDS = 1
MEASURED_ROUNDS = int(os.environ.get("BENCH_REPLAY_ROUNDS", "2"))
DATASET = "user_events"


def _round_settings(settings: Settings, run: int) -> Settings:
    root = f"{settings.lakehouse.root}/replay_round_{run}"
    return settings.model_copy(update={"lakehouse": settings.lakehouse.model_copy(update={"root": root})})


def _stream(spark: SparkSession, settings: Settings, meter: SparkCpu) -> tuple[float, float]:
    """Seconds and CPU seconds of the Bronze stream over the whole topic."""
    started = time.perf_counter()
    with TreeCpuMeter(meter.jvm_pid) as cpu:
        query = start_bronze_query(spark, settings, DATASET, available_now=True)
        query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"the Bronze stream failed: {query.exception()}")
    return time.perf_counter() - started, cpu.spent


def _remove_bronze_rows(spark: SparkSession, settings: Settings) -> None:
    table = f"delta.`{settings.lakehouse.table_uri('bronze', DATASET)}`"
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'false')")
    spark.sql(f"DELETE FROM {table}")
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'true')")


def _replay(spark: SparkSession, settings: Settings, meter: SparkCpu, topic: str) -> tuple[float, float, dict]:
    """Seconds, CPU seconds and the result of a replay of the whole topic."""
    held = watermarks(settings, topic)
    args = parse_arguments(["--dataset", DATASET, "--no-rebuild",
                            "--from-offsets", json.dumps({str(p): w.low for p, w in held.items()}),
                            "--to-offsets", json.dumps({str(p): w.high for p, w in held.items()})])
    started = time.perf_counter()
    with TreeCpuMeter(meter.jvm_pid) as cpu:
        [result] = replay_command(spark, settings, args)
    return time.perf_counter() - started, cpu.spent, result.details


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    produce_with_poison(settings, DATASET, EVENTS)
    topic = get_contract(DATASET).raw_topic
    spark = build_spark_session(settings, "streamlake-bench-replay")
    streams, replays = [], []
    try:
        meter = SparkCpu(spark)
        for run_index in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
            round_settings = _round_settings(settings, run_index)
            streams.append(_stream(spark, round_settings, meter))
            _remove_bronze_rows(spark, round_settings)
            replays.append(_replay(spark, round_settings, meter, topic))
            if replays[-1][2]["inserted"] != replays[-1][2]["valid"]:
                raise RuntimeError(f"the replay landed {replays[-1][2]['inserted']} of {replays[-1][2]['valid']} valid records")
    finally:
        spark.stop()
    measured_streams, measured_replays = streams[WARMUP_ROUNDS:], replays[WARMUP_ROUNDS:]
    details = {"events": EVENTS, "poison_share": POISON_SHARE, "master": settings.spark.master,
               "max_offsets_per_trigger": settings.bronze.max_offsets_per_trigger,
               "of": f"the median of {MEASURED_ROUNDS} rounds, after {WARMUP_ROUNDS} warm-up round (listed first)"}
    return [
        Measurement("Bronze stream (available-now), whole run", EVENTS / statistics.median(s for s, _ in measured_streams), "events/s",
                    details={**details, "seconds": [round(s, 1) for s, _ in streams], "cpu_seconds": [round(c, 1) for _, c in streams]}),
        Measurement("bounded replay into an emptied Bronze, whole run", EVENTS / statistics.median(s for s, _, _ in measured_replays),
                    "events/s", baseline="Bronze stream (available-now), whole run", target="ratio >= 0.8",
                    details={**details, "seconds": [round(s, 1) for s, _, _ in replays],
                             "cpu_seconds": [round(c, 1) for _, c, _ in replays],
                             "phase_s": [r["phase_s"] for _, _, r in replays], "dlq": replays[-1][2]["dlq"]}),
    ]
