"""Bronze streaming against the real broker, Spark and Delta: exact rows, exact DLQ records."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from confluent_kafka import OFFSET_END, TopicPartition
from confluent_kafka.admin import AdminClient
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from conf.settings import Settings, load_settings
from contracts.registry import get_contract
from jobs.bronze_stream import BronzeBatchWriter, start_bronze_query
from jobs.bronze_table import create_bronze_table
from jobs.lakehouse_io import CheckpointMismatchError, StoreUnavailableError, delta_txn_version
from pipelines.bronze import KAFKA_SOURCE_SCHEMA
from streamlake import synthetic
from streamlake.demo import format_summary
from streamlake.ports import free_port
from streamlake.reconcile import DatasetReconciliation, reconcile_dataset
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import DICTIONARY_ENCODINGS, dlq_headers, parquet_encodings, produce_raw, read_topic
from tests.factories import envelope_value, order_poison_cases

MAX_VALUE_BYTES = 4096


@pytest.fixture(scope="module")
def topics(settings: Settings) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))


def bronze_settings_for(settings: Settings, folder: Path) -> Settings:
    """The session broker, a fresh lakehouse (and so a fresh checkpoint) under `folder`."""
    return load_settings(
        kafka={"bootstrap_servers": settings.kafka.bootstrap},
        lakehouse={"root": (folder / "lake").as_uri()},
        bronze={"max_value_bytes": MAX_VALUE_BYTES, "retry_backoff_s": 0.2},
    )


@pytest.fixture
def bronze_settings(settings: Settings, tmp_path: Path, topics) -> Settings:
    return bronze_settings_for(settings, tmp_path)


def run_available_now(spark: SparkSession, settings: Settings, dataset: str) -> None:
    query = start_bronze_query(spark, settings, dataset, available_now=True)
    query.awaitTermination()
    assert query.exception() is None


ORDERS = get_contract("orders")
def test_valid_rows_land_in_bronze_and_each_poison_kind_in_the_dlq(spark: SparkSession, bronze_settings: Settings) -> None:
    first, second, third = synthetic.orders(3, seed=101)
    poison = order_poison_cases(ORDERS, second, MAX_VALUE_BYTES)
    records = [envelope_value(ORDERS, first)] + [(case.key, case.value) for case in poison] + [envelope_value(ORDERS, third)]
    produced = produce_raw(bronze_settings, ORDERS.raw_topic, records)
    valid_coords = {(produced[0].partition, produced[0].offset), (produced[-1].partition, produced[-1].offset)}

    run_available_now(spark, bronze_settings, "orders")

    bronze_df = spark.read.format("delta").load(bronze_settings.lakehouse.table_uri("bronze", "orders"))
    ours = [r for r in bronze_df.collect() if (r.kafka_partition, r.kafka_offset) in valid_coords]
    assert sorted(r.order_id for r in ours) == sorted([first.order_id, third.order_id])
    row = next(r for r in ours if r.order_id == first.order_id)
    assert (row.customer_id, row.status, row.amount, row.currency, row.event_timestamp.isoformat()) == (
        first.customer_id, first.status, first.amount, first.currency, "2026-01-01T00:00:00"
    )
    assert [(i.sku, i.quantity, i.unit_price) for i in row.items] == [(i.sku, i.quantity, i.unit_price) for i in first.items]
    assert row.raw_value == records[0][1].decode()
    assert (row.kafka_key, row.kafka_topic, row.dataset, row.schema_version, row.producer) == (
        first.order_id, ORDERS.raw_topic, "orders", "v1", "tests"
    )
    assert row.ingestion_id == json.loads(records[0][1])["ingestion_id"]

    dlq = {(int(h["dlq.source.partition"]), int(h["dlq.source.offset"])): (m, h)
           for m in read_topic(bronze_settings, ORDERS.dlq_topic) for h in [dlq_headers(m)]}
    for case, sent in zip(poison, produced[1:-1], strict=True):
        msg, headers = dlq[(sent.partition, sent.offset)]
        assert (msg.key(), msg.value()) == (case.key, case.value), case.kind  # bytes untouched
        assert {k: v for k, v in headers.items() if k != "dlq.failed.at"} == {
            "dlq.error.class": case.error_class,
            "dlq.error.reason": case.reason,
            "dlq.source.topic": ORDERS.raw_topic,
            "dlq.source.partition": str(sent.partition),
            "dlq.source.offset": str(sent.offset),
            "dlq.source.timestamp": headers["dlq.source.timestamp"],
            "dlq.job": "bronze_stream/orders app_id=streamlake.bronze.orders.1",
        }, case.kind
        assert headers["dlq.failed.at"].endswith("Z"), case.kind


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class OrdersRun:
    """One Bronze run over 20 orders and a poison pill, restarted once, shared by the tests below."""

    settings: Settings
    reconciliation: DatasetReconciliation
    batch_logs: list[logging.LogRecord]


@pytest.fixture(scope="module")
def orders_run(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory, topics) -> OrdersRun:
    run_settings = bronze_settings_for(settings, tmp_path_factory.mktemp("orders-run"))
    records = [envelope_value(ORDERS, e) for e in synthetic.orders(20, seed=5)] + [(b"O-X", b"nope")]
    produce_raw(run_settings, ORDERS.raw_topic, records)
    kept, bronze_log = _Kept(), logging.getLogger("streamlake.bronze")
    level = bronze_log.level
    bronze_log.addHandler(kept)
    bronze_log.setLevel(logging.INFO)
    try:
        run_available_now(spark, run_settings, "orders")
        run_available_now(spark, run_settings, "orders")  # a restart finds nothing new to do
    finally:
        bronze_log.removeHandler(kept)
        bronze_log.setLevel(level)
    batch_logs = [r for r in kept.records if r.getMessage() == "bronze batch committed"]
    return OrdersRun(run_settings, reconcile_dataset(spark, run_settings, ORDERS), batch_logs)


def test_every_offset_is_in_bronze_or_the_dlq_exactly_once(orders_run: OrdersRun) -> None:
    assert orders_run.reconciliation.reconciled, format_summary(orders_run.reconciliation)
    assert orders_run.reconciliation.messages > 0


def test_the_batch_logs_count_what_the_tasks_judged(orders_run: OrdersRun) -> None:
    # Every offset once, each invalid one by its class, each partition's first and last offset.
    result, batches = orders_run.reconciliation, orders_run.batch_logs
    dlq_classes = {(int(h["dlq.source.partition"]), int(h["dlq.source.offset"])): h["dlq.error.class"]
                   for h in map(dlq_headers, read_topic(orders_run.settings, ORDERS.dlq_topic))}
    assert sum(b.rows for b in batches) == result.messages
    assert sum(b.valid for b in batches) == result.bronze_rows
    assert sum((Counter(b.dlq_reasons) for b in batches), Counter()) == Counter(dlq_classes.values())
    first_and_last = {str(p.partition): [p.low, p.high - 1] for p in result.partitions if p.messages}
    assert {p: [min(b.offsets[p][0] for b in batches if p in b.offsets), max(b.offsets[p][1] for b in batches if p in b.offsets)]
            for p in first_and_last} == first_and_last


def test_the_tables_properties_reach_its_parquet_writer(orders_run: OrdersRun) -> None:
    # A dictionary for the contract's closed vocabulary (status), plain encoding for the rest, even
    # where values repeat (currency).
    encodings = parquet_encodings(Path(urlparse(orders_run.settings.lakehouse.table_uri("bronze", "orders")).path))
    assert {column: bool(encodings[column] & DICTIONARY_ENCODINGS) for column in ("status", "currency", "raw_value", "order_id")} == {
        "status": True, "currency": False, "raw_value": False, "order_id": False,
    }


def test_a_reset_checkpoint_with_the_same_app_id_refuses_to_start(
    spark: SparkSession, bronze_settings: Settings, tmp_path: Path
) -> None:
    produce_raw(bronze_settings, ORDERS.raw_topic, [envelope_value(ORDERS, next(synthetic.orders(1, seed=9)))])
    run_available_now(spark, bronze_settings, "orders")
    run_available_now(spark, bronze_settings, "orders")
    checkpoint = Path(bronze_settings.lakehouse.checkpoint_uri("bronze", "orders").removeprefix("file://"))
    checkpoint.rename(tmp_path / "old-checkpoint")  # an operator "resets" the checkpoint
    with pytest.raises(CheckpointMismatchError, match=r"A reset checkpoint needs a new app id"):
        start_bronze_query(spark, bronze_settings, "orders", available_now=True)


def test_a_batch_whose_dlq_records_are_not_acknowledged_commits_nothing(spark: SparkSession, bronze_settings: Settings) -> None:
    settings = bronze_settings.model_copy(update={"bronze": bronze_settings.bronze.model_copy(update={"write_attempts": 2})})
    writer = BronzeBatchWriter(settings, ORDERS)
    # Nothing listens on the DLQ producer's port: its records are never acknowledged.
    writer.dlq = writer.dlq._replace(
        producer_config={**writer.dlq.producer_config, "bootstrap.servers": f"127.0.0.1:{free_port()}", "delivery.timeout.ms": 1500}
    )
    create_bronze_table(spark, ORDERS, writer.table)
    key, value = envelope_value(ORDERS, next(synthetic.orders(1, seed=3)))
    batch_df = spark.createDataFrame(
        [(key, value, ORDERS.raw_topic, 0, 0, None, 0, []), (b"O-X", b"nope", ORDERS.raw_topic, 0, 1, None, 0, [])],
        KAFKA_SOURCE_SCHEMA,
    )

    with pytest.raises(StoreUnavailableError) as failure:
        writer(batch_df, 0)

    assert str(failure.value).startswith(
        f"Bronze Delta write to {writer.table} (with its DLQ records to {ORDERS.dlq_topic}) failed 2 times, giving up: "
    )
    assert f"jobs.bronze_dlq.DlqNotAcknowledgedError: 1 of 1 DLQ records to {ORDERS.dlq_topic} not acknowledged (" in str(failure.value)
    assert delta_txn_version(spark, writer.table, writer.app_id) is None  # the valid row was not committed either
    assert spark.read.format("delta").load(writer.table).count() == 0


def _age_out_everything(settings: Settings, topic: str) -> None:
    """What retention does to old segments: every record now on `topic` is deleted for good.

    The topic is the session broker's: the tests after this one find it starting at the new low
    watermark, as a deployment does after retention (the demo's reconciliation allows for it).
    """
    admin = AdminClient(settings.kafka.client_config())
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    futures = admin.delete_records([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    for future in futures.values():
        future.result(timeout=30)


def _bronze_order_ids(spark: SparkSession, settings: Settings) -> set[str]:
    return {r.order_id for r in spark.read.format("delta").load(settings.lakehouse.table_uri("bronze", "orders")).collect()}


def test_offsets_gone_from_kafka_stop_the_job_unless_explicitly_allowed(
    spark: SparkSession, bronze_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    seen, aged_out, kept = (list(synthetic.orders(3, seed=seed)) for seed in (61, 62, 63))
    produce_raw(bronze_settings, ORDERS.raw_topic, [envelope_value(ORDERS, e) for e in seen])
    run_available_now(spark, bronze_settings, "orders")
    lost = produce_raw(bronze_settings, ORDERS.raw_topic, [envelope_value(ORDERS, e) for e in aged_out])
    _age_out_everything(bronze_settings, ORDERS.raw_topic)  # before the job could read `aged_out`
    produce_raw(bronze_settings, ORDERS.raw_topic, [envelope_value(ORDERS, e) for e in kept])
    # Per partition, the offset the checkpoint expects next, which Kafka no longer has.
    first_lost = {p: min(r.offset for r in lost if r.partition == p) for p in {r.partition for r in lost}}

    # By default the job stops at once (no retries: they cannot bring the records back), naming the offsets.
    query = start_bronze_query(spark, bronze_settings, "orders", available_now=True)
    with caplog.at_level(logging.WARNING, logger="jobs.lakehouse_io"), pytest.raises(StreamingQueryException) as stopped:
        query.awaitTermination()
    message = re.search(r"KafkaDataLossError: (.*)", str(stopped.value))[1]
    unreadable = re.fullmatch(
        rf"Bronze Delta write to {re.escape(bronze_settings.lakehouse.table_uri('bronze', 'orders'))} \(with its DLQ records "
        rf"to {ORDERS.dlq_topic}\) stopped: offsets it needs are no longer in Kafka \(Could not read records in offset "
        rf"\[(\d+), (\d+)\) for topic partition {re.escape(ORDERS.raw_topic)}-(\d+)\); Kafka's retention or a deleted topic "
        r"removed them, and retrying cannot bring them back\. See docs/runbook\.md, 'Offsets fell out of retention' "
        r"\(setting bronze\.fail_on_data_loss\)",
        message,
    )
    assert unreadable is not None, message
    first_missing, partition = int(unreadable[1]), int(unreadable[3])
    assert first_missing == first_lost[partition]
    assert [r.getMessage() for r in caplog.records if r.name == "jobs.lakehouse_io"] == []  # no "write failed, retrying"
    ours = {e.order_id for e in seen + aged_out + kept}
    assert _bronze_order_ids(spark, bronze_settings) & ours == {e.order_id for e in seen}

    # Told explicitly, the job goes on from what Kafka still has: the aged-out records are the gap.
    allowed = bronze_settings.model_copy(update={"bronze": bronze_settings.bronze.model_copy(update={"fail_on_data_loss": False})})
    run_available_now(spark, allowed, "orders")
    assert _bronze_order_ids(spark, bronze_settings) & ours == {e.order_id for e in seen + kept}
