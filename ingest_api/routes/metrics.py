"""`GET /metrics`: the ingest metrics in Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ingest_api.dependencies import IngestServiceDep
from ingest_api.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(service: IngestServiceDep) -> Response:
    """Accepted and rejected events by dataset and reason, produce latency, in-flight requests, queue depth."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
