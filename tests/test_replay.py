"""Bounded replays from Kafka into Bronze (real broker, Spark, Delta): by offsets and by times, the
same replay twice, a replay while the Bronze stream runs, a replay that restores lost Bronze rows
exactly once and lands a record a fixed setting now accepts; then Silver and Gold for what it
touched. The records' events are dated 2024-07-15, a date no other test uses, so Gold's rows for it
come from these records alone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.entrypoint import stop_gracefully
from jobs.kafka_offsets import OffsetRangeError, watermarks
from jobs.replay_batch import parse_arguments, replay_command
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import Produced, dlq_headers, produce_raw, read_topic
from tests.replay_support import bronze_available_now, copies, lose_ingestion_date, offsets_range, order

ORDERS = get_contract("orders")
EVENT_DAY = date(2024, 7, 15)
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")
# bytes: the stream sends the large order to the DLQ as oversized. The limit the Bronze tests use, so that
# their reconciliation of the shared topic judges that record as this stream did.
SMALL_VALUE_LIMIT = 4096


@pytest.fixture(scope="module")
def topics(settings: Settings) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))


def _settings(settings: Settings, folder: Path, **bronze) -> Settings:
    return load_settings(kafka={"bootstrap_servers": settings.kafka.bootstrap}, lakehouse={"root": (folder / "lake").as_uri()},
                         bronze={"retry_backoff_s": 0.2, **bronze})














def _replay(spark: SparkSession, settings: Settings, *argv: str) -> list:
    return replay_command(spark, settings, parse_arguments(["--dataset", "orders", *argv]))


def _revenue(spark: SparkSession, settings: Settings) -> list[tuple]:
    df = spark.read.format("delta").load(settings.lakehouse.table_uri("gold", "revenue_daily")).where(F.col("event_date") == EVENT_DAY)
    return sorted((r.currency, r.revenue, r.orders) for r in df.collect())


def _silver_orders(spark: SparkSession, settings: Settings, order_ids: list[str]) -> list[tuple]:
    df = spark.read.format("delta").load(settings.lakehouse.table_uri("silver", "orders")).where(F.col("order_id").isin(order_ids))
    return sorted((r.order_id, r.status, r.amount, r.kafka_partition, r.kafka_offset) for r in df.collect())


def test_a_replay_by_offsets_restores_lost_bronze_rows_once_then_rebuilds_silver_and_gold(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics
) -> None:
    lake = _settings(settings, tmp_path)
    produced = produce_raw(lake, ORDERS.raw_topic, [order("O-RPL-1", "10.00"), order("O-RPL-2", "20.00"), order("O-RPL-3", "5.25", 2)])
    bronze_available_now(spark, lake)
    today = datetime.now(UTC).date()
    assert lose_ingestion_date(spark, lake, today) >= 3  # with whatever else the session produced today
    assert all(found == [] for found in copies(spark, lake, produced).values())
    from_offsets, to_offsets = offsets_range(produced)

    [replayed, silver, gold] = _replay(spark, lake, "--from-offsets", from_offsets, "--to-offsets", to_offsets, "--replay-id", "replay-t1")

    assert copies(spark, lake, produced) == {(p.partition, p.offset): ["replay-t1"] for p in produced}
    records_in_range = sum(json.loads(to_offsets)[k] - json.loads(from_offsets)[k] for k in json.loads(from_offsets))
    assert (replayed.job, replayed.run_id, replayed.dates) == ("replay", "replay-t1", [today])
    assert replayed.details["range"] == {"topic": ORDERS.raw_topic, "from_offsets": json.loads(from_offsets),
                                         "to_offsets": json.loads(to_offsets)}
    assert (replayed.details["records_read"], replayed.details["inserted"]) == (records_in_range, records_in_range)
    assert replayed.details["event_dates_touched"] == [EVENT_DAY]
    # Silver for the ingestion date it added rows to, Gold for the event dates Silver touched.
    assert (silver.job, silver.dates, gold.job) == ("silver", [today], "gold")
    assert gold.dates == [EVENT_DAY]
    assert _silver_orders(spark, lake, ["O-RPL-1", "O-RPL-2", "O-RPL-3"]) == [
        ("O-RPL-1", "paid", Decimal("10.00"), produced[0].partition, produced[0].offset),
        ("O-RPL-2", "paid", Decimal("20.00"), produced[1].partition, produced[1].offset),
        ("O-RPL-3", "paid", Decimal("10.50"), produced[2].partition, produced[2].offset),
    ]
    assert _revenue(spark, lake) == [("EUR", Decimal("40.50"), 3)]

    # The same range again: nothing to add, nothing to rebuild.
    [again] = _replay(spark, lake, "--from-offsets", from_offsets, "--to-offsets", to_offsets, "--replay-id", "replay-t1-again")
    assert (again.details["inserted"], again.details["already_in_bronze"], again.dates) == (0, records_in_range, [])
    assert copies(spark, lake, produced) == {(p.partition, p.offset): ["replay-t1"] for p in produced}


def test_a_range_outside_kafka_or_ahead_of_the_stream_is_refused_naming_the_partition(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics
) -> None:
    lake = _settings(settings, tmp_path)
    [first] = produce_raw(lake, ORDERS.raw_topic, [order("O-RPL-10", "1.00")])
    bronze_available_now(spark, lake)
    marks = watermarks(lake, ORDERS.raw_topic)[first.partition]
    p = first.partition

    with pytest.raises(OffsetRangeError) as beyond_kafka:
        _replay(spark, lake, "--from-offsets", json.dumps({str(p): marks.low}), "--to-offsets", json.dumps({str(p): marks.high + 5}))
    assert str(beyond_kafka.value) == (f"{ORDERS.raw_topic} partition {p}: offsets [{marks.low}, {marks.high + 5}) are outside what "
                                       f"Kafka holds, [{marks.low}, {marks.high})")
    with pytest.raises(OffsetRangeError, match=f"{ORDERS.raw_topic} has no partition 7"):
        _replay(spark, lake, "--from-offsets", '{"7": 0}', "--to-offsets", '{"7": 1}')

    [ahead] = produce_raw(lake, ORDERS.raw_topic, [order("O-RPL-11", "1.00")])
    with pytest.raises(OffsetRangeError, match=f"partition {ahead.partition}: the range ends at {ahead.offset + 1}, beyond what the "
                                               "Bronze stream has committed"):
        _replay(spark, lake, "--from-offsets", json.dumps({str(ahead.partition): ahead.offset}),
                "--to-offsets", json.dumps({str(ahead.partition): ahead.offset + 1}))
    bronze_available_now(spark, lake)  # leave the topic landed for the tests after this one


def test_a_replay_by_times_through_the_cli_lands_what_a_fixed_setting_accepts_and_marks_what_stays_invalid(
    spark: SparkSession, settings: Settings, settings_env: dict[str, str], tmp_path: Path, topics
) -> None:
    strict = _settings(settings, tmp_path, max_value_bytes=SMALL_VALUE_LIMIT)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    time.sleep(0.01)
    small, large = order("O-RPL-20", "3.00"), order("O-RPL-21", "1.00", items=100)
    assert len(small[1]) < SMALL_VALUE_LIMIT < len(large[1])
    produced = produce_raw(strict, ORDERS.raw_topic, [small, large, (b"O-RPL-22", b'{"ingestion_id": ')])
    time.sleep(0.01)
    after = datetime.now(UTC)
    bronze_available_now(spark, strict)  # the large order goes to the DLQ as oversized, the broken one as malformed
    assert copies(spark, strict, produced) == {(produced[0].partition, produced[0].offset): [None],
                                                (produced[1].partition, produced[1].offset): [],
                                                (produced[2].partition, produced[2].offset): []}
    held = watermarks(strict, ORDERS.raw_topic)

    result_file = tmp_path / "replay.json"
    env = {**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": strict.lakehouse.root}  # the default limit: the fix
    done = subprocess.run([STREAMLAKE, "replay", "--dataset", "orders", "--from-time", before.isoformat(), "--to-time", after.isoformat(),
                           "--replay-id", "replay-t3", "--result-file", str(result_file)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)

    assert done.returncode == 0, done.stdout[-3000:]
    runs = json.loads(result_file.read_text())["runs"]
    assert [r["job"] for r in runs] == ["replay", "silver", "gold"]
    replayed = runs[0]
    ours = {p.partition for p in produced}
    expected_from = {str(k): min(p.offset for p in produced if p.partition == k) if k in ours else held[k].high for k in held}
    expected_to = {str(k): max(p.offset for p in produced if p.partition == k) + 1 if k in ours else held[k].high for k in held}
    assert replayed["range"] == {"topic": ORDERS.raw_topic, "from_offsets": expected_from, "to_offsets": expected_to}
    assert (replayed["records_read"], replayed["inserted"], replayed["already_in_bronze"], replayed["dlq"]) == (
        3, 1, 1, {"malformed_json": 1})
    resolved = [json.loads(line) for line in done.stdout.splitlines() if '"replay range resolved"' in line]
    assert [(r["from_offsets"], r["to_offsets"]) for r in resolved] == [(expected_from, expected_to)]
    assert copies(spark, strict, produced) == {(produced[0].partition, produced[0].offset): [None],
                                                (produced[1].partition, produced[1].offset): ["replay-t3"],
                                                (produced[2].partition, produced[2].offset): []}
    broken = produced[2]
    again = [dlq_headers(m) for m in read_topic(strict, ORDERS.dlq_topic)
             if dlq_headers(m).get("dlq.source.offset") == str(broken.offset)
             and dlq_headers(m).get("dlq.source.partition") == str(broken.partition)]
    assert [h.get("dlq.replay.id") for h in again] == [None, "replay-t3"]
    assert again[1]["dlq.error.class"] == "malformed_json" and again[1]["dlq.job"] == "replay_batch/orders replay_id=replay-t3"
    # Silver for the ingestion date the replay added to: the order the stream took and the one the replay landed.
    assert _silver_orders(spark, strict, ["O-RPL-20", "O-RPL-21"]) == [
        ("O-RPL-20", "paid", Decimal("3.00"), produced[0].partition, produced[0].offset),
        ("O-RPL-21", "paid", Decimal("100.00"), produced[1].partition, produced[1].offset),
    ]


def test_a_replay_while_the_bronze_stream_writes_the_same_table_leaves_the_stream_running_and_each_record_once(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics
) -> None:
    lake = _settings(settings, tmp_path)
    first = produce_raw(lake, ORDERS.raw_topic, [order(f"O-RPL-3{n}", "2.00") for n in range(6)])
    bronze_available_now(spark, lake)
    lose_ingestion_date(spark, lake, datetime.now(UTC).date())
    from_offsets, to_offsets = offsets_range(first)

    query = start_bronze_query(spark, lake, "orders")
    later: list[Produced] = []
    producing = threading.Event()

    def produce_while_replaying() -> None:
        n = 0
        while not producing.is_set():
            later.extend(produce_raw(lake, ORDERS.raw_topic, [order(f"O-RPL-4{n}-{k}", "1.00") for k in range(5)]))
            n += 1
            time.sleep(0.3)

    producer = threading.Thread(target=produce_while_replaying, daemon=True)
    producer.start()
    try:
        time.sleep(3)  # the stream is committing batches of the new records
        [replayed] = _replay(spark, lake, "--from-offsets", from_offsets, "--to-offsets", to_offsets, "--no-rebuild")
        time.sleep(2)
    finally:
        producing.set()
        producer.join(30)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and query.isActive and not all(copies(spark, lake, later).values()):
            time.sleep(1)
        assert query.exception() is None and query.isActive  # the replay's MERGE never failed the stream
    finally:
        stop_gracefully(query)

    assert replayed.details["inserted"] == len(first)
    assert copies(spark, lake, first) == {(p.partition, p.offset): [replayed.run_id] for p in first}
    assert copies(spark, lake, later) == {(p.partition, p.offset): [None] for p in later}
