"""Refusals as one exception type, rendered as one JSON shape (`models.ErrorBody`) and counted.

Owns the mapping from an `ApiError` to its HTTP answer and to the rejected-events metric. Routes and
dependencies raise `ApiError`; they never build error responses themselves.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from ingest_api.models import ErrorBody, EventError


class ApiError(Exception):
    """An answer other than 202. `events` is how many events it refuses, for the metrics (None: not an
    ingest refusal, e.g. a probe)."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        events: int | None = 1,
        known_datasets: list[str] | None = None,
        limit: int | None = None,
        errors: list[EventError] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers
        self.events = events
        self.body = ErrorBody(error=error, message=message, known_datasets=known_datasets, limit=limit, errors=errors)

    @property
    def error(self) -> str:
        return self.body.error


def error_response(exc: ApiError) -> Response:
    return Response(
        content=exc.body.model_dump_json(exclude_none=True),
        status_code=exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


async def handle_api_error(request: Request, exc: ApiError) -> Response:
    service = getattr(request.app.state, "ingest", None)
    if service is not None and exc.events is not None:
        service.metrics.count_rejected(request.path_params.get("dataset"), exc.error, exc.events)
    return error_response(exc)


_RETRY_AFTER_HEADER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def documented(*status_codes: int) -> dict[int | str, dict]:
    """The `responses=` of a route: each listed status answers with an `ErrorBody`; 503 says when to retry."""
    return {code: {"model": ErrorBody, **({"headers": _RETRY_AFTER_HEADER} if code == 503 else {})} for code in status_codes}
