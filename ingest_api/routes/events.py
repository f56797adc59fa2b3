"""The ingest endpoints: one event, or an all-or-nothing batch, into the dataset's raw topic.

Each route checks the dataset, the content type and the size, validates strictly against the
contract, produces, and answers 202 only once Kafka has stored every event of the request. The
request body is read as raw bytes (not a FastAPI body parameter) so that the size limit applies
before reading and strict JSON validation sees the client's exact types; the app documents the
body schemas in OpenAPI.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ingest_api.dependencies import IngestServiceDep
from ingest_api.errors import documented
from ingest_api.models import IngestAccepted
from ingest_api.validation import read_body, require_json

router = APIRouter(tags=["ingestion"])

EVENT_PATH = "/v1/datasets/{dataset}/events"
BATCH_PATH = "/v1/datasets/{dataset}/events:batch"


def _accepted(accepted: IngestAccepted) -> Response:
    # Serialized here, once: returning the model would make FastAPI validate it a second time.
    return Response(accepted.model_dump_json(), status_code=202, media_type="application/json")


@router.post(
    EVENT_PATH,
    status_code=202,
    response_model=IngestAccepted,
    responses=documented(400, 401, 403, 404, 413, 415, 422, 503),
    summary="Ingest one event",
)
async def ingest_event(dataset: str, request: Request, service: IngestServiceDep) -> Response:
    """Validate one event against the dataset's contract and answer once Kafka has stored it."""
    with service.metrics.in_flight.track_inprogress():
        parser = service.parser(dataset)
        require_json(request)
        event = parser.one(await read_body(request, service.settings.api.max_body_bytes))
        return _accepted(await service.ingest(parser.contract, [event], batch=False))


@router.post(
    BATCH_PATH,
    status_code=202,
    response_model=IngestAccepted,
    responses=documented(400, 401, 403, 404, 413, 415, 422, 503),
    summary="Ingest a batch of events, all or nothing",
)
async def ingest_batch(dataset: str, request: Request, service: IngestServiceDep) -> Response:
    """Validate every event of a JSON array; answer 202 only once Kafka has stored all of them.

    If any event is invalid, nothing is produced (422, with every error by index). If any event is
    not stored, none is acknowledged (503, with the failing indexes): retry the whole batch.
    """
    with service.metrics.in_flight.track_inprogress():
        parser = service.parser(dataset)
        require_json(request)
        events = parser.batch(await read_body(request, service.settings.api.max_body_bytes))
        return _accepted(await service.ingest(parser.contract, events, batch=True))
