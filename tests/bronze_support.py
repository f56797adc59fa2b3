"""Helpers shared by the Bronze tests: producing records with known coordinates, reading the DLQ,
and the Parquet encodings of a table's files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition

from conf.settings import Settings


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
