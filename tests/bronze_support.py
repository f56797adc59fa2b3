"""Helpers shared by the Bronze tests (and the batch layers' tests, which start from Bronze):
producing records with known coordinates, reading the DLQ, the Parquet encodings of a table's
files, and landing records in Bronze directly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition
from pyspark.sql import DataFrame, SparkSession

from conf.settings import Settings
from contracts.registry import DatasetContract
from jobs.bronze_table import create_bronze_table
from pipelines.bronze import KAFKA_SOURCE_SCHEMA, to_bronze_rows, with_verdict


@dataclass(frozen=True)
class Produced:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def produce_raw(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> list[Produced]:
    """Produce records in order and return their coordinates from the delivery reports."""
    producer = Producer(settings.kafka.producer_config(client_id="tests"))
    delivered: dict[int, Produced] = {}
    errors = []

    def report(index: int, key, value):
        def on_delivery(err, msg) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[index] = Produced(msg.partition(), msg.offset(), key, value)
        return on_delivery

    for index, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, on_delivery=report(index, key, value))
    assert producer.flush(60) == 0 and not errors, errors
    return [delivered[i] for i in range(len(records))]


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list:
    """Every message currently on a topic (all partitions, from the low watermark)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "tests-reader", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {}
        assignment = []
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        consumer.assign(assignment)
        messages = []
        while ends:
            msg = consumer.poll(timeout_s)
            assert msg is not None, f"timed out reading {topic}; still waiting for partitions {sorted(ends)}"
            assert msg.error() is None, msg.error()
            messages.append(msg)
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return messages
    finally:
        consumer.close()


def dlq_headers(msg) -> dict[str, str]:
    return {k: v.decode() for k, v in msg.headers() or [] if k.startswith("dlq.")}


DICTIONARY_ENCODINGS = frozenset({"PLAIN_DICTIONARY", "RLE_DICTIONARY"})


def parquet_encodings(table_dir: Path) -> dict[str, set[str]]:
    """Each Parquet column of a local table's data files, with every encoding its chunks use."""
    encodings: dict[str, set[str]] = {}
    for data_file in table_dir.rglob("*.parquet"):
        metadata = pq.ParquetFile(data_file).metadata
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                encodings.setdefault(chunk.path_in_schema, set()).update(chunk.encodings)
    return encodings


@dataclass(frozen=True)
class KafkaRecord:
    """A raw-topic record with the coordinates and timestamp a test chooses."""

    key: bytes
    value: bytes
    partition: int
    offset: int
    timestamp: datetime


def write_bronze(
    spark: SparkSession, settings: Settings, contract: DatasetContract, records: list[KafkaRecord],
    change: Callable[[DataFrame], DataFrame] | None = None,
) -> None:
    """Land records in Bronze through Bronze's own verdict and shaping, without Kafka: for tests that
    need ingestion dates (Kafka timestamps) of their choosing. Every record must be valid; `change`
    may then alter the Bronze rows (e.g. a schema version Silver does not know yet)."""
    rows = [(r.key, r.value, contract.raw_topic, r.partition, r.offset, r.timestamp, 0, []) for r in records]
    judged_df = with_verdict(spark.createDataFrame(rows, KAFKA_SOURCE_SCHEMA), contract, settings.bronze.max_value_bytes)
    assert judged_df.filter("error IS NOT NULL").count() == 0, "write_bronze takes valid records only"
    table = settings.lakehouse.table_uri("bronze", contract.name)
    create_bronze_table(spark, contract, table)
    bronze_df = judged_df.transform(to_bronze_rows, contract, 0)
    (change(bronze_df) if change else bronze_df).write.format("delta").mode("append").save(table)
