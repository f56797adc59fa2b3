"""The ingest endpoints against the real session broker: what is stored, and every refusal.

Specification: a 202 names, for each event, the Kafka topic/partition/offset where it is stored
(with the dataset's business key, the envelope and the metadata headers); every bad request gets
its exact status and error body, and nothing of a refused request reaches the raw topic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka import Consumer

from tests.factories import java_client_partition, order_event, user_event
from tests.ingest_api_support import (
    BATCH_URL,
    EVENTS_URL,
    ORDERS_TOPIC,
    ORDERS_URL,
    RAW_PARTITIONS,
    USER_EVENTS_TOPIC,
    end_offsets,
    read_all,
    read_record,
)

pytestmark = pytest.mark.anyio

PRODUCER_ID = "streamlake-ingest-api"
MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500


def partition_of(key: bytes) -> int:
    return java_client_partition(key, RAW_PARTITIONS)


def expected_headers(ingestion_id: str, received_at: str, dataset: str) -> list[tuple[str, bytes]]:
    return [
        ("streamlake.ingestion_id", ingestion_id.encode()),
        ("streamlake.received_at", received_at.encode()),
        ("streamlake.dataset", dataset.encode()),
        ("streamlake.schema_version", b"v1"),
        ("streamlake.producer", PRODUCER_ID.encode()),
    ]


# -- what a 202 means -------------------------------------------------------------------------


async def test_an_accepted_event_is_in_kafka_with_key_envelope_headers_and_partition(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    event = user_event(user_id=12)
    partition = partition_of(b"12")
    next_offset = end_offsets(consumer, USER_EVENTS_TOPIC)[partition]
    before = datetime.now(UTC)

    response = await client.post(EVENTS_URL, json=event)

    body = response.json()
    assert response.status_code == 202
    [accepted] = body["events"]
    assert body == {
        "dataset": "user_events",
        "received_at": body["received_at"],
        "events": [
            {"ingestion_id": accepted["ingestion_id"], "topic": USER_EVENTS_TOPIC, "partition": partition,
             "offset": next_offset}
        ],
    }
    assert before <= datetime.fromisoformat(body["received_at"]) <= datetime.now(UTC)
    assert body["received_at"].endswith("Z")
    record = read_record(consumer, USER_EVENTS_TOPIC, partition, next_offset)
    assert record == {
        "key": b"12",
        "value": {
            "ingestion_id": accepted["ingestion_id"],
            "received_at": body["received_at"],
            "dataset": "user_events",
            "schema_version": "v1",
            "producer": PRODUCER_ID,
            "payload": event,
        },
        "headers": expected_headers(accepted["ingestion_id"], body["received_at"], "user_events"),
    }


async def test_an_order_is_keyed_by_order_id_and_keeps_decimal_amounts_and_offsets(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    event = order_event(order_id="O-00042")

    response = await client.post(ORDERS_URL, json=event)

    assert response.status_code == 202
    [accepted] = response.json()["events"]
    assert (accepted["topic"], accepted["partition"]) == (ORDERS_TOPIC, partition_of(b"O-00042"))
    record = read_record(consumer, ORDERS_TOPIC, accepted["partition"], accepted["offset"])
    assert record["key"] == b"O-00042"
    assert record["value"]["payload"] == event


async def test_events_of_one_key_are_stored_in_the_order_they_were_sent(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    events = [user_event(user_id=7) for _ in range(60)]

    responses = [await client.post(EVENTS_URL, json=event) for event in events]

    assert [r.status_code for r in responses] == [202] * 60
    placements = [r.json()["events"][0] for r in responses]
    assert {(p["topic"], p["partition"]) for p in placements} == {(USER_EVENTS_TOPIC, partition_of(b"7"))}
    offsets = [p["offset"] for p in placements]
    assert offsets == list(range(offsets[0], offsets[0] + 60))
    stored = [r for r in read_all(consumer, USER_EVENTS_TOPIC) if offsets[0] <= r["offset"] <= offsets[-1]
              and r["partition"] == partition_of(b"7")]
    assert [r["value"]["payload"]["event_id"] for r in stored] == [e["event_id"] for e in events]


async def test_a_batch_is_stored_in_request_order_with_one_ingestion_id_per_event(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    events = [user_event(user_id=user_id) for user_id in (1, 2, 3, 4, 5)]

    response = await client.post(BATCH_URL, json=events)

    assert response.status_code == 202
    body = response.json()
    accepted = body["events"]
    assert len({a["ingestion_id"] for a in accepted}) == 5
    assert [(a["topic"], a["partition"]) for a in accepted] == [
        (USER_EVENTS_TOPIC, partition_of(str(user_id).encode())) for user_id in (1, 2, 3, 4, 5)
    ]
    for event, placement in zip(events, accepted, strict=True):
        record = read_record(consumer, USER_EVENTS_TOPIC, placement["partition"], placement["offset"])
        assert record["key"] == str(event["user_id"]).encode()
        assert record["value"]["payload"] == event
        assert record["value"]["ingestion_id"] == placement["ingestion_id"]
        assert record["value"]["received_at"] == body["received_at"]


# -- refusals ---------------------------------------------------------------------------------


async def test_unknown_dataset_is_404_naming_the_known_datasets(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/datasets/clicks/events", json=user_event())

    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_dataset",
        "message": "unknown dataset 'clicks'; known datasets: orders, user_events",
        "known_datasets": ["orders", "user_events"],
    }


async def test_a_number_sent_as_text_is_not_coerced(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, json=user_event(user_id="12"))

    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_event",
        "message": "the user_events event does not match contract v1; nothing was produced",
        "errors": [{"field": "user_id", "type": "int_type", "message": "Input should be a valid integer"}],
    }


async def test_a_timestamp_without_timezone_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, json=user_event(event_timestamp="2026-01-01T10:00:00"))

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "event_timestamp", "type": "timezone_aware", "message": "Input should have timezone info"}
    ]


async def test_every_error_of_an_event_is_listed_with_its_field(client: httpx.AsyncClient) -> None:
    event = user_event(event_type="tap", color="blue")
    del event["page"]

    response = await client.post(EVENTS_URL, json=event)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "event_type", "type": "literal_error",
         "message": "Input should be 'login', 'click', 'purchase' or 'logout'"},
        {"field": "page", "type": "missing", "message": "Field required"},
        {"field": "color", "type": "extra_forbidden", "message": "Extra inputs are not permitted"},
    ]


async def test_a_nested_error_names_the_path_to_the_field(client: httpx.AsyncClient) -> None:
    event = order_event(items=[{"sku": "SKU-001", "quantity": "2", "unit_price": "12.75"}])

    response = await client.post(ORDERS_URL, json=event)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "items[0].quantity", "type": "int_type", "message": "Input should be a valid integer"}
    ]


async def test_malformed_json_is_400_saying_where(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, content=b'{"user_id": 12,', headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "message": "the request body is not valid JSON: EOF while parsing a value at line 1 column 15",
    }


async def test_a_json_value_that_is_not_an_object_is_refused_as_a_whole(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, json=[user_event()])

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "(event)", "type": "model_type", "message": "Input should be an object"}
    ]


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, content=json.dumps(user_event()), headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "message": "send events as application/json (got 'text/plain')",
    }


async def test_missing_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, content=json.dumps(user_event()).encode())

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "message": "send events as application/json (no Content-Type header)",
    }


async def test_json_with_a_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        EVENTS_URL, content=json.dumps(user_event()), headers={"Content-Type": "application/json; charset=utf-8"}
    )

    assert response.status_code == 202


async def test_a_body_over_the_size_limit_is_413(client: httpx.AsyncClient) -> None:
    padded = json.dumps(user_event(page="/" + "x" * MAX_BODY_BYTES))

    response = await client.post(EVENTS_URL, content=padded, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {
        "error": "body_too_large",
        "message": f"the request body is larger than {MAX_BODY_BYTES} bytes",
        "limit": MAX_BODY_BYTES,
    }


async def test_an_event_over_kafkas_record_size_limit_is_413_and_not_stored(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    # Under the 1 MiB body limit, over librdkafka's 1,000,000-byte message.max.bytes once wrapped.
    event = order_event(items=[{"sku": "SKU-001", "quantity": 2, "unit_price": "12.75"}] * 19_800)
    before = end_offsets(consumer, ORDERS_TOPIC)

    response = await client.post(ORDERS_URL, json=event)

    assert response.status_code == 413
    assert response.json() == {
        "error": "event_too_large",
        "message": "an event is larger than Kafka accepts for one record; the event is not acknowledged",
        "errors": [{"type": "MSG_SIZE_TOO_LARGE", "message": "Unable to produce message: Broker: Message size too large"}],
    }
    assert end_offsets(consumer, ORDERS_TOPIC) == before


async def test_a_batch_over_the_event_limit_is_413_saying_the_limit(client: httpx.AsyncClient) -> None:
    response = await client.post(BATCH_URL, json=[user_event() for _ in range(MAX_BATCH_EVENTS + 1)])

    assert response.status_code == 413
    assert response.json() == {
        "error": "too_many_events",
        "message": f"a batch holds at most {MAX_BATCH_EVENTS} events; split it into smaller batches",
        "limit": MAX_BATCH_EVENTS,
    }


async def test_an_empty_batch_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(BATCH_URL, json=[])

    assert response.status_code == 422
    assert response.json() == {"error": "empty_batch", "message": "a batch holds at least one event; this one is empty"}


async def test_a_batch_that_is_not_an_array_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(BATCH_URL, json=user_event())

    assert response.status_code == 422
    assert response.json() == {"error": "batch_not_array", "message": "a batch is a JSON array of user_events events"}


async def test_a_batch_with_invalid_events_names_each_by_index_and_stores_none(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    before = end_offsets(consumer, USER_EVENTS_TOPIC)
    batch = [user_event(), user_event(user_id=-1), user_event(), user_event(source="tv")]

    response = await client.post(BATCH_URL, json=batch)

    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_events",
        "message": "2 event(s) of the batch do not match the user_events contract v1 (index 1, 3); nothing was produced",
        "errors": [
            {"index": 1, "field": "user_id", "type": "greater_than_equal",
             "message": "Input should be greater than or equal to 0"},
            {"index": 3, "field": "source", "type": "literal_error", "message": "Input should be 'web' or 'mobile'"},
        ],
    }
    assert end_offsets(consumer, USER_EVENTS_TOPIC) == before


async def test_no_refused_request_writes_anything_to_the_raw_topic(
    client: httpx.AsyncClient, consumer: Consumer
) -> None:
    before = end_offsets(consumer, USER_EVENTS_TOPIC)
    json_header = {"Content-Type": "application/json"}

    statuses = [
        (await client.post(EVENTS_URL, json=user_event(user_id="12"))).status_code,
        (await client.post(EVENTS_URL, content=b"{", headers=json_header)).status_code,
        (await client.post(EVENTS_URL, content=json.dumps(user_event()), headers={"Content-Type": "text/csv"})).status_code,
        (await client.post(BATCH_URL, json=[user_event(), user_event(event_timestamp="2026-01-01")])).status_code,
        (await client.post(BATCH_URL, json=[user_event()] * (MAX_BATCH_EVENTS + 1))).status_code,
    ]

    assert statuses == [422, 400, 415, 422, 413]
    assert end_offsets(consumer, USER_EVENTS_TOPIC) == before
