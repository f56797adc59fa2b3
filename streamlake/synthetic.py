"""Deterministic synthetic events for the demo, tests and benchmarks, built through the contract
models so they are valid by construction."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import get_args

from pydantic import BaseModel

from contracts.orders import OrderItemV1, OrderStatus, OrderV1
from contracts.registry import get_contract
from contracts.user_events import EventSource, EventType, UserEventV1

_PAGES = ("/", "/home", "/search", "/product/42", "/cart", "/checkout")
_CURRENCIES = ("EUR", "USD", "GBP")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def user_events(count: int, seed: int = 7) -> Iterator[UserEventV1]:
    rng = random.Random(seed)
    for i in range(count):
        yield UserEventV1(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=rng.randint(1, 50),
            event_type=rng.choice(get_args(EventType)),
            page=rng.choice(_PAGES),
            event_timestamp=_EPOCH + timedelta(seconds=i),
            source=rng.choice(get_args(EventSource)),
        )


def orders(count: int, seed: int = 11) -> Iterator[OrderV1]:
    rng = random.Random(seed)
    for i in range(count):
        items = [
            OrderItemV1(
                sku=f"SKU-{rng.randint(1, 20):03d}",
                quantity=rng.randint(1, 3),
                unit_price=Decimal(rng.randint(100, 9999)) / 100,
            )
            for _ in range(rng.randint(1, 3))
        ]
        yield OrderV1(
            order_id=f"O-{rng.randint(1, max(1, count // 2)):05d}",
            customer_id=f"C-{rng.randint(1, 40):03d}",
            status=rng.choice(get_args(OrderStatus)),
            amount=sum((item.unit_price * item.quantity for item in items), Decimal("0.00")),
            currency=rng.choice(_CURRENCIES),
            items=items,
            event_timestamp=_EPOCH + timedelta(seconds=i),
        )


_GENERATORS = {"user_events": user_events, "orders": orders}


def events(dataset: str, count: int, seed: int = 7) -> Iterator[BaseModel]:
    get_contract(dataset)  # unknown names fail here, with the list of known datasets
    return _GENERATORS[dataset](count, seed)
