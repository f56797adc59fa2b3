"""`orders` v1: one state change of an order. Business (partition) key: `order_id`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from contracts.base import ContractModel, Money

OrderStatus = Literal["created", "paid", "shipped", "delivered", "cancelled", "failed"]

# ISO-4217 alphabetic codes are three upper-case letters.
CURRENCY_CODE_PATTERN = r"^[A-Z]{3}$"


class OrderItemV1(ContractModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=2**31 - 1)]
    unit_price: Money


class OrderV1(ContractModel):
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    status: OrderStatus
    amount: Money
    currency: Annotated[str, Field(pattern=CURRENCY_CODE_PATTERN)]
    items: Annotated[list[OrderItemV1], Field(min_length=1)]
    event_timestamp: AwareDatetime
