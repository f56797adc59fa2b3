"""Producing a known set of records to a topic with back-pressure: the one produce loop.

Used wherever a tool or a job must write every record of a list (the DLQ sender in Spark's workers,
the demo's and tests' producers, the benchmarks). The ingestion API has its own path: it answers 503
when the local queue is full instead of waiting for room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Producer

Headers = list[tuple[str, bytes | None]] | None
DeliveryCallback = Callable[[Any, Any], None]


def produce_all(
    producer: Producer,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Headers]],
    on_delivery: DeliveryCallback | None = None,
    wait_for_room_s: float = 0.1,
) -> int:
    """Queue every (key, value, headers) record for `topic`; return how many were queued.

    A full local queue (`BufferError`) is waited out by serving the broker's acknowledgements, never
    by dropping a record. Returns before they are acknowledged: the caller flushes, and learns of
    each record's fate from `on_delivery`.
    """
    queued = 0
    for key, value, headers in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(wait_for_room_s)
        producer.poll(0)  # serve delivery reports as they come, so the queue keeps draining
        queued += 1
    return queued
