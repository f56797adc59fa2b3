"""The API's answers as typed models (Pydantic, dataclasses): OpenAPI documents exactly what is sent.

Owns the shapes of the 202 answer and of every error body; it decides nothing about when they are
sent (routes and `ingest_api.ingestion` do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter


# Dataclasses, not models: a batch answer holds up to `max_batch_events` of these, built from our
# own values, and a dataclass costs far less than a model to build (pydantic serializes both alike).
@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """Where one acknowledged event is stored."""

    ingestion_id: Annotated[UUID, Field(description="The id StreamLake gave this event (envelope and Kafka header).")]
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class IngestAccepted:
    """Every event of the request is stored in Kafka (its delivery report said so)."""

    dataset: str
    received_at: Annotated[datetime, Field(description="When the API received the request (UTC), as in each envelope.")]
    events: Annotated[list[AcceptedEvent], Field(description="One entry per event, in request order.")]


# The 202 body, serialized by one adapter: built from our own values, so nothing to validate, and a
# dataclass with an adapter costs half of a model's model_construct() plus model_dump_json().
INGEST_ACCEPTED = TypeAdapter(IngestAccepted)


class EventError(BaseModel):
    """One reason an event was refused or is not known to be stored."""

    index: int | None = Field(default=None, description="Position in the batch; absent for the single-event endpoint.")
    field: str | None = Field(
        default=None, description="Path of the field at fault, e.g. `items[0].quantity`; `(event)` for the whole event."
    )
    type: str = Field(description="Machine-readable reason: a Pydantic error type or a Kafka error name.")
    message: str


class ErrorBody(BaseModel):
    """Every non-2xx answer of the API: a stable `error` code and a sentence saying what to fix."""

    error: str
    message: str
    known_datasets: list[str] | None = None
    limit: int | None = None
    errors: list[EventError] | None = None
