"""Helpers of the ingestion API tests (their fixtures are in conftest.py).

The API runs in-process (httpx over ASGI, with the app's real lifespan and so its real producer)
against the session broker, or against a throwaway broker when a test stops Kafka. Records are read
back from the topic with a real consumer.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI

from conf.settings import Settings, load_settings
from ingest_api.app import create_app
from streamlake.topics import apply_topics, declared_topics

BASE_URL = "http://ingest.test"
EVENTS_URL = "/v1/datasets/user_events/events"
BATCH_URL = "/v1/datasets/user_events/events:batch"
ORDERS_URL = "/v1/datasets/orders/events"
USER_EVENTS_TOPIC = "streamlake.user_events.raw"
ORDERS_TOPIC = "streamlake.orders.raw"
RAW_PARTITIONS = 3


def settings_for(bootstrap: str, **api: Any) -> Settings:
    return load_settings(kafka={"bootstrap_servers": bootstrap}, api=api)


def apply_raw_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Apply the declared topics; return once every raw partition has a leader that answers."""
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    probe = Consumer({**settings.kafka.client_config(), "group.id": "test-topic-probe"})
    deadline = time.monotonic() + timeout_s
    try:
        for topic in (USER_EVENTS_TOPIC, ORDERS_TOPIC):
            for partition in range(RAW_PARTITIONS):
                while True:
                    try:
                        probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                        break
                    except KafkaException:  # a new topic's leader is elected a moment after creation
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
    finally:
        probe.close()


def serving(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving_app(create_app(settings))


@asynccontextmanager
async def serving_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (so its one producer) running, and a client talking to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60) as client:
            yield client


def read_record(consumer: Consumer, topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The record at exactly topic/partition/offset: key, parsed value, headers."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    message = consumer.poll(timeout=30)
    assert message is not None, f"no record at {topic}/{partition}/{offset} within 30 s"
    assert message.error() is None, message.error()
    assert (message.topic(), message.partition(), message.offset()) == (topic, partition, offset)
    return {"key": message.key(), "value": json.loads(message.value()), "headers": message.headers()}


def read_all(consumer: Consumer, topic: str, partitions: int = RAW_PARTITIONS) -> list[dict[str, Any]]:
    """Every JSON record of the topic up to the end offsets seen now, with its partition and offset."""
    records = []
    for partition in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, low)])
        for _ in range(high - low):
            message = consumer.poll(timeout=30)
            assert message is not None, f"{topic}/{partition}: fewer than {high - low} records within 30 s"
            assert message.error() is None, message.error()
            try:
                value = json.loads(message.value())
            except (TypeError, ValueError):
                # The raw topic is shared: other tests produce poison pills to it directly, as any
                # producer may (Bronze's DLQ handles them). They are not the API's records.
                continue
            records.append({"partition": partition, "offset": message.offset(), "key": message.key(), "value": value})
    return records


def end_offsets(consumer: Consumer, topic: str, partitions: int = RAW_PARTITIONS) -> list[int]:
    return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
