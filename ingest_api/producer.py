"""The API's one Kafka producer, and the bridge from librdkafka delivery reports to asyncio.

Owns: building the idempotent producer from `settings.kafka.producer_config` (the one source of its
configuration), the thread that serves its delivery reports, and the futures that requests await.
A request's events count as stored only when every delivery report for them says so. It never
flushes per request: throughput comes from many requests in flight and librdkafka's batching.
It does not validate events or build records (`ingest_api.ingestion` does).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from conf.settings import Settings

log = logging.getLogger(__name__)

# How long the poll thread blocks waiting for reports; it bounds how late shutdown notices `stop`.
_POLL_INTERVAL_S = 0.1
# librdkafka scans for timed-out records about once a second; this grace lets its report (which
# names the reason) arrive before the request's own timer fires.
_DELIVERY_GRACE_S = 2.0
# librdkafka's report for a record that waited `delivery.timeout.ms` (Kafka away or too slow).
_MSG_TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT).name()


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Stored:
    """Where Kafka stored one record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class NotStored:
    """Why one record is not known to be stored: a librdkafka error name and its text."""

    index: int
    code: str
    reason: str


class DeliveryFailed(Exception):
    """Some records of a request are not known to be stored; none of the request is acknowledged."""

    def __init__(self, cause: str, failures: list[NotStored]) -> None:
        self.cause = cause  # queue_full | delivery_failed | delivery_timeout | producer_failed
        self.failures = failures
        super().__init__(f"{cause}: {len(failures)} record(s) not stored")


class _PendingRequest:
    """The delivery reports of one request's records, resolved into one future.

    Reports arrive on the poll thread; the future is resolved on the event loop once, when the last
    report is in, so a batch of 500 records costs one cross-thread wake-up, not 500.
    """

    __slots__ = ("_loop", "future", "stored", "failures", "_remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.stored: list[Stored | None] = [None] * count
        self.failures: list[NotStored] = []
        self._remaining = count

    def on_delivery(self, index: int, err: KafkaError | None, msg: Message) -> None:
        # Runs on the poll thread, the only thread that serves reports, so no lock is needed.
        if err is None:
            self.stored[index] = Stored(msg.topic(), msg.partition(), msg.offset())
        else:
            self.failures.append(NotStored(index, err.name(), err.str()))
        self._remaining -= 1
        if self._remaining == 0:
            try:
                self._loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:  # the loop is closed: shutdown flush, nobody is waiting
                pass

    def unreported_or_failed(self, waited_s: float) -> list[NotStored]:
        failed = {f.index: f for f in list(self.failures)}  # copied: reports may still be arriving
        return [
            failed.get(i) or NotStored(i, "_TIMED_OUT", f"no delivery report within {waited_s:g}s")
            for i, stored in enumerate(self.stored)
            if stored is None
        ]

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class DeliveryBridge:
    """One idempotent producer per process; `deliver()` answers only after the delivery reports."""

    def __init__(self, settings: Settings) -> None:
        api = settings.api
        config = settings.kafka.producer_config(
            client_id=api.producer_id,
            delivery_timeout_ms=int(api.delivery_timeout_s * 1000),
            queue_max_messages=api.producer_queue_max_messages,
        )
        # librdkafka's own log lines go through our JSON logging instead of raw stderr.
        config |= {"error_cb": self._on_error, "logger": logging.getLogger("ingest_api.librdkafka")}
        self._producer = Producer(config)
        self._wait_s = api.delivery_timeout_s + _DELIVERY_GRACE_S
        self.fatal_error: KafkaError | None = None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            # An idempotent producer that hit a fatal error refuses every later record; only a new
            # process clears it, so health checks report it (see routes/health.py).
            self.fatal_error = err
            log.critical("kafka producer fatal error", extra={"code": err.name(), "reason": err.str()})
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka unreachable: all brokers down", extra={"code": err.name(), "reason": err.str()})
        else:
            # Connection errors repeat at every reconnect attempt; librdkafka's own log has them too.
            log.info("kafka client error", extra={"code": err.name(), "reason": err.str()})

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(_POLL_INTERVAL_S)

    @property
    def queue_depth(self) -> int:
        """Records handed to librdkafka and not yet reported (queued or in flight)."""
        return len(self._producer)

    async def deliver(self, records: Sequence[Record]) -> list[Stored]:
        """Produce the records; return where each is stored, or raise DeliveryFailed."""
        loop = asyncio.get_running_loop()
        pending = _PendingRequest(loop, len(records))
        for index, record in enumerate(records):
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    on_delivery=partial(pending.on_delivery, index),
                )
            except BufferError:
                # The local queue is full (Kafka slow or away): fail now rather than wait for room.
                # Records of this request already queued may still be stored; none is acknowledged.
                unsent = range(index, len(records))
                raise DeliveryFailed(
                    "queue_full", [NotStored(i, "_QUEUE_FULL", "the producer's local queue is full") for i in unsent]
                ) from None
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                cause = "producer_failed" if error.fatal() else "delivery_failed"
                unsent = range(index, len(records))
                raise DeliveryFailed(cause, [NotStored(i, error.name(), error.str()) for i in unsent]) from None
        # A timer on the loop, not wait_for: cheaper, and the report may still win the race.
        timer = loop.call_later(self._wait_s, _expire, pending.future)
        try:
            await pending.future
        except TimeoutError:
            raise DeliveryFailed("delivery_timeout", pending.unreported_or_failed(self._wait_s)) from None
        finally:
            timer.cancel()
        if pending.failures:
            failures = sorted(pending.failures, key=lambda f: f.index)
            timed_out = all(f.code == _MSG_TIMED_OUT for f in failures)
            raise DeliveryFailed("delivery_timeout" if timed_out else "delivery_failed", failures)
        return pending.stored  # type: ignore[return-value]  # every slot is set once all reports are in

    async def topic_partitions(self, topics: Sequence[str], timeout_s: float) -> dict[str, int]:
        """Ask the broker for the topics' metadata; raise KafkaException when it does not answer."""
        metadata = await asyncio.to_thread(self._producer.list_topics, timeout=timeout_s)
        return {
            name: len(metadata.topics[name].partitions)
            for name in topics
            if name in metadata.topics and metadata.topics[name].error is None
        }

    def close(self, timeout_s: float) -> int:
        """Stop serving reports and flush what is queued; return how many records were left unsent."""
        self._stop.set()
        self._poller.join()
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("kafka producer closed with undelivered records", extra={"undelivered": remaining})
        return remaining


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
