"""The ingest endpoints: one event, or an all-or-nothing batch, into the dataset's raw topic.

Each route checks the token (when auth is on), the dataset, the content type and the size,
validates strictly against the contract, produces, and answers 202 only once Kafka has stored every
event of the request. The request body is read as raw bytes (not a FastAPI body parameter) so that
the size limit applies before reading and strict JSON validation sees the client's exact types; the
app documents the body schemas in OpenAPI.

The routes are `IngestRoute`s: FastAPI documents them from the endpoint's signature as usual, but
serves them without resolving that signature per request. That resolution (path parameter
validation, the service dependency, the auth dependency) was a third of the single-event route's
CPU in the profile, for values the handler can take directly from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from ingest_api.dependencies import IngestServiceDep
from ingest_api.errors import documented
from ingest_api.ingestion import IngestService
from ingest_api.models import INGEST_ACCEPTED, IngestAccepted
from ingest_api.validation import read_body, require_json


class IngestRoute(APIRoute):
    """A route whose endpoint is `(dataset, request, service)`, called with exactly those values.

    FastAPI still builds the OpenAPI operation from the endpoint's signature; per request the handler
    passes the path's `dataset`, the request and the app's service itself, and runs the service's
    token check. It runs no FastAPI dependency, so it refuses to be given any: a dependency that
    would be documented and never run is an auth hole waiting to happen.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.dependencies:
            raise TypeError(f"{path}: an IngestRoute runs no FastAPI dependencies; check in the handler instead")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            service: IngestService = request.app.state.ingest
            if service.auth is not None:
                service.auth.check(request.headers.get("authorization"))
            return await endpoint(request.path_params["dataset"], request, service)

        return handle


router = APIRouter(tags=["ingestion"], route_class=IngestRoute)

EVENT_PATH = "/v1/datasets/{dataset}/events"
BATCH_PATH = "/v1/datasets/{dataset}/events:batch"


def _accepted(accepted: IngestAccepted) -> Response:
    # Serialized here, once: returning it would make FastAPI validate it a second time.
    return Response(INGEST_ACCEPTED.dump_json(accepted), status_code=202, media_type="application/json")


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
