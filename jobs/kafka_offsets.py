"""Kafka offsets for bounded reads: watermarks, offsets for times, and checked ranges.

A bounded read (a replay, a DLQ inspection) names explicit per-partition offsets before it reads
anything: a time is resolved once to offsets (Kafka's offsets-for-times), so what was read can be
logged, recorded and read again exactly. Read-only: no group is joined and nothing is committed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from conf.settings import Settings

_LEADER_NOT_YET = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


class OffsetRangeError(ValueError):
    """A requested range names a partition or offsets Kafka does not hold; the message says which."""


@dataclass(frozen=True)
class Watermarks:
    partition: int
    low: int  # the first offset Kafka still holds
    high: int  # the offset the next record will get

    @property
    def messages(self) -> int:
        return self.high - self.low


@dataclass(frozen=True)
class OffsetRange:
    """Per partition, offsets [start, end): the end is exclusive."""

    topic: str
    start: dict[int, int]
    end: dict[int, int]

    @property
    def partitions(self) -> list[int]:
        return sorted(self.start)

    @property
    def records(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.partitions)

    def spark_options(self) -> dict[str, str]:
        """Spark's Kafka source options for exactly this range (`assign`, not `subscribe`, so that
        partitions outside it are not read)."""
        return {
            "assign": json.dumps({self.topic: self.partitions}),
            "startingOffsets": json.dumps({self.topic: {str(p): self.start[p] for p in self.partitions}}),
            "endingOffsets": json.dumps({self.topic: {str(p): self.end[p] for p in self.partitions}}),
        }

    def as_json(self) -> dict:
        return {"topic": self.topic, "from_offsets": {str(p): self.start[p] for p in self.partitions},
                "to_offsets": {str(p): self.end[p] for p in self.partitions}}

    @classmethod
    def from_json(cls, data: dict) -> OffsetRange:
        return cls(data["topic"], {int(p): int(o) for p, o in data["from_offsets"].items()},
                   {int(p): int(o) for p, o in data["to_offsets"].items()})


def _consumer(settings: Settings) -> Consumer:
    return Consumer({**settings.kafka.client_config(), "group.id": "streamlake-offsets", "enable.auto.commit": False})


def watermarks(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, Watermarks]:
    """Every partition of `topic` with the offsets Kafka holds; LookupError when it has none."""
    consumer = _consumer(settings)
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise LookupError(f"topic {topic}: {metadata.error.str()}")
        found = {}
        for partition in sorted(metadata.partitions):
            while True:
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
                    break
                except KafkaException as exc:
                    # A topic created a moment ago answers "not leader" until its leaders are elected.
                    if exc.args[0].code() not in _LEADER_NOT_YET or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            found[partition] = Watermarks(partition, low, high)
        return found
    finally:
        consumer.close()


def offsets_for_time(settings: Settings, topic: str, partitions: list[int], at: datetime, timeout_s: float = 10.0) -> dict[int, int]:
    """Per partition, the first offset whose record's timestamp is at or after `at` (the high
    watermark when there is none)."""
    millis = int(at.timestamp() * 1000)
    consumer = _consumer(settings)
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, p, millis) for p in partitions], timeout=timeout_s)
        resolved = {}
        for tp in found:
            if tp.error is not None:
                raise LookupError(f"topic {topic} partition {tp.partition}: {tp.error}")
            resolved[tp.partition] = tp.offset if tp.offset >= 0 else consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=timeout_s)[1]
        return resolved
    finally:
        consumer.close()


def checked_range(topic: str, start: dict[int, int], end: dict[int, int], held: dict[int, Watermarks]) -> OffsetRange:
    """The range, once every partition exists and [start, end) lies within what Kafka holds."""
    if set(start) != set(end):
        raise OffsetRangeError(f"the start names partitions {sorted(start)} and the end {sorted(end)}: they must be the same")
    for partition in sorted(start):
        if partition not in held:
            raise OffsetRangeError(f"topic {topic} has no partition {partition} (partitions: {sorted(held)})")
        marks = held[partition]
        if start[partition] > end[partition]:
            raise OffsetRangeError(f"{topic} partition {partition}: start offset {start[partition]} is after end offset {end[partition]}")
        if start[partition] < marks.low or end[partition] > marks.high:
            raise OffsetRangeError(
                f"{topic} partition {partition}: offsets [{start[partition]}, {end[partition]}) are outside what Kafka "
                f"holds, [{marks.low}, {marks.high})"
            )
    return OffsetRange(topic, dict(start), dict(end))
