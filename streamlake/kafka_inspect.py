"""Read-only views of topics (offsets per partition) for the demo, ops commands and tests."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from conf.settings import Settings


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    low: int
    high: int

    @property
    def messages(self) -> int:
        return self.high - self.low


def partition_offsets(settings: Settings, topic: str, timeout_s: float = 10.0) -> list[PartitionOffsets]:
    # No group is joined and nothing is committed: this consumer only asks for watermarks.
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "streamlake-inspector", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise LookupError(f"topic {topic}: {metadata.error.str()}")
        offsets = []
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            offsets.append(PartitionOffsets(topic, partition, low, high))
        return offsets
    finally:
        consumer.close()
