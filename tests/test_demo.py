"""`streamlake demo` end to end against the session broker: produce, Spark Kafka source, Delta."""

from __future__ import annotations

import re
import subprocess
import sys

from confluent_kafka.admin import AdminClient

from conf.settings import Settings
from streamlake.kafka_inspect import partition_offsets


def test_demo_round_trip_reports_offsets_and_rows(settings: Settings, settings_env: dict[str, str], admin: AdminClient) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "demo", "--events", "40"],
        env=settings_env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "produced 40 user_events events (idempotent producer, acks=all)" in out
    assert "produced 40 orders events (idempotent producer, acks=all)" in out
    assert out.rstrip().endswith("round trip complete: every Kafka message is a Delta row")
    # The demo's per-partition lines must be exactly the topic's offsets, each fully loaded to Delta.
    for topic in ("streamlake.user_events.raw", "streamlake.orders.raw"):
        for p in partition_offsets(settings, topic):
            assert f"  partition {p.partition}: offsets [{p.low}, {p.high}) -> {p.messages} Delta rows" in out
        total = sum(p.messages for p in partition_offsets(settings, topic))
        assert re.search(rf"^{re.escape(topic)}: {total} messages in Kafka, {total} rows in Delta ", out, re.M)
