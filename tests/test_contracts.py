"""Contracts: strict validation, registry, envelope, and the Spark schema derived from the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import ValidationError
from pyspark.sql.types import (
    ArrayType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from contracts import DATASETS, UnknownDatasetError, get_contract
from contracts.envelope import wrap
from contracts.orders import OrderV1
from contracts.spark_schema import envelope_schema, payload_schema, required_fields
from contracts.user_events import UserEventV1

EVENT_ID = "8f1b6d1e-4d3a-4d0e-9a51-1b0e7f1c2a3b"
USER_EVENT = {
    "event_id": EVENT_ID,
    "user_id": 42,
    "event_type": "login",
    "page": "/home",
    "event_timestamp": "2026-01-01T10:00:00+02:00",
    "source": "web",
}
ORDER = {
    "order_id": "O-1",
    "customer_id": "C-7",
    "status": "paid",
    "amount": "25.50",
    "currency": "EUR",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "12.75"}],
    "event_timestamp": "2026-01-01T08:00:00Z",
}


def _errors(model, payload: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(json.dumps(payload))
    return [(e["loc"], e["type"]) for e in caught.value.errors()]


def test_valid_user_event_parses_with_its_timezone() -> None:
    event = UserEventV1.model_validate_json(json.dumps(USER_EVENT))
    assert event.event_id == UUID(EVENT_ID)
    assert event.event_timestamp == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_valid_order_keeps_exact_decimals() -> None:
    order = OrderV1.model_validate_json(json.dumps(ORDER))
    assert (order.amount, order.items[0].unit_price) == (Decimal("25.50"), Decimal("12.75"))


def test_int_field_does_not_coerce_a_string() -> None:
    assert _errors(UserEventV1, {**USER_EVENT, "user_id": "42"}) == [(("user_id",), "int_type")]


def test_naive_timestamp_is_rejected() -> None:
    assert _errors(UserEventV1, {**USER_EVENT, "event_timestamp": "2026-01-01T10:00:00"}) == [
        (("event_timestamp",), "timezone_aware")
    ]


def test_unknown_enum_value_and_extra_field_are_rejected() -> None:
    assert _errors(UserEventV1, {**USER_EVENT, "event_type": "scroll", "color": "red"}) == [
        (("event_type",), "literal_error"),
        (("color",), "extra_forbidden"),
    ]


def test_order_ranges_are_enforced_with_field_paths() -> None:
    bad = {**ORDER, "amount": "-1", "currency": "eur", "items": [{"sku": "S", "quantity": 0, "unit_price": "1.00"}]}
    assert _errors(OrderV1, bad) == [
        (("amount",), "greater_than_equal"),
        (("currency",), "string_pattern_mismatch"),
        (("items", 0, "quantity"), "greater_than_equal"),
    ]


def test_order_needs_at_least_one_item() -> None:
    assert _errors(OrderV1, {**ORDER, "items": []}) == [(("items",), "too_short")]


def test_registry_names_keys_and_topics() -> None:
    assert {n: (c.version, c.business_key, c.raw_topic, c.dlq_topic, c.consumer_group) for n, c in DATASETS.items()} == {
        "user_events": ("v1", "user_id", "streamlake.user_events.raw", "streamlake.user_events.dlq",
                        "streamlake-consumer-user_events"),
        "orders": ("v1", "order_id", "streamlake.orders.raw", "streamlake.orders.dlq", "streamlake-consumer-orders"),
    }


def test_unknown_dataset_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'clicks'; known datasets: orders, user_events"):
        get_contract("clicks")


def test_wrap_builds_key_value_and_headers_from_the_envelope() -> None:
    contract = get_contract("user_events")
    event = UserEventV1.model_validate_json(json.dumps(USER_EVENT))
    ingestion_id = UUID("00000000-0000-4000-8000-000000000001")
    received_at = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
    key, value, headers = wrap(contract, event, "tests", ingestion_id=ingestion_id, received_at=received_at)
    assert key == b"42"
    assert json.loads(value) == {
        "ingestion_id": str(ingestion_id),
        "received_at": "2026-01-01T09:00:00Z",
        "dataset": "user_events",
        "schema_version": "v1",
        "producer": "tests",
        "payload": {**USER_EVENT, "event_timestamp": "2026-01-01T10:00:00+02:00"},
    }
    assert headers == [
        ("streamlake.ingestion_id", str(ingestion_id).encode()),
        ("streamlake.received_at", b"2026-01-01T09:00:00Z"),
        ("streamlake.dataset", b"user_events"),
        ("streamlake.schema_version", b"v1"),
        ("streamlake.producer", b"tests"),
    ]


def _field(name: str, data_type) -> StructField:
    return StructField(name, data_type, True)


def test_spark_schema_of_user_events_equals_the_contract() -> None:
    assert payload_schema(get_contract("user_events")) == StructType([
        _field("event_id", StringType()),
        _field("user_id", LongType()),
        _field("event_type", StringType()),
        _field("page", StringType()),
        _field("event_timestamp", TimestampType()),
        _field("source", StringType()),
    ])


def test_spark_schema_of_orders_equals_the_contract() -> None:
    item = StructType([_field("sku", StringType()), _field("quantity", IntegerType()), _field("unit_price", DecimalType(18, 2))])
    assert payload_schema(get_contract("orders")) == StructType([
        _field("order_id", StringType()),
        _field("customer_id", StringType()),
        _field("status", StringType()),
        _field("amount", DecimalType(18, 2)),
        _field("currency", StringType()),
        _field("items", ArrayType(item, containsNull=False)),
        _field("event_timestamp", TimestampType()),
    ])


def test_envelope_schema_wraps_the_payload_after_the_metadata() -> None:
    schema = envelope_schema(get_contract("orders"))
    assert schema.fieldNames() == ["ingestion_id", "received_at", "dataset", "schema_version", "producer", "payload"]
    assert schema["payload"].dataType == payload_schema(get_contract("orders"))


def test_every_contract_field_is_required() -> None:
    assert {name: required_fields(c.model) for name, c in DATASETS.items()} == {
        name: list(c.model.model_fields) for name, c in DATASETS.items()
    }
