"""The API's one Kafka producer, and the bridge from librdkafka delivery reports to asyncio.

Owns: building the idempotent producer from `settings.kafka.producer_config` (the one source of its
configuration), the task that serves its delivery reports, and the futures that requests await.
A request's events count as stored only when every delivery report for them says so. It never
flushes per request: throughput comes from many requests in flight and librdkafka's batching.
It does not validate events or build records (`ingest_api.ingestion` does).

Reports are served on the event loop by a task calling the non-blocking `poll(0)`: every millisecond
while requests wait, rarely when none do. Callbacks then resolve futures on the loop's own thread,
with no second Python thread taking the GIL and no cross-thread wake-up per request (a poll thread
cost more CPU per request; docs/decisions.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from conf.settings import Settings

log = logging.getLogger(__name__)

# While requests wait, reports are looked for this often: small next to linger.ms plus a round trip.
_ACTIVE_POLL_S = 0.001
# With nothing waiting, error and log callbacks are still served at this pace.
_IDLE_POLL_S = 0.5
# librdkafka scans for timed-out records about once a second; this grace lets its report (which
# names the reason) arrive before the request's own timer fires.
_DELIVERY_GRACE_S = 2.0
# librdkafka's report for a record that waited `delivery.timeout.ms` (Kafka away or too slow).
_MSG_TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT).name()
# The record is over the client's or the topic's size limit: retrying cannot help.
_MSG_SIZE_TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE).name()


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


class DeliveryFailedError(Exception):
    """Some records of a request are not known to be stored; none of the request is acknowledged."""

    def __init__(self, cause: str, failures: list[NotStored]) -> None:
        # queue_full | delivery_failed | delivery_timeout | producer_failed | record_too_large
        self.cause = cause
        self.failures = failures
        super().__init__(f"{cause}: {len(failures)} record(s) not stored")


class _PendingRequest:
    """The delivery reports of one request's records, resolved into one future when the last is in."""

    __slots__ = ("future", "stored", "failures", "_remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self.stored: list[Stored | None] = [None] * count
        self.failures: list[NotStored] = []
        self._remaining = count

    def on_delivery(self, index: int, err: KafkaError | None, msg: Message) -> None:
        # Runs inside poll(), on the event loop's thread: futures may be touched directly.
        if err is None:
            self.stored[index] = Stored(msg.topic(), msg.partition(), msg.offset())
        else:
            self.failures.append(NotStored(index, err.name(), err.str()))
        self._remaining -= 1
        if self._remaining == 0 and not self.future.done():
            self.future.set_result(None)

    def unreported_or_failed(self, waited_s: float) -> list[NotStored]:
        failed = {f.index: f for f in self.failures}
        return [
            failed.get(i) or NotStored(i, "_TIMED_OUT", f"no delivery report within {waited_s:g}s")
            for i, stored in enumerate(self.stored)
            if stored is None
        ]


class DeliveryBridge:
    """One idempotent producer per process; `deliver()` answers only after the delivery reports."""

    def __init__(self, settings: Settings) -> None:
        api = settings.api
        config = settings.kafka.producer_config(
            client_id=api.producer_id,
            delivery_timeout_ms=int(api.delivery_timeout_s * 1000),
            queue_max_messages=api.producer_queue_max_messages,
            linger_ms=api.producer_linger_ms,
        )
        self.producer_config = dict(config)  # what the producer was built with (callbacks aside)
        # librdkafka's own log lines go through our JSON logging instead of raw stderr.
        config |= {"error_cb": self._on_error, "logger": logging.getLogger("ingest_api.librdkafka")}
        self._producer = Producer(config)
        self._wait_s = api.delivery_timeout_s + _DELIVERY_GRACE_S
        self.fatal_error: KafkaError | None = None
        self._waiting = 0  # requests awaiting reports
        self._work = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start serving delivery reports on the running event loop."""
        self._poller = asyncio.get_running_loop().create_task(self._serve_reports(), name="kafka-delivery-reports")

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

    async def _serve_reports(self) -> None:
        poll = self._producer.poll
        while True:
            poll(0)  # never blocks: serves the reports that are in, and returns
            if self._waiting:
                await asyncio.sleep(_ACTIVE_POLL_S)
                continue
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_IDLE_POLL_S):
                    await self._work.wait()  # a request starting to wait ends the idle pause

    @property
    def requests_waiting(self) -> int:
        """Requests whose records are handed to the producer and not all reported yet."""
        return self._waiting

    @property
    def queue_depth(self) -> int:
        """Records handed to librdkafka and not yet reported (queued or in flight)."""
        return len(self._producer)

    async def deliver(self, records: Sequence[Record]) -> list[Stored]:
        """Produce the records; return where each is stored, or raise DeliveryFailedError."""
        loop = asyncio.get_running_loop()
        pending = _PendingRequest(loop, len(records))
        self._waiting += 1
        if not self._work.is_set():
            self._work.set()
        try:
            self._produce(pending, records)
            # A timer on the loop, not wait_for: cheaper, and the report may still win the race.
            timer = loop.call_later(self._wait_s, _expire, pending.future)
            try:
                await pending.future
            except TimeoutError:
                raise DeliveryFailedError("delivery_timeout", pending.unreported_or_failed(self._wait_s)) from None
            finally:
                timer.cancel()
        finally:
            self._waiting -= 1
        if pending.failures:
            failures = sorted(pending.failures, key=lambda f: f.index)
            raise DeliveryFailedError(_cause_of(failures), failures)
        return pending.stored  # type: ignore[return-value]  # every slot is set once all reports are in

    def _produce(self, pending: _PendingRequest, records: Sequence[Record]) -> None:
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
                failed = NotStored(index, "_QUEUE_FULL", "the producer's local queue is full")
                raise DeliveryFailedError("queue_full", _with_unsent(failed, len(records))) from None
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                failed = NotStored(index, error.name(), error.str())
                cause = "producer_failed" if error.fatal() else _cause_of([failed])
                raise DeliveryFailedError(cause, _with_unsent(failed, len(records))) from None

    async def topic_partitions(self, topics: Sequence[str], timeout_s: float) -> dict[str, int]:
        """Ask the broker for the topics' metadata; raise KafkaException when it does not answer."""
        metadata = await asyncio.to_thread(self._producer.list_topics, timeout=timeout_s)
        return {
            name: len(metadata.topics[name].partitions)
            for name in topics
            if name in metadata.topics and metadata.topics[name].error is None
        }

    async def close(self, timeout_s: float) -> int:
        """Stop serving reports, then flush what is queued; return how many records were left unsent."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        # On the loop's thread on purpose: flush() serves the last reports, whose callbacks touch
        # futures. The server has stopped taking requests, so blocking the loop here costs nothing.
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("kafka producer closed with undelivered records", extra={"undelivered": remaining})
        return remaining


def _cause_of(failures: Sequence[NotStored]) -> str:
    codes = {f.code for f in failures}
    if _MSG_SIZE_TOO_LARGE in codes:
        return "record_too_large"
    return "delivery_timeout" if codes == {_MSG_TIMED_OUT} else "delivery_failed"


def _with_unsent(failed: NotStored, count: int) -> list[NotStored]:
    """The record that failed to produce, then every later one of the request (never handed over)."""
    later = f"not sent: event {failed.index} of the request failed first"
    return [failed, *(NotStored(i, "_NOT_SENT", later) for i in range(failed.index + 1, count))]


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
