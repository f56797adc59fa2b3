"""DLQ inspection and re-drive against the real broker, Spark and Delta.

Each test has its own lakehouse (so its own Bronze checkpoint and re-drive ledger). The raw and DLQ
topics are the contract's, shared by the test session, so each test first lets its Bronze catch up
with what the raw topic already holds, then works on the DLQ records written after that moment
(`--since`) and on the coordinates it produced.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.envelope import wrap
from contracts.orders import OrderV1
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.dlq_inspect import run_inspect
from jobs.dlq_redrive import (
    Coordinates,
    CoordinatesFileError,
    OutgoingRecord,
    SendResult,
    kafka_sender,
    parse_coordinates,
    run_redrive,
)
from jobs.dlq_redrive import main as redrive_main
from jobs.ops_tables import DLQ_REDRIVES, ops_table_uri
from jobs.silver_batch import run_silver
from pipelines.dlq import RedriveHeader
from streamlake import synthetic
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import dlq_headers, read_topic
from tests.factories import envelope_value, order_poison_cases

ORDERS = get_contract("orders")
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")
SMALL_LIMIT = 1000  # the "bug": Bronze refuses orders with many items as oversized
ROOMY_LIMIT = 4096


@pytest.fixture(scope="module")
def topics(settings: Settings) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))


def lake_settings(settings: Settings, folder: Path, max_value_bytes: int) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": settings.kafka.bootstrap},
        lakehouse={"root": (folder / "lake").as_uri()},
        bronze={"max_value_bytes": max_value_bytes, "retry_backoff_s": 0.2},
    )


def run_bronze(spark: SparkSession, settings: Settings) -> None:
    query = start_bronze_query(spark, settings, "orders", available_now=True)
    query.awaitTermination()
    assert query.exception() is None


def caught_up(spark: SparkSession, settings: Settings) -> datetime:
    """Bronze judges what the raw topic already holds; DLQ records from now on are this test's."""
    run_bronze(spark, settings)
    return datetime.now(UTC)


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def produce(settings: Settings, records: list[Record]) -> list[Coordinates]:
    """Produce (key, value, headers) records to the raw topic; their coordinates, in order."""
    producer = Producer(settings.kafka.producer_config(client_id="tests"))
    landed: dict[int, Coordinates] = {}

    def report(index: int):
        def on_delivery(err, msg) -> None:
            assert err is None, err
            landed[index] = Coordinates(msg.topic(), msg.partition(), msg.offset())
        return on_delivery

    for index, (key, value, headers) in enumerate(records):
        producer.produce(ORDERS.raw_topic, key=key, value=value, headers=headers, on_delivery=report(index))
    assert producer.flush(60) == 0
    return [landed[i] for i in range(len(records))]


