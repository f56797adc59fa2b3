"""The API's Prometheus metrics, in a registry of its own (one per app, so tests never collide).

Owns metric names, labels and buckets. Label values are bounded: a dataset that is not registered is
counted as `(unknown)`, so a client cannot grow the series without limit by inventing names.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from contracts import DATASETS

UNKNOWN_DATASET_LABEL = "(unknown)"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# From one linger (5 ms) to the delivery timeout's order of magnitude.
_LATENCY_BUCKETS = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "streamlake_ingest_events_accepted", "Events stored in Kafka and acknowledged with 202.",
            ["dataset"], registry=self.registry,
        )
        self.rejected = Counter(
            "streamlake_ingest_events_rejected",
            "Events refused or not acknowledged, by reason (the error code of the answer). "
            "A body that cannot be parsed into events counts as one.",
            ["dataset", "reason"], registry=self.registry,
        )
        self.produce_latency = Histogram(
            "streamlake_ingest_produce_latency_seconds",
            "From handing a request's events to the producer until their last delivery report.",
            ["dataset"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(
            "streamlake_ingest_requests_in_flight", "Ingest requests being handled now.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "streamlake_ingest_producer_queue_depth",
            "Records handed to the producer and not yet reported (queued or in flight).",
            registry=self.registry,
        )
        # Every dataset's series exists from the start, so a rate over them never starts from nothing;
        # the children are kept so the hot path skips the labels() lookup and its lock.
        self.accepted_in = {d: self.accepted.labels(d) for d in DATASETS}
        self.produce_latency_of = {d: self.produce_latency.labels(d) for d in DATASETS}

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def count_rejected(self, dataset: str | None, reason: str, events: int) -> None:
        label = dataset if dataset in DATASETS else UNKNOWN_DATASET_LABEL
        self.rejected.labels(label, reason).inc(events)

    def render(self) -> bytes:
        return generate_latest(self.registry)
