"""Probes: `GET /healthz` (the process can serve) and `GET /readyz` (Kafka can take our events).

Both stay open when auth is on: orchestrators call them without credentials.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from fastapi import APIRouter
from pydantic import BaseModel

from contracts import DATASETS
from ingest_api.dependencies import IngestServiceDep
from ingest_api.errors import ApiError, documented

router = APIRouter(tags=["operations"])

# A probe must answer well within an orchestrator's probe timeout (often 1 to 5 s).
READINESS_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    topics: dict[str, int]  # raw topic -> partitions, as the broker reports them


@router.get("/healthz", responses=documented(503))
async def healthz(service: IngestServiceDep) -> Health:
    """The process is alive, and its producer has not hit a fatal error (only a restart clears one)."""
    bridge = service.bridge
    if bridge is not None and bridge.fatal_error is not None:
        error = bridge.fatal_error
        raise ApiError(503, "producer_failed", f"the Kafka producer hit a fatal error {error.name()}: {error.str()}", events=None)
    return Health(status="alive")


@router.get("/readyz", responses=documented(503))
async def readyz(service: IngestServiceDep) -> Readiness:
    """Ready only when the broker answers metadata and lists every dataset's raw topic."""
    bootstrap = service.settings.kafka.bootstrap
    if service.bridge is None:
        raise ApiError(503, "not_ready", "the Kafka producer is not started", events=None)
    raw_topics = [c.raw_topic for c in DATASETS.values()]
    try:
        found = await service.bridge.topic_partitions(raw_topics, READINESS_TIMEOUT_S)
    except KafkaException as exc:
        raise ApiError(
            503, "not_ready", f"Kafka at {bootstrap} does not answer metadata: {exc.args[0].str()}", events=None
        ) from None
    missing = [t for t in raw_topics if t not in found]
    if missing:
        raise ApiError(
            503, "not_ready",
            f"Kafka at {bootstrap} has no topic {', '.join(missing)}; run `streamlake topics apply`",
            events=None,
        )
    return Readiness(status="ready", topics=found)
