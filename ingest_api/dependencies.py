"""FastAPI dependencies shared by the routes: the process's ingest service, as `Annotated` types.

`IngestServiceDep` for any route; `AuthorizedIngestServiceDep` for the ingest routes, where the
service comes only once the request's bearer token is accepted (when auth is on). Async on purpose:
FastAPI runs plain `def` dependencies in a thread pool, a cost on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest_api.ingestion import IngestService


async def get_ingest_service(request: Request) -> IngestService:
    return request.app.state.ingest


async def get_authorized_ingest_service(request: Request) -> IngestService:
    """The ingest service, once the request's bearer token is accepted (when auth is on)."""
    service: IngestService = request.app.state.ingest
    if service.auth is not None:
        service.auth.check(request.headers.get("authorization"))
    return service


IngestServiceDep = Annotated[IngestService, Depends(get_ingest_service)]
AuthorizedIngestServiceDep = Annotated[IngestService, Depends(get_authorized_ingest_service)]
