"""The ingestion API application: `create_app()` wires settings, routes, errors and the producer.

The API exists to feed Kafka, not to replace it: no transformation, aggregation, state or
scheduling here. The `lifespan` owns the process's single idempotent producer: created before the
first request, flushed after the last. `uvicorn --factory ingest_api.app:create_app` (or
`streamlake api`) serves it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from conf.settings import Settings, get_settings
from contracts import DATASETS
from ingest_api import auth
from ingest_api.errors import ApiError, handle_api_error
from ingest_api.ingestion import IngestService
from ingest_api.producer import DeliveryBridge
from ingest_api.routes import events, health, metrics

log = logging.getLogger(__name__)

TITLE = "StreamLake ingestion API"
VERSION = "1"
DESCRIPTION = """\
Feeds each dataset's raw Kafka topic. An answer of **202** means every event of the request is stored
in Kafka (its delivery report said so); any other answer means no event of the request is
acknowledged.

A client that retries after a lost answer or a 503 may store an event twice: Silver deduplicates on
the event's id, so retrying is safe.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: IngestService = app.state.ingest
    bridge = DeliveryBridge(service.settings)
    bridge.start()
    service.bridge = bridge
    service.metrics.watch_queue(lambda: bridge.queue_depth)
    # What exists now (app, schemas, clients) lives as long as the process: keep it out of the
    # collector's full passes, which would otherwise pause the event loop again and again.
    gc.freeze()
    log.info("ingest api started", extra={"bootstrap": service.settings.kafka.bootstrap})
    try:
        yield
    finally:
        # Requests are finished by now (the server drains them); give queued records their chance.
        await bridge.close(service.settings.api.delivery_timeout_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION, lifespan=lifespan)
    app.state.ingest = IngestService(settings)
    app.add_exception_handler(ApiError, handle_api_error)  # type: ignore[arg-type]
    # Auth guards the ingest routes only: their service dependency checks the token.
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.openapi = lambda: _openapi_with_contracts(app, settings)  # type: ignore[method-assign]
    return app


def _openapi_with_contracts(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """OpenAPI with the request bodies and the bearer scheme, which FastAPI cannot infer: the ingest
    routes read raw bytes and check the token in their service dependency."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, contract_schemas = models_json_schema(
        [(c.model, "validation") for c in DATASETS.values()], ref_template="#/components/schemas/{model}"
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(contract_schemas["$defs"])
    one_event = {"oneOf": [{"$ref": f"#/components/schemas/{c.model.__name__}"} for c in DATASETS.values()]}
    by_dataset = "; ".join(f"`{name}`: {c.model.__name__}" for name, c in DATASETS.items())
    bodies = {
        events.EVENT_PATH: (one_event, f"One event of the dataset's contract ({by_dataset})."),
        events.BATCH_PATH: (
            {"type": "array", "items": one_event, "minItems": 1, "maxItems": settings.api.max_batch_events},
            f"A JSON array of 1 to {settings.api.max_batch_events} events of the dataset's contract ({by_dataset}).",
        ),
    }
    for path, (body_schema, description) in bodies.items():
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": body_schema}},
        }
    if settings.api.auth_tokens:
        schema["components"].setdefault("securitySchemes", {})[auth.SCHEME_NAME] = auth.SECURITY_SCHEME
        for path in bodies:
            schema["paths"][path]["post"]["security"] = [{auth.SCHEME_NAME: []}]
    app.openapi_schema = schema
    return schema
