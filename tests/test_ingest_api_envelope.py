"""`wrap_many`, the API's fast path to Kafka records, builds exactly the records `wrap` builds.

Specification: for every registered dataset, and for a producer name that JSON must escape or that
contains the id placeholder, each (key, value, headers) is byte for byte `wrap()`'s.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts import DATASETS
from contracts.envelope import wrap, wrap_many
from contracts.registry import get_contract
from streamlake import synthetic

ODD_PRODUCER = 'api "eu-1" \\ 00000000-0000-0000-0000-000000000000 é'


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("producer", ["streamlake-ingest-api", ODD_PRODUCER])
def test_wrap_many_builds_the_records_wrap_builds(dataset: str, producer: str) -> None:
    contract = get_contract(dataset)
    events = list(synthetic.events(dataset, 25))
    ids = [uuid.uuid4() for _ in events]
    received_at = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)

    many = wrap_many(contract, events, producer, ingestion_ids=ids, received_at=received_at)

    assert many == [wrap(contract, e, producer, ingestion_id=i, received_at=received_at) for e, i in zip(events, ids, strict=True)]


def test_wrap_many_keeps_a_non_utc_received_at_as_wrap_does() -> None:
    contract = get_contract("orders")
    [event] = synthetic.events("orders", 1)
    ingestion_id = uuid.uuid4()
    received_at = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    [record] = wrap_many(contract, [event], "p", ingestion_ids=[ingestion_id], received_at=received_at)

    assert record == wrap(contract, event, "p", ingestion_id=ingestion_id, received_at=received_at)


def test_wrap_many_refuses_a_received_at_without_a_timezone_as_wrap_does() -> None:
    contract = get_contract("user_events")
    [event] = synthetic.events("user_events", 1)
    naive = datetime(2026, 1, 1, 12, 0)

    with pytest.raises(ValidationError, match="timezone"):
        wrap(contract, event, "p", ingestion_id=uuid.uuid4(), received_at=naive)
    with pytest.raises(ValidationError, match="timezone"):
        wrap_many(contract, [event], "p", ingestion_ids=[uuid.uuid4()], received_at=naive)
