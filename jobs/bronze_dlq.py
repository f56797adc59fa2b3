"""Bronze's one pass over a micro-batch, as Spark's Python workers run it: judge every record, send
the invalid ones to the DLQ topic, hand the valid ones on to the Delta write.

Sending the DLQ records from the workers that judged them means Kafka is read once per batch and
nothing is cached: the verdict, the DLQ and the Bronze rows all come out of the Delta write's own
tasks, instead of a cached batch read again by a stats job, a DLQ job and the write.

Safety: a task ends only after every DLQ record it sent is acknowledged (idempotent producer,
acks=all). A record that is not fails the task, so the Delta write fails: no commit, and the
checkpoint does not advance. The retried batch sends its DLQ records again; those duplicates carry
the same `dlq.source.*` coordinates, on which DLQ readers dedupe. A batch Delta already holds (a
restart after the commit, before the checkpoint) is skipped by Delta before any task runs, so it
sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pyarrow as pa
from confluent_kafka import KafkaException, Producer
from pyspark import Accumulator, AccumulatorParam
from pyspark.sql import DataFrame

from contracts.registry import DatasetContract
from jobs.kafka_produce import produce_all
from pipelines.bronze import with_verdict
from pipelines.bronze_verdict import DlqRecord, batch_tally, dlq_records, empty_tally, merge_tallies, valid_arrow_rows


class DlqNotAcknowledgedError(RuntimeError):
    """Some DLQ records of a task were not acknowledged by Kafka; the task (and the batch) fails."""


class DlqTarget(NamedTuple):
    """Where and how the workers send DLQ records: plain values, shipped to every task."""

    topic: str
    producer_config: dict[str, Any]
    job: str  # the `dlq.job` header
    marks: tuple[tuple[str, str], ...] = ()  # more `dlq.*` headers, e.g. `replay.id`


class TallyParam(AccumulatorParam):
    """Adds up the workers' `batch_tally` dicts into one per micro-batch."""

    def zero(self, value: dict) -> dict:
        return empty_tally()

    def addInPlace(self, total: dict, more: dict) -> dict:  # noqa: N802 - PySpark's name
        return merge_tallies(total, more)


# One producer per worker process and config, kept across tasks: a worker runs one task at a time,
# and a new producer would pay a broker connection and an idempotence handshake per task.
_producers: dict[str, Producer] = {}


def _cache_key(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))


def _producer(config: dict[str, Any]) -> Producer:
    if _cache_key(config) not in _producers:
        _producers[_cache_key(config)] = Producer(config)
    return _producers[_cache_key(config)]


def _discard_producer(config: dict[str, Any]) -> None:
    producer = _producers.pop(_cache_key(config), None)
    if producer is not None:
        producer.purge()  # what was not acknowledged must not arrive after the task has failed


class _Deliveries:
    def __init__(self) -> None:
        self.sent = 0
        self.failed: list[str] = []

    def on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed.append(f"{msg.topic()} partition {msg.partition()}: {err}")


def _send(producer: Producer, topic: str, records: list[DlqRecord], deliveries: _Deliveries) -> None:
    deliveries.sent += produce_all(producer, topic, records, on_delivery=deliveries.on_delivery)


def _confirm(producer: Producer, target: DlqTarget, deliveries: _Deliveries) -> None:
    """Return only when every record sent is acknowledged; raise, naming the topic, otherwise."""
    timeout_s = target.producer_config.get("delivery.timeout.ms", 30_000) / 1000 + 5
    try:
        unsent = producer.flush(timeout_s)
    except KafkaException as exc:
        unsent, deliveries.failed = deliveries.sent, [*deliveries.failed, str(exc)]
    if unsent or deliveries.failed:
        _discard_producer(target.producer_config)
        first = deliveries.failed[0] if deliveries.failed else f"still unsent after {timeout_s:g} s"
        raise DlqNotAcknowledgedError(
            f"{len(deliveries.failed) or unsent} of {deliveries.sent} DLQ records to {target.topic} "
            f"not acknowledged ({first})"
        )


def divert_invalid(judged_batches: Iterator[pa.RecordBatch], target: DlqTarget, tally: Accumulator) -> Iterator[pa.RecordBatch]:
    """One task's judged batches in; the invalid rows sent to the DLQ; the valid ones out."""
    producer = _producer(target.producer_config)
    deliveries = _Deliveries()
    task_tally = empty_tally()
    for judged in judged_batches:
        invalid = dlq_records(judged, target.job, datetime.now(UTC), target.marks)
        valid = valid_arrow_rows(judged)
        if len(invalid) + valid.num_rows != judged.num_rows:  # every record has exactly one verdict
            raise AssertionError(f"{len(invalid)} invalid + {valid.num_rows} valid != {judged.num_rows} judged")
        _send(producer, target.topic, invalid, deliveries)
        merge_tallies(task_tally, batch_tally(judged))
        yield valid
    _confirm(producer, target, deliveries)
    tally.add(task_tally)


def valid_rows_after_dlq(
    kafka_df: DataFrame, contract: DatasetContract, max_value_bytes: int, target: DlqTarget, tally: Accumulator,
) -> DataFrame:
    """The batch's valid rows (as `pipelines.bronze.with_verdict` shapes them); computing them sends
    the invalid ones to the DLQ and adds the batch's tally to `tally`."""
    return with_verdict(kafka_df, contract, max_value_bytes, divert_invalid=lambda judged: divert_invalid(judged, target, tally))
