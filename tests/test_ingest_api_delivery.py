"""Never a 2xx for an event Kafka does not hold: unreachable Kafka, a full queue, a broker that
stops and comes back, and readiness that follows the broker.

Tests that stop Kafka use a broker of their own (never the session broker), restarted in `finally`
when a test stops it, and stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conf.settings import Settings
from ingest_api.app import create_app
from ingest_api.producer import DeliveryBridge
from streamlake.kafka_broker import LocalBroker
from streamlake.ports import free_port
from tests.conftest import running_broker
from tests.factories import order_event, user_event
from tests.ingest_api_support import (
    BATCH_URL,
    EVENTS_URL,
    ORDERS_TOPIC,
    ORDERS_URL,
    USER_EVENTS_TOPIC,
    apply_raw_topics,
    read_all,
    serving,
    serving_app,
    settings_for,
)

pytestmark = pytest.mark.anyio

RETRY_NOTE = "Retry later: a retry may store an event twice, and Silver keeps one per event id"
TIMED_OUT = {"type": "_MSG_TIMED_OUT", "message": "Local: Message timed out"}


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("ingest-kafka")) as broker:
        yield broker


def nothing_listening() -> str:
    return f"127.0.0.1:{free_port()}"


def restart(broker: LocalBroker) -> None:
    broker.start(tie_to_parent=True)


@contextmanager
def topic_config(settings: Settings, topic: str, key: str, value: str) -> Iterator[None]:
    """The topic with one config overridden, and the override removed afterwards."""
    admin = AdminClient(settings.kafka.client_config())

    def alter(operation: AlterConfigOpType) -> None:
        entry = ConfigEntry(key, value, incremental_operation=operation)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    alter(AlterConfigOpType.SET)
    try:
        yield
    finally:
        alter(AlterConfigOpType.DELETE)


async def test_unreachable_kafka_is_503_with_retry_after_and_no_acknowledgement() -> None:
    settings = settings_for(nothing_listening(), delivery_timeout_s=1)
    async with serving(settings) as client:
        response = await client.post(EVENTS_URL, json=user_event())

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {
        "error": "kafka_delivery_timeout",
        "message": f"Kafka did not confirm the events in time; the event is not acknowledged. {RETRY_NOTE}",
        "errors": [TIMED_OUT],
    }


async def test_a_batch_kafka_does_not_store_names_every_failing_index_and_acknowledges_none() -> None:
    settings = settings_for(nothing_listening(), delivery_timeout_s=1)
    async with serving(settings) as client:
        response = await client.post(BATCH_URL, json=[user_event(), user_event(), user_event()])

    assert response.status_code == 503
    assert response.json() == {
        "error": "kafka_delivery_timeout",
        "message": f"Kafka did not confirm the events in time; none of the 3 events is acknowledged. {RETRY_NOTE}",
        "errors": [{"index": i, **TIMED_OUT} for i in range(3)],
    }


async def test_a_full_producer_queue_is_503_at_once() -> None:
    app = create_app(settings_for(nothing_listening(), delivery_timeout_s=3, producer_queue_max_messages=1))
    async with serving_app(app) as client:
        waiting = asyncio.create_task(client.post(EVENTS_URL, json=user_event()))
        while not app.state.ingest.bridge.requests_waiting:  # the first event now holds the whole queue
            await asyncio.sleep(0.01)
        started = time.monotonic()
        response = await client.post(EVENTS_URL, json=user_event())
        elapsed = time.monotonic() - started
        first = await waiting

    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.json() == {
        "error": "kafka_queue_full",
        "message": f"Kafka is not keeping up (the producer's queue is full); the event is not acknowledged. {RETRY_NOTE}",
        "errors": [{"type": "_QUEUE_FULL", "message": "the producer's local queue is full"}],
    }
    assert elapsed < 1.0
    assert first.status_code == 503


async def test_a_record_the_broker_refuses_is_not_acknowledged(own_broker: LocalBroker) -> None:
    settings = settings_for(own_broker.bootstrap)
    apply_raw_topics(settings)
    # Random SKUs so that lz4 cannot shrink the batch under the topic's limit.
    items = [{"sku": uuid.uuid4().hex * 2, "quantity": 1, "unit_price": "1.00"} for _ in range(40)]
    async with serving(settings) as client:
        # This module's broker may still be loading its coordinators (its first idempotent
        # producer is answered "Coordinator load in progress", a 503); only the size is tested.
        warm = await _post_until_accepted(client, deadline_s=60, url=ORDERS_URL, event=order_event)
        assert warm.status_code == 202, warm.text
        with topic_config(settings, ORDERS_TOPIC, "max.message.bytes", "1000"):
            response = await client.post(ORDERS_URL, json=order_event(items=items))

    assert response.status_code == 413
    assert response.json() == {
        "error": "event_too_large",
        "message": "an event is larger than Kafka accepts for one record; the event is not acknowledged",
        "errors": [{"type": "MSG_SIZE_TOO_LARGE", "message": "Broker: Message size too large"}],
    }


async def _post_until_accepted(
    client: httpx.AsyncClient, deadline_s: float, url: str = EVENTS_URL, event: Callable[[], dict] = user_event
) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        response = await client.post(url, json=event())
        if response.status_code == 202 or time.monotonic() > deadline:
            return response


async def test_a_stopped_broker_gives_503s_then_every_acknowledged_event_is_stored_exactly_once(
    own_broker: LocalBroker,
) -> None:
    settings = settings_for(own_broker.bootstrap, delivery_timeout_s=2)
    apply_raw_topics(settings)
    acknowledged: list[dict] = []
    async with serving(settings) as client:
        before = [await client.post(EVENTS_URL, json=user_event(user_id=i)) for i in range(20)]
        own_broker.stop(timeout_s=30)
        try:
            during = await asyncio.gather(*(client.post(EVENTS_URL, json=user_event()) for _ in range(5)))
        finally:
            restart(own_broker)
        recovered = await _post_until_accepted(client, deadline_s=60)
        after = [await client.post(EVENTS_URL, json=user_event(user_id=i)) for i in range(20)]

    assert [r.status_code for r in before] == [202] * 20
    assert {(r.status_code, r.headers["Retry-After"], r.json()["error"]) for r in during} == {
        (503, "1", "kafka_delivery_timeout")
    }
    assert recovered.status_code == 202
    assert [r.status_code for r in after] == [202] * 20
    for response in [*before, recovered, *after]:
        acknowledged.extend(response.json()["events"])
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "test-exactly-once-check"})
    try:
        stored = read_all(consumer, USER_EVENTS_TOPIC)
    finally:
        consumer.close()
    copies = Counter(r["value"]["ingestion_id"] for r in stored)
    where = {r["value"]["ingestion_id"]: (r["partition"], r["offset"]) for r in stored}
    assert {a["ingestion_id"]: copies[a["ingestion_id"]] for a in acknowledged} == {
        a["ingestion_id"]: 1 for a in acknowledged
    }
    assert {a["ingestion_id"]: where[a["ingestion_id"]] for a in acknowledged} == {
        a["ingestion_id"]: (a["partition"], a["offset"]) for a in acknowledged
    }


async def test_readiness_follows_the_broker(own_broker: LocalBroker) -> None:
    settings = settings_for(own_broker.bootstrap)
    apply_raw_topics(settings)
    async with serving(settings) as client:
        up = await client.get("/readyz")
        own_broker.stop(timeout_s=30)
        try:
            down = await client.get("/readyz")
            alive_while_down = await client.get("/healthz")
        finally:
            restart(own_broker)
        back = await client.get("/readyz")

    ready = {"status": "ready", "topics": {"streamlake.user_events.raw": 3, "streamlake.orders.raw": 3}}
    assert (up.status_code, up.json()) == (200, ready)
    assert down.status_code == 503
    assert down.json() == {
        "error": "not_ready",
        "message": f"Kafka at {own_broker.bootstrap} does not answer metadata: "
        "Failed to get metadata: Local: Broker transport failure",
    }
    assert (alive_while_down.status_code, alive_while_down.json()) == (200, {"status": "alive"})
    assert (back.status_code, back.json()) == (200, ready)


async def test_not_ready_while_the_raw_topics_do_not_exist(tmp_path: Path) -> None:
    with running_broker(tmp_path / "kafka") as broker:
        async with serving(settings_for(broker.bootstrap)) as client:
            response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "error": "not_ready",
        "message": f"Kafka at {broker.bootstrap} has no topic streamlake.user_events.raw, streamlake.orders.raw; "
        "run `streamlake topics apply`",
    }


def test_the_api_producer_is_idempotent_with_acks_all_and_lingers_as_configured(settings: Settings) -> None:
    bridge = DeliveryBridge(settings_for(settings.kafka.bootstrap, producer_linger_ms=25))

    config = bridge.producer_config
    assert (config["enable.idempotence"], config["acks"], config["linger.ms"]) == (True, "all", 25)
