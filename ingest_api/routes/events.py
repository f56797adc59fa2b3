"""The ingest endpoints: one event, or an all-or-nothing batch, into the dataset's raw topic.

Each route checks the token (when auth is on), the dataset, the content type and the size,
validates strictly against the contract, produces, and answers 202 only once Kafka has stored every
event of the request. The request body is read as raw bytes (not a FastAPI body parameter) so that
the size limit applies before reading and strict JSON validation sees the client's exact types; the
app documents the body schemas in OpenAPI.

The routes are `IngestRoute`s: FastAPI documents them from the endpoint's signature as usual, and
as long as a route declares nothing beyond that signature, serves it without resolving the signature
per request (that resolution was a large share of the single-event route's CPU, see
docs/decisions.md). A route given any
other dependency (`Depends`, a security scheme, on the route, its router or the app) is served by
FastAPI's standard handler, so every dependency runs.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from ingest_api.dependencies import AuthorizedIngestServiceDep, get_authorized_ingest_service
from ingest_api.errors import documented
from ingest_api.models import INGEST_ACCEPTED, IngestAccepted
from ingest_api.validation import read_body, require_json


class IngestRoute(APIRoute):
    """A route whose endpoint is `(dataset, request, service)`, served directly when that is all it has.

    The direct path passes the path's `dataset`, the request and the service as `get_authorized_ingest_service`
    gives it (which checks the bearer token), exactly what FastAPI would resolve. Any dependency
    beyond those makes the route use FastAPI's own handler instead.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if not self._has_only_its_own_parameters():
            return super().get_route_handler()
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request.path_params["dataset"], request, await get_authorized_ingest_service(request))

        return handle

    def _has_only_its_own_parameters(self) -> bool:
        dependant = self.dependant
        # Security schemes and route, router or app dependencies are all sub-dependencies here.
        own_dependencies = [d.call for d in dependant.dependencies] == [get_authorized_ingest_service]
        other_parameters = (dependant.query_params, dependant.header_params, dependant.cookie_params, dependant.body_params)
        return (
            own_dependencies
            and [p.name for p in dependant.path_params] == ["dataset"]
            and dependant.request_param_name == "request"
            and not any(other_parameters)
        )


router = APIRouter(tags=["ingestion"], route_class=IngestRoute)

EVENT_PATH = "/v1/datasets/{dataset}/events"
BATCH_PATH = "/v1/datasets/{dataset}/events:batch"


def _accepted(accepted: IngestAccepted) -> Response:
    # Serialized here, once: returning it would make FastAPI validate it a second time.
    return Response(INGEST_ACCEPTED.dump_json(accepted), status_code=202, media_type="application/json")


# What both ingest routes answer: 202 with where each event is stored, or one of these errors.
_INGEST_ANSWERS: dict[str, Any] = {
    "status_code": 202,
    "response_model": IngestAccepted,
    "responses": documented(400, 401, 403, 404, 413, 415, 422, 503),
}


@router.post(EVENT_PATH, summary="Ingest one event", **_INGEST_ANSWERS)
async def ingest_event(dataset: str, request: Request, service: AuthorizedIngestServiceDep) -> Response:
    """Validate one event against the dataset's contract and answer once Kafka has stored it."""
    with service.metrics.in_flight.track_inprogress():
        parser = service.parser(dataset)
        require_json(request)
        event = parser.one(await read_body(request, service.settings.api.max_body_bytes))
        return _accepted(await service.ingest(parser.contract, [event], batch=False))


@router.post(BATCH_PATH, summary="Ingest a batch of events, all or nothing", **_INGEST_ANSWERS)
async def ingest_batch(dataset: str, request: Request, service: AuthorizedIngestServiceDep) -> Response:
    """Validate every event of a JSON array; answer 202 only once Kafka has stored all of them.

    If any event is invalid, nothing is produced (422, with every error by index). If any event is
    not stored, none is acknowledged (503, with the failing indexes): retry the whole batch.
    """
    with service.metrics.in_flight.track_inprogress():
        parser = service.parser(dataset)
        require_json(request)
        events = parser.batch(await read_body(request, service.settings.api.max_body_bytes))
        return _accepted(await service.ingest(parser.contract, events, batch=True))
