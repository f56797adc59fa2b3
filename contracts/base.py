"""Shared building blocks for event contracts.

Every contract model is strict: the API must not coerce "12" into 12 where the contract says int,
and unknown fields are rejected rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Spark's LongType is a signed 64-bit integer; larger ids could not be stored in Bronze.
MAX_LONG = 2**63 - 1

# Money is stored as DECIMAL(18, 2) in Spark; the Pydantic constraint is the same precision.
MONEY_PRECISION = 18
MONEY_SCALE = 2

Money = Annotated[Decimal, Field(ge=0, max_digits=MONEY_PRECISION, decimal_places=MONEY_SCALE)]
EntityId = Annotated[int, Field(ge=0, le=MAX_LONG)]


class ContractModel(BaseModel):
    """Base for every event payload model (strict types, no extra fields, immutable)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def field_path(loc: Sequence[int | str]) -> str:
    """A validation error's location as people read it: `payload.items[0].quantity`.

    The one spelling of a field path, for the API's 422 answers and the DLQ's reasons alike.
    """
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
