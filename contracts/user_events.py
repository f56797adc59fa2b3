"""`user_events` v1: what a user did, where, and when. Business (partition) key: `user_id`."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.base import ContractModel, EntityId

EventType = Literal["login", "click", "purchase", "logout"]
EventSource = Literal["web", "mobile"]


class UserEventV1(ContractModel):
    event_id: UUID
    user_id: EntityId
    event_type: EventType
    page: Annotated[str, Field(pattern=r"^/", max_length=2048)]
    event_timestamp: AwareDatetime
    source: EventSource
