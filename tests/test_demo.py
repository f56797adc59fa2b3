"""`streamlake demo` end to end against the session broker: events and poison pills, the Bronze job,
Bronze Delta + DLQ, and the reconciliation it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts import DATASETS
from jobs.kafka_offsets import watermarks
from jobs.lakehouse_io import read_kafka_batch
from pipelines.bronze import dlq_header
from streamlake.demo import DEMO_PRODUCER

EVENTS = 40


def demo_dlq_classes(spark: SparkSession, settings: Settings, dlq_topic: str) -> Counter:
    """Error classes of the DLQ records holding the demo's own poison pills (other tests share the topic)."""
    dlq_df = read_kafka_batch(spark, settings, dlq_topic).select(
        F.col("value").cast("string").alias("value"),
        dlq_header("error.class").alias("error_class"),
    )
    demo_records = dlq_df.filter(F.col("value").rlike(rf'"producer":\s*"{DEMO_PRODUCER}"')).distinct()
    return Counter(row["error_class"] for row in demo_records.collect())


def test_demo_runs_bronze_and_reconciles_kafka_with_bronze_and_the_dlq(
    settings: Settings, settings_env: dict[str, str], spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = (tmp_path / "lake").as_uri()  # a fresh Bronze table and checkpoint for this run
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "demo", "--events", str(EVENTS)],
        env={**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": lakehouse}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.rstrip().endswith("reconciled: every Kafka message is a Bronze row or a DLQ record, exactly once")
    for dataset, contract in DATASETS.items():
        assert f"produced {EVENTS} {dataset} events (idempotent producer, acks=all)" in out
        assert (f"produced 3 poison pills straight to {contract.raw_topic}: malformed JSON, "
                f"{contract.business_key} of the wrong type, an unknown schema_version") in out
        # The raw topic is shared with other tests: each partition line must be the topic's exact
        # offsets, split into Bronze rows and DLQ records that add up to them.
        offsets = list(watermarks(settings, contract.raw_topic).values())
        for p in offsets:
            line = re.search(
                rf"^  partition {p.partition}: offsets \[{p.low}, {p.high}\) -> (\d+) Bronze rows \+ (\d+) DLQ records$", out, re.M
            )
            assert line is not None, out
            assert int(line[1]) + int(line[2]) == p.messages
        # This run's own records: every demo event in Bronze, every demo poison pill in the DLQ.
        bronze_df = spark.read.format("delta").load(f"{lakehouse}/bronze/{dataset}")
        assert bronze_df.filter(F.col("producer") == DEMO_PRODUCER).count() == EVENTS
        assert demo_dlq_classes(spark, settings, contract.dlq_topic) == Counter(
            {"malformed_json": 1, "wrong_type": 1, "unknown_schema_version": 1}
        )
        total = sum(p.messages for p in offsets)
        assert re.search(rf"^{re.escape(contract.raw_topic)}: {total} messages in Kafka -> \d+ Bronze rows ", out, re.M)
