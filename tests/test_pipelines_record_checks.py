"""The verdict on one raw value (pure Python): each error class with its exact reason, and the
canonical JSON of a valid value. The judge is the contract's own model, as in the API."""

from __future__ import annotations

import json

import pytest

from pipelines.record_checks import (
    MALFORMED_JSON,
    MISSING_FIELD,
    NOT_UTF8,
    OUT_OF_CONTRACT,
    OVERSIZED,
    UNKNOWN_SCHEMA_VERSION,
    WRONG_TYPE,
    Verdict,
    record_classifier,
)
from tests.factories import DELETE, ORDER, order_value

MAX_BYTES = 1024
classify = record_classifier("orders", MAX_BYTES)


def test_a_valid_value_comes_back_as_the_model_serializes_it() -> None:
    verdict = classify(order_value())
    assert (verdict.error_class, verdict.error_reason) == (None, None)
    # Canonical: timestamps keep their zone in ISO form, decimals become text, key order is the model's.
    assert json.loads(verdict.canonical_value) == {
        **ORDER,
        "payload": {**ORDER["payload"], "amount": "12", "items": [{"sku": "S-1", "quantity": 2, "unit_price": "6.00"}],
                    "event_timestamp": "2026-01-01T11:59:00.500000Z"},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (MALFORMED_JSON, "value is empty (null)")),
        (b"{" + b" " * MAX_BYTES + b"}", (OVERSIZED, f"value is {MAX_BYTES + 2} bytes, over the {MAX_BYTES} byte limit")),
        (b"\xff\xfe", (NOT_UTF8, "value is not valid UTF-8 (byte 0)")),
        (b'{"ingestion_id": ', (MALFORMED_JSON, "value is not valid JSON (EOF while parsing a value at line 1 column 17)")),
        (b"[1, 2]", (MALFORMED_JSON, "value is not a JSON object")),
        (order_value(payload__customer_id=DELETE), (MISSING_FIELD, "missing required field payload.customer_id")),
        (order_value(payload__customer_id=None), (MISSING_FIELD, "required field payload.customer_id is null")),
        (order_value(payload=None), (MISSING_FIELD, "required field payload is null")),
        (order_value(payload__items=[{"sku": "S", "quantity": "2", "unit_price": "1.00"}]),
         (WRONG_TYPE, 'payload.items[0].quantity: Input should be a valid integer (got "2")')),
        (order_value(payload__event_timestamp="2026-01-01T11:59:00"),
         (WRONG_TYPE, 'payload.event_timestamp: Input should have timezone info (got "2026-01-01T11:59:00")')),
        (order_value(ingestion_id="i-1"),
         (WRONG_TYPE, 'ingestion_id: Input should be a valid UUID, invalid character: found `i` at 0 (got "i-1")')),
        (order_value(payload__status="lost"),
         (OUT_OF_CONTRACT, "payload.status: Input should be 'created', 'paid', 'shipped', 'delivered', 'cancelled' or "
                           "'failed' (got \"lost\")")),
        (order_value(payload__amount="-5.00"),
         (OUT_OF_CONTRACT, 'payload.amount: Input should be greater than or equal to 0 (got "-5.00")')),
        (order_value(payload__amount=1.005),
         (OUT_OF_CONTRACT, "payload.amount: Decimal input should have no more than 2 decimal places (got 1.005)")),
        (order_value(payload__items=[]),
         (OUT_OF_CONTRACT, "payload.items: List should have at least 1 item after validation, not 0")),
        (order_value(payload__coupon="X"), (OUT_OF_CONTRACT, 'payload.coupon: Extra inputs are not permitted (got "X")')),
        (order_value(dataset="user_events"), (OUT_OF_CONTRACT, "dataset 'user_events' does not belong on the orders topic")),
        (order_value(payload__status="lost", payload__currency="eur"),
         (OUT_OF_CONTRACT, "payload.status: Input should be 'created', 'paid', 'shipped', 'delivered', 'cancelled' or "
                           "'failed' (got \"lost\") (and 1 more error)")),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else None,
)
def test_each_kind_of_bad_value_gets_its_class_and_reason(value: bytes | None, expected: tuple[str, str]) -> None:
    assert classify(value) == Verdict(*expected, None)


def test_a_newer_schema_version_is_named_even_when_its_fields_break_this_version() -> None:
    newer = order_value(schema_version="v2", payload__amount={"units": 12, "currency": "EUR"}, payload__currency=DELETE)
    assert classify(newer) == Verdict(UNKNOWN_SCHEMA_VERSION, "unknown schema_version 'v2' (known: v1)", None)
    assert classify(order_value(schema_version="v2")) == Verdict(UNKNOWN_SCHEMA_VERSION, "unknown schema_version 'v2' (known: v1)", None)


def test_bad_bytes_inside_a_json_string_are_not_utf8() -> None:
    # Named as not UTF-8 (not as malformed JSON) wherever the bad byte sits.
    value = order_value().replace(b'"S-1"', b'"S\xff1"')
    bad_byte = value.index(b"\xff")
    assert classify(value) == Verdict(NOT_UTF8, f"value is not valid UTF-8 (byte {bad_byte})", None)


def test_bad_bytes_in_a_field_given_twice_are_not_utf8_although_the_last_one_wins() -> None:
    # Bronze keeps a valid value as text, so a valid verdict must mean every byte is UTF-8, even
    # in a duplicate key's first value, which the parsed record no longer holds.
    value = order_value().replace(b'"currency": "EUR"', b'"currency": "E\xffR", "currency": "EUR"')
    assert value.count(b'"currency"') == 2
    bad_byte = value.index(b"\xff")

    assert classify(value) == Verdict(NOT_UTF8, f"value is not valid UTF-8 (byte {bad_byte})", None)
