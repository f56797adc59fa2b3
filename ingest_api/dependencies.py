"""FastAPI dependencies shared by the routes: the process's ingest service, as an `Annotated` type.

Async on purpose: FastAPI runs plain `def` dependencies in a thread pool, a cost on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest_api.ingestion import IngestService


async def get_ingest_service(request: Request) -> IngestService:
    return request.app.state.ingest


IngestServiceDep = Annotated[IngestService, Depends(get_ingest_service)]
