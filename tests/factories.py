"""Test data, built in one place: envelope documents and values, client events, poison cases.

`changed()` is the one way a test varies a document: `changed(ORDER, payload__status="lost")`
(double underscores walk into nested fields, `DELETE` removes one).
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any, NamedTuple

from contracts.envelope import wrap
from contracts.registry import DatasetContract

DELETE = object()

# A valid `orders` envelope as Kafka holds it: JSON types, a non-UTC zone, a decimal as a number.
ORDER = {
    "ingestion_id": "0b7a1c4e-6a5f-4c1e-9a53-3f2d1e0c9b8a",
    "received_at": "2026-01-01T12:00:00+02:00",
    "dataset": "orders",
    "schema_version": "v1",
    "producer": "tests",
    "payload": {
        "order_id": "O-1",
        "customer_id": "C-1",
        "status": "paid",
        "amount": 12,
        "currency": "EUR",
        "items": [{"sku": "S-1", "quantity": 2, "unit_price": "6.00"}],
        "event_timestamp": "2026-01-01T11:59:00.5Z",
    },
}


def changed(document: dict, **changes: Any) -> dict:
    """A copy of `document` with `payload__field=value` changes (value DELETE removes the field)."""
    document = copy.deepcopy(document)
    for path, new in changes.items():
        target = document
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if new is DELETE:
            del target[leaf]
        else:
            target[leaf] = new
    return document


def order_value(**changes: Any) -> bytes:
    """ORDER, changed, as the raw Kafka value."""
    return json.dumps(changed(ORDER, **changes)).encode()


def envelope_value(contract: DatasetContract, event, **changes) -> tuple[bytes, bytes]:
    key, value, _ = wrap(contract, event, "tests")
    return key, json.dumps(changed(json.loads(value), **changes)).encode()


def user_event(user_id: int = 12, **changes: Any) -> dict[str, Any]:
    """A valid `user_events` event as a client sends it (JSON types), with a fresh event id."""
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user_id,
        "event_type": "click",
        "page": "/product/42",
        "event_timestamp": "2026-01-01T10:00:00Z",
        "source": "web",
        **changes,
    }


def order_event(order_id: str = "O-00042", **changes: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "C-007",
        "status": "paid",
        "amount": "25.50",
        "currency": "EUR",
        "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": "12.75"}],
        "event_timestamp": "2026-01-01T10:00:00+02:00",
        **changes,
    }


class PoisonCase(NamedTuple):
    """A raw record Bronze must send to the DLQ, with the error class and reason it must give."""

    kind: str
    key: bytes
    value: bytes
    error_class: str
    reason: str


def order_poison_cases(contract: DatasetContract, event: Any, max_value_bytes: int) -> list[PoisonCase]:
    """One record of each way an `orders` record can be bad, most built from a valid `event`."""
    def bad(kind: str, error_class: str, reason: str, **changes: Any) -> PoisonCase:
        key, value = envelope_value(contract, event, **changes)
        return PoisonCase(kind, key, value, error_class, reason)

    return [
        PoisonCase("malformed_json", b"O-P1", b'{"ingestion_id": ', "malformed_json",
                   "value is not valid JSON (EOF while parsing a value at line 1 column 17)"),
        PoisonCase("not_utf8", b"O-P2", b"\xff\xfe\xfd", "not_utf8", "value is not valid UTF-8 (byte 0)"),
        PoisonCase("oversized", b"O-P3", b"{" + b" " * max_value_bytes + b"}", "oversized",
                   f"value is {max_value_bytes + 2} bytes, over the {max_value_bytes} byte limit"),
        bad("missing_field", "missing_field", "missing required field payload.customer_id", payload__customer_id=DELETE),
        bad("wrong_type", "wrong_type", 'payload.items[0].quantity: Input should be a valid integer (got "2")',
            payload__items=[{"sku": "S", "quantity": "2", "unit_price": "1.00"}]),
        bad("enum", "out_of_contract",
            "payload.status: Input should be 'created', 'paid', 'shipped', 'delivered', 'cancelled' or 'failed' "
            '(got "lost")', payload__status="lost"),
        bad("range", "out_of_contract", 'payload.amount: Input should be greater than or equal to 0 (got "-5.00")',
            payload__amount="-5.00"),
        bad("schema_version", "unknown_schema_version", "unknown schema_version 'v9' (known: v1)", schema_version="v9"),
    ]


def java_client_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java clients pick for a keyed record (their murmur2 of the key, made
    positive, modulo the partitions); librdkafka's `murmur2_random` is the same for keyed records."""
    m, h = 0x5BD1E995, 0x9747B28C ^ len(key)
    whole = len(key) - len(key) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = key[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