def big_orders(count: int) -> list[tuple[OrderV1, Record]]:
    """Valid orders with many items: over SMALL_LIMIT bytes, within ROOMY_LIMIT."""
    made = []
    for event in synthetic.orders(count, seed=31):
        items = event.items * (30 // len(event.items) + 1)
        amount = sum((i.quantity * i.unit_price for i in items), Decimal("0")).quantize(Decimal("0.01"))
        order = event.model_copy(update={"order_id": f"O-DLQ-{uuid.uuid4().hex[:10]}", "items": items, "amount": amount})
        key, value, headers = wrap(ORDERS, order, "tests")
        assert SMALL_LIMIT < len(value) < ROOMY_LIMIT, len(value)
        made.append((order, (key, value, headers)))
    return made


def dlq_of(settings: Settings, sources: list[Coordinates]) -> dict[Coordinates, list]:
    """The DLQ records (every copy) of these raw records."""
    found: dict[Coordinates, list] = {}
    for msg in read_topic(settings, ORDERS.dlq_topic):
        h = dlq_headers(msg)
        source = Coordinates(h["dlq.source.topic"], int(h["dlq.source.partition"]), int(h["dlq.source.offset"]))
        if source in sources:
            found.setdefault(source, []).append(msg)
    return found


def redriven_in_raw(settings: Settings, sources: list[Coordinates]) -> dict[Coordinates, list]:
    """The raw records a re-drive sent for these source coordinates (every copy)."""
    found: dict[Coordinates, list] = {}
    for msg in read_topic(settings, ORDERS.raw_topic):
        h = {k: v.decode() for k, v in msg.headers() or [] if k.startswith("redrive.")}
        if RedriveHeader.SOURCE_TOPIC in h:
            source = Coordinates(h[RedriveHeader.SOURCE_TOPIC], int(h[RedriveHeader.SOURCE_PARTITION]),
                                 int(h[RedriveHeader.SOURCE_OFFSET]))
            if source in sources:
                found.setdefault(source, []).append(msg)
    return found


def ledger_rows(spark: SparkSession, settings: Settings) -> dict[Coordinates, tuple]:
    rows = spark.read.format("delta").load(ops_table_uri(settings, DLQ_REDRIVES)).collect()
    return {Coordinates(r.source_topic, r.source_partition, r.source_offset): (r.state, r.raw_partition, r.raw_offset) for r in rows}


def bronze_offsets(spark: SparkSession, settings: Settings, order_ids: list[str]) -> dict[str, list[tuple[int, int]]]:
    bronze_df = spark.read.format("delta").load(settings.lakehouse.table_uri("bronze", "orders"))
    rows = bronze_df.where(F.col("order_id").isin(order_ids)).select("order_id", "kafka_partition", "kafka_offset").collect()
    found: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        found.setdefault(r.order_id, []).append((r.kafka_partition, r.kafka_offset))
    return found


def silver_rows(spark: SparkSession, settings: Settings, order_ids: list[str]) -> Counter:
    silver_df = spark.read.format("delta").load(settings.lakehouse.table_uri("silver", "orders"))
    return Counter(r.order_id for r in silver_df.where(F.col("order_id").isin(order_ids)).select("order_id").collect())


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_counts_each_poison_record_once_by_reason_with_a_duplicate_deduped(
    spark: SparkSession, settings: Settings, settings_env: dict[str, str], tmp_path: Path, topics, capsys,
) -> None:
    lake = lake_settings(settings, tmp_path, ROOMY_LIMIT)
    since = caught_up(spark, lake)
    first, second = synthetic.orders(2, seed=41)
    poison = order_poison_cases(ORDERS, second, ROOMY_LIMIT)
    sources = produce(lake, [(c.key, c.value, []) for c in poison] + [(*envelope_value(ORDERS, first), [])])[:-1]
    run_bronze(spark, lake)
    # The DLQ is at least once: a batch retried after its DLQ records went out sends them again.
    copy = dlq_of(lake, sources)[sources[0]][0]
    repeat = Producer(lake.kafka.producer_config(client_id="tests"))
    repeat.produce(ORDERS.dlq_topic, key=copy.key(), value=copy.value(), headers=copy.headers())
    assert repeat.flush(30) == 0

    output = tmp_path / "report.json"
    done = subprocess.run(
        [STREAMLAKE, "dlq", "inspect", "--dataset", "orders", "--since", since.isoformat(), "--output", str(output)],
        env={**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": lake.lakehouse.root}, capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(output.read_text())
    assert (report["dlq_records"], report["duplicates"], report["records"], report["redriven_records"]) == (9, 1, 8, 0)
    assert {r["error_class"]: r["records"] for r in report["by_reason"]} == dict(Counter(c.error_class for c in poison))
    assert sum(r["records"] for r in report["by_hour"]) == 8
    sampled = {Coordinates(**s["coordinates"]): s for samples in report["samples"].values() for s in samples}
    assert set(sampled) == set(sources)
    wrong_type = sampled[sources[[c.kind for c in poison].index("wrong_type")]]
    assert (wrong_type["key"], wrong_type["error_reason"]) == (poison[4].key.decode(), poison[4].reason)
    assert wrong_type["value_prefix"] == poison[4].value[:200].decode()
    assert ["dlq.error.class", "wrong_type"] in wrong_type["headers"]
    stored = list((tmp_path / "lake" / "_ops" / "dlq_reports" / "orders").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == report
    assert "8 records (9 DLQ records, duplicate copies removed: 1)" in done.stdout
    assert "out_of_contract" in done.stdout

    empty = run_inspect(spark, lake, "orders", since=datetime.now(UTC))
    assert (empty["records"], empty["by_reason"], empty["samples"]) == (0, [], {})
    assert "empty, no records to inspect" in capsys.readouterr().out


# -- re-drive -----------------------------------------------------------------------------------


def test_a_redrive_after_a_fix_lands_each_record_once_in_bronze_and_silver_even_run_twice(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics,
) -> None:
    small = lake_settings(settings, tmp_path, SMALL_LIMIT)
    since = caught_up(spark, small)
    orders = big_orders(2)
    sources = produce(small, [record for _, record in orders] + [(b"O-DLQ-X", b"nope", [])])
    run_bronze(spark, small)  # the two big orders go to the DLQ as oversized, the last as malformed_json
    raw_topic_before = len(read_topic(small, ORDERS.raw_topic))

    dry = run_redrive(spark, small, "orders", reason="oversized", since=since, dry_run=True)

    assert (dry.selected, [Coordinates(e["topic"], e["partition"], e["offset"]) for e in dry.to_send]) == (2, sorted(sources[:2]))
    assert len(read_topic(small, ORDERS.raw_topic)) == raw_topic_before
    assert not (tmp_path / "lake" / "_ops" / DLQ_REDRIVES).exists()

    fixed = lake_settings(settings, tmp_path, ROOMY_LIMIT)  # the fix: a limit that fits real orders
    first = run_redrive(spark, fixed, "orders", reason="oversized", since=since)
    second = run_redrive(spark, fixed, "orders", reason="oversized", since=since)

    assert (first.selected, first.sent, first.by_reason["oversized"]["sent"]) == (2, 2, 2)
    assert (second.selected, second.already_redriven, second.sent) == (2, 2, 0)
    sent = redriven_in_raw(fixed, sources[:2])
    assert {s: len(copies) for s, copies in sent.items()} == {sources[0]: 1, sources[1]: 1}
    dlq = dlq_of(fixed, sources[:2])
    for (_, (key, value, headers)), source in zip(orders, sources[:2], strict=True):
        msg, dlq_msg = sent[source][0], dlq[source][0]
        assert (msg.key(), msg.value(), msg.partition()) == (key, value, source.partition)
        assert msg.headers() == headers + [
            (RedriveHeader.ID, first.redrive_id.encode()), (RedriveHeader.DLQ_TOPIC, ORDERS.dlq_topic.encode()),
            (RedriveHeader.DLQ_PARTITION, str(dlq_msg.partition()).encode()), (RedriveHeader.DLQ_OFFSET, str(dlq_msg.offset()).encode()),
            (RedriveHeader.SOURCE_TOPIC, ORDERS.raw_topic.encode()), (RedriveHeader.SOURCE_PARTITION, str(source.partition).encode()),
            (RedriveHeader.SOURCE_OFFSET, str(source.offset).encode()),
        ]
    ledger = ledger_rows(spark, fixed)
    assert {s: ledger[s] for s in sources[:2]} == {s: ("sent", sent[s][0].partition(), sent[s][0].offset()) for s in sources[:2]}

    run_bronze(spark, fixed)
    order_ids = [order.order_id for order, _ in orders]
    landed = bronze_offsets(spark, fixed, order_ids)
    assert landed == {o.order_id: [(sent[s][0].partition(), sent[s][0].offset())] for (o, _), s in zip(orders, sources[:2], strict=True)}
    run_silver(spark, fixed, "orders", datetime.now(UTC).date())
    assert silver_rows(spark, fixed, order_ids) == Counter(order_ids)


class KilledError(Exception):
    """Stands in for the re-drive process dying."""


def test_a_redrive_killed_midway_sends_the_rest_once_on_the_next_run(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics,
) -> None:
    small = lake_settings(settings, tmp_path, SMALL_LIMIT)
    since = caught_up(spark, small)
    orders = big_orders(3)
    sources = produce(small, [record for _, record in orders])
    run_bronze(spark, small)
    fixed = lake_settings(settings, tmp_path, ROOMY_LIMIT)
    real_sender = kafka_sender(fixed, ORDERS.raw_topic, "tests-redrive")

    def killed_after_two(records) -> SendResult:
        # The intent is recorded, two records are acknowledged, then the process dies: their rows
        # are never marked sent.
        outgoing: list[OutgoingRecord] = list(records)
        assert real_sender(outgoing[:2]).error is None
        raise KilledError(f"killed after 2 of {len(outgoing)} records were acknowledged")

    with pytest.raises(KilledError):
        run_redrive(spark, fixed, "orders", reason="oversized", since=since, sender=killed_after_two)

    assert {s: ledger_rows(spark, fixed)[s] for s in sources} == {s: ("pending", None, None) for s in sources}
    first_sent = sorted(sources)[:2]
    assert sorted(redriven_in_raw(fixed, sources)) == first_sent

    again = run_redrive(spark, fixed, "orders", reason="oversized", since=since)
    once_more = run_redrive(spark, fixed, "orders", reason="oversized", since=since)

    assert (again.pending_found, again.pending_resent, again.sent) == (2, 1, 1)
    assert (once_more.already_redriven, once_more.sent, once_more.pending_found) == (3, 0, 0)
    sent = redriven_in_raw(fixed, sources)
    assert {s: len(copies) for s, copies in sent.items()} == {s: 1 for s in sources}
    ledger = ledger_rows(spark, fixed)
    assert {s: ledger[s] for s in sources} == {s: ("sent", sent[s][0].partition(), sent[s][0].offset()) for s in sources}

    run_bronze(spark, fixed)
    order_ids = [order.order_id for order, _ in orders]
    assert {o: len(at) for o, at in bronze_offsets(spark, fixed, order_ids).items()} == {o: 1 for o in order_ids}
    run_silver(spark, fixed, "orders", datetime.now(UTC).date())
    assert silver_rows(spark, fixed, order_ids) == Counter(order_ids)


def test_a_record_that_failed_again_after_a_redrive_is_redriven_only_when_named(
    spark: SparkSession, settings: Settings, tmp_path: Path, topics,
) -> None:
    small = lake_settings(settings, tmp_path, SMALL_LIMIT)
    since = caught_up(spark, small)
    [(order, record)] = big_orders(1)
    [source] = produce(small, [record])
    run_bronze(spark, small)
    run_redrive(spark, small, "orders", reason="oversized", since=since)  # re-driven before the fix
    [first_redrive] = redriven_in_raw(small, [source])[source]
    run_bronze(spark, small)  # ... so it fails again and comes back to the DLQ, re-drive headers and all
    again_source = Coordinates(ORDERS.raw_topic, first_redrive.partition(), first_redrive.offset())

    report = run_inspect(spark, small, "orders", since=since)
    by_reason = run_redrive(spark, small, "orders", reason="oversized", since=since)

    assert (report["records"], report["redriven_records"]) == (2, 1)
    assert (by_reason.selected, by_reason.already_redriven, by_reason.failed_again, by_reason.sent) == (2, 1, 1, 0)

    fixed = lake_settings(settings, tmp_path, ROOMY_LIMIT)
    named = run_redrive(spark, fixed, "orders", coordinates=[again_source])

    assert (named.selected, named.sent) == (1, 1)
    [resent] = redriven_in_raw(fixed, [again_source])[again_source]
    assert resent.value() == record[1]
    redrive_headers = [(k, v.decode()) for k, v in resent.headers() if k.startswith("redrive.")]
    assert [k for k, _ in redrive_headers] == list(RedriveHeader.ALL)  # the earlier re-drive's headers replaced, not repeated
    assert dict(redrive_headers)[RedriveHeader.ID] == named.redrive_id
    run_bronze(spark, fixed)
    assert bronze_offsets(spark, fixed, [order.order_id]) == {order.order_id: [(resent.partition(), resent.offset())]}


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), [
    ("{}", "coordinates.json: must be a JSON list"),
    ("[{", "coordinates.json: not JSON"),
    ('[{"topic": "streamlake.orders.raw", "partition": 0, "offset": 1}, {"topic": "streamlake.orders.raw", "partition": 0}]',
     'coordinates.json: entry 1 ({"topic": "streamlake.orders.raw", "partition": 0}): must be an object with exactly'),
    ('[{"topic": "streamlake.orders.raw", "partition": 0, "offset": -1}]', "offset must be an integer >= 0"),
    ('[{"topic": "streamlake.orders.raw", "partition": true, "offset": 1}]', "partition must be an integer >= 0"),
    ('[{"topic": "streamlake.user_events.raw", "partition": 0, "offset": 1}]',
     "topic must be the dataset's raw topic streamlake.orders.raw"),
    ('[{"topic": "streamlake.orders.raw", "partition": 0, "offset": 1}, {"topic": "streamlake.orders.raw", "partition": 0, "offset": 1}]',
     "entry 1 ("),
])
def test_a_bad_coordinates_file_is_refused_naming_the_entry(text: str, error: str) -> None:
    with pytest.raises(CoordinatesFileError) as refused:
        parse_coordinates(text, "coordinates.json", ORDERS.raw_topic)
    assert error in str(refused.value)


def test_a_coordinates_file_lists_source_coordinates() -> None:
    text = json.dumps([{"topic": ORDERS.raw_topic, "partition": 2, "offset": 17}, {"topic": ORDERS.raw_topic, "partition": 0, "offset": 3}])
    assert parse_coordinates(text, "c.json", ORDERS.raw_topic) == [(ORDERS.raw_topic, 2, 17), (ORDERS.raw_topic, 0, 3)]


def test_bad_redrive_arguments_exit_2_before_spark_starts(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "coordinates.json"
    bad.write_text('[{"topic": "streamlake.orders.raw", "partition": 0, "offset": "7"}]')

    with pytest.raises(SystemExit) as job_exit:
        redrive_main(["--dataset", "orders", "--coordinates", str(bad)])
    assert job_exit.value.code == 2
    assert f"argument --coordinates: {bad}: entry 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as both:
        redrive_main(["--dataset", "orders", "--reason", "oversized", "--coordinates", str(bad)])
    assert both.value.code == 2

    cli = subprocess.run([STREAMLAKE, "dlq", "redrive", "--dataset", "orders", "--coordinates", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2
    assert f"argument --coordinates: {bad}: entry 0" in cli.stderr and "offset must be an integer >= 0" in cli.stderr
    since = subprocess.run([STREAMLAKE, "dlq", "inspect", "--dataset", "orders", "--since", "yesterday"],
                           capture_output=True, text=True, timeout=60)
    assert (since.returncode, "argument --since: not an ISO-8601 time: 'yesterday'" in since.stderr) == (2, True)
