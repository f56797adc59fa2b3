"""Producing contract events to their raw topic with the idempotent producer (demo, tests, bench).

The ingestion API has its own asynchronous path; this one is for tools that write a known set of
events and must know that every one of them is stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel

from conf.settings import Settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from jobs.kafka_produce import produce_all


class ProduceError(RuntimeError):
    pass


def produce_events(settings: Settings, dataset: str, events: Iterable[BaseModel], producer_id: str) -> int:
    """Produce every event to the dataset's raw topic; return the count once all are acknowledged."""
    contract = get_contract(dataset)
    producer = Producer(settings.kafka.producer_config(client_id=producer_id))
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{msg.topic()} key={msg.key()!r}: {err.str()}")

    wrapped = (wrap(contract, event, producer_id) for event in events)
    sent = produce_all(producer, contract.raw_topic, wrapped, on_delivery=on_delivery)
    remaining = producer.flush(60)
    if remaining or failures:
        raise ProduceError(f"{remaining} undelivered, {len(failures)} failed: {failures[:5]}")
    return sent
