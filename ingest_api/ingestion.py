"""What one ingest request does after its body is read: validate, add metadata, produce, wait.

Owns the per-process ingest service: the dataset parsers, the metrics, and (from the lifespan on)
the delivery bridge. Records are built by `contracts.envelope.wrap_many` (the same bytes as `wrap`,
the one definition of the envelope, key and headers, built once per request instead of per
event). A request is acknowledged only with the delivery report of every one of its events;
anything else becomes a 503 with Retry-After, and no event of it is acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

from pydantic import BaseModel

from conf.settings import Settings
from contracts import DATASETS, DatasetContract
from contracts.envelope import wrap_many
from ingest_api.auth import BearerAuth
from ingest_api.errors import ApiError
from ingest_api.metrics import IngestMetrics
from ingest_api.models import AcceptedEvent, EventError, IngestAccepted
from ingest_api.producer import DeliveryBridge, DeliveryFailedError, Record
from ingest_api.validation import EventParser

_UNAVAILABLE_MESSAGES = {
    "queue_full": "Kafka is not keeping up (the producer's queue is full)",
    "delivery_failed": "Kafka refused or lost the events",
    "delivery_timeout": "Kafka did not confirm the events in time",
    "producer_failed": "the Kafka producer failed and needs a restart",
}


class IngestService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = IngestMetrics()
        self.auth = BearerAuth(settings.api.auth_tokens) if settings.api.auth_tokens else None
        self.parsers = {name: EventParser(c, settings.api.max_batch_events) for name, c in DATASETS.items()}
        self.bridge: DeliveryBridge | None = None  # set by the app's lifespan
        self._retry_after = {"Retry-After": str(settings.api.retry_after_s)}

    def parser(self, dataset: str) -> EventParser:
        parser = self.parsers.get(dataset)
        if parser is None:
            known = sorted(DATASETS)
            raise ApiError(
                404, "unknown_dataset", f"unknown dataset {dataset!r}; known datasets: {', '.join(known)}",
                known_datasets=known,
            )
        return parser

    async def ingest(self, contract: DatasetContract, events: Sequence[BaseModel], *, batch: bool) -> IngestAccepted:
        received_at = datetime.now(UTC)
        ids = [uuid4() for _ in events]
        wrapped = wrap_many(contract, events, self.settings.api.producer_id, ingestion_ids=ids, received_at=received_at)
        records = [Record(contract.raw_topic, key, value, headers) for key, value, headers in wrapped]
        assert self.bridge is not None, "the app's lifespan starts the producer before serving requests"
        started = time.perf_counter()
        try:
            stored = await self.bridge.deliver(records)
        except DeliveryFailedError as exc:
            raise self._unavailable(exc, len(events), batch) from None
        finally:
            self.metrics.produce_latency_of[contract.name].observe(time.perf_counter() - started)
        self.metrics.accepted_in[contract.name].inc(len(events))
        return IngestAccepted(
            contract.name, received_at,
            [AcceptedEvent(i, s.topic, s.partition, s.offset) for i, s in zip(ids, stored, strict=True)],
        )

    def _unavailable(self, exc: DeliveryFailedError, count: int, batch: bool) -> ApiError:
        what = f"none of the {count} events is" if batch else "the event is not"
        errors = [EventError(index=f.index if batch else None, type=f.code, message=f.reason) for f in exc.failures]
        if exc.cause == "record_too_large":
            # The client's fault, and a retry fails the same way: no 503, no Retry-After.
            message = f"an event is larger than Kafka accepts for one record; {what} acknowledged"
            return ApiError(413, "event_too_large", message, events=count, errors=errors)
        message = (
            f"{_UNAVAILABLE_MESSAGES[exc.cause]}; {what} acknowledged. Retry later: a retry may store an event "
            "twice, and Silver keeps one per event id"
        )
        return ApiError(503, f"kafka_{exc.cause}", message, headers=self._retry_after, events=count, errors=errors)
