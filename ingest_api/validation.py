"""Turning a request body into contract events, or into an `ApiError` that names what is wrong.

Owns: the content-type rule, the body size limit (enforced before and while reading, never after),
and strict validation against the dataset's contract. Validation parses the raw JSON bytes in strict
mode, so `"12"` never becomes 12 and a timestamp without a zone is refused. Nothing here touches
Kafka: an event that leaves this module is valid.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from contracts import DatasetContract
from contracts.base import field_path
from ingest_api.errors import ApiError
from ingest_api.models import EventError

JSON_MEDIA_TYPE = "application/json"
WHOLE_EVENT = "(event)"


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        got = f"got {content_type!r}" if content_type else "no Content-Type header"
        raise ApiError(415, "unsupported_media_type", f"send events as {JSON_MEDIA_TYPE} ({got})")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is larger than {limit} bytes", limit=limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_content_length", f"Content-Length must be a number of bytes (got {declared!r})")
        # Refused before reading a byte: a huge upload costs the server nothing.
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    # A chunked body announces no length: count while reading and stop at the limit.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _malformed(exc: ValidationError) -> ApiError | None:
    for error in exc.errors(include_input=False, include_url=False):
        if error["type"] == "json_invalid":
            detail = error["ctx"]["error"]
            return ApiError(400, "malformed_json", f"the request body is not valid JSON: {detail}")
    return None


class EventParser:
    """Strict parsing of one dataset's events, single or batched (at most `max_batch_events`)."""

    def __init__(self, contract: DatasetContract, max_batch_events: int) -> None:
        self.contract = contract
        self.max_batch_events = max_batch_events
        self._batch = TypeAdapter(Annotated[list[contract.model], Field(min_length=1, max_length=max_batch_events)])

    def one(self, body: bytes) -> BaseModel:
        try:
            return self.contract.model.model_validate_json(body)
        except ValidationError as exc:
            raise _malformed(exc) or self._invalid(exc, batch=False) from None

    def batch(self, body: bytes) -> list[BaseModel]:
        try:
            return self._batch.validate_json(body)
        except ValidationError as exc:
            shape_error = _malformed(exc) or self._batch_shape_error(exc)
            if shape_error:
                raise shape_error from None
            # The whole batch is refused, so the metric counts all of it (parsed again only here).
            raise self._invalid(exc, batch=True, count=len(from_json(body))) from None

    def _batch_shape_error(self, exc: ValidationError) -> ApiError | None:
        whole_body = [e for e in exc.errors(include_input=False, include_url=False) if not e["loc"]]
        for error in whole_body:
            if error["type"] == "too_long":
                return ApiError(
                    413, "too_many_events",
                    f"a batch holds at most {self.max_batch_events} events; split it into smaller batches",
                    limit=self.max_batch_events, events=error["ctx"]["actual_length"],
                )
            if error["type"] == "too_short":
                return ApiError(422, "empty_batch", "a batch holds at least one event; this one is empty")
            if error["type"] == "list_type":
                return ApiError(422, "batch_not_array", f"a batch is a JSON array of {self.contract.name} events")
        return None

    def _invalid(self, exc: ValidationError, *, batch: bool, count: int = 1) -> ApiError:
        errors = [_event_error(e, batch) for e in exc.errors(include_input=False, include_url=False)]
        dataset = self.contract.name
        if not batch:
            message = f"the {dataset} event does not match contract {self.contract.version}; nothing was produced"
            return ApiError(422, "invalid_event", message, errors=errors)
        bad = sorted({e.index for e in errors if e.index is not None})
        message = (
            f"{len(bad)} event(s) of the batch do not match the {dataset} contract {self.contract.version} "
            f"(index {', '.join(map(str, bad))}); nothing was produced"
        )
        return ApiError(422, "invalid_events", message, errors=errors, events=count)


def _event_error(error: dict[str, Any], batch: bool) -> EventError:
    loc = error["loc"]
    index = None
    if batch and loc and isinstance(loc[0], int):
        index, loc = loc[0], loc[1:]
    return EventError(index=index, field=field_path(loc) or WHOLE_EVENT, type=error["type"], message=error["msg"])
