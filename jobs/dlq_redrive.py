"""Re-drive DLQ records back to the raw topic after a fix, each raw record at most once.

    spark-submit jobs/dlq_redrive.py --dataset orders --reason oversized [--since T] [--dry-run]
    spark-submit jobs/dlq_redrive.py --dataset orders --coordinates coordinates.json [--dry-run]

Selects DLQ records (one per source coordinates) by error class or by the source coordinates a file
names, and sends each one's original key, value and headers (without the `dlq.*` ones) to
`streamlake.<dataset>.raw` with the `redrive.*` headers (`pipelines.dlq.RedriveHeader`), through the
idempotent producer. The key is kept, so the record lands on the partition of its key, as the
original did.

The ledger `_ops/dlq_redrives` (`jobs.ops_tables.DLQ_REDRIVES_SCHEMA`), keyed by source
coordinates, makes it at most once: the intent is recorded first (rows 'pending', an insert-only
MERGE, so a record already there is never taken again), then the records are sent, then, once
acknowledged, their rows become 'sent' with where they landed. A run that died in between left rows
'pending': the next run looks for them in the raw topic (from the time the intent was recorded, by
their `redrive.*` headers), marks those it finds 'sent' and sends only the others.

A record that carries `redrive.*` headers itself failed again after a re-drive: a selection by
reason skips it; naming its coordinates re-drives it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from confluent_kafka import Producer
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from conf.settings import Settings
from contracts.registry import DATASETS, get_contract
from jobs.dlq_inspect import add_since_argument, offset_bounds, read_dlq_records, read_topic_range, utc_text
from jobs.entrypoint import run_job
from jobs.kafka_produce import produce_all
from jobs.lakehouse_io import delta_table_exists, ensure_delta_table
from jobs.ops_tables import DLQ_REDRIVES, DLQ_REDRIVES_SCHEMA, ops_table_uri
from pipelines.dlq import (
    SOURCE_COORDINATES,
    dedupe_dlq_records,
    filter_by_reason,
    filter_named_coordinates,
    landed_redrives,
    to_redrive_records,
)

JOB = "dlq_redrive"
PENDING, SENT = "pending", "sent"
# A re-driven record is stamped by the producer after its intent was recorded; the margin covers a
# driver clock that stepped back in between.
CLOCK_MARGIN = timedelta(minutes=1)
LISTED_IN_DRY_RUN = 50
FLUSH_GRACE_S = 10.0
log = logging.getLogger("streamlake.dlq")

COORDINATES_SCHEMA = StructType([
    StructField("topic", StringType(), False),
    StructField("partition", IntegerType(), False),
    StructField("offset", LongType(), False),
])
_TO_SEND_SCHEMA = StructType([
    StructField("source_topic", StringType(), False),
    StructField("source_partition", IntegerType(), False),
    StructField("source_offset", LongType(), False),
    StructField("redrive_id", StringType(), False),
])


class Coordinates(NamedTuple):
    """A raw record's coordinates, as `dlq.source.*` name them: what a coordinates file lists."""

    topic: str
    partition: int
    offset: int

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


class CoordinatesFileError(ValueError):
    """A coordinates file that is not a JSON list of {"topic", "partition", "offset"} entries."""


def parse_coordinates(text: str, source: str, raw_topic: str | None = None) -> list[Coordinates]:
    """The entries of a coordinates file: a JSON list of {"topic": str, "partition": int >= 0,
    "offset": int >= 0}, no entry twice, each topic `raw_topic` when given. CoordinatesFileError
    naming the file and the entry (by index, from 0) otherwise."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoordinatesFileError(f"{source}: not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise CoordinatesFileError(
            f'{source}: must be a JSON list of {{"topic", "partition", "offset"}} entries, got {type(entries).__name__}'
        )
    found: dict[Coordinates, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: entry {index} ({json.dumps(entry)})"
        if not isinstance(entry, dict) or set(entry) != {"topic", "partition", "offset"}:
            raise CoordinatesFileError(f'{where}: must be an object with exactly "topic", "partition" and "offset"')
        topic, partition, offset = entry["topic"], entry["partition"], entry["offset"]
        if not isinstance(topic, str) or not topic:
            raise CoordinatesFileError(f"{where}: topic must be a non-empty string")
        for name, number in (("partition", partition), ("offset", offset)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise CoordinatesFileError(f"{where}: {name} must be an integer >= 0")
        if raw_topic is not None and topic != raw_topic:
            raise CoordinatesFileError(f"{where}: topic must be the dataset's raw topic {raw_topic}")
        coordinates = Coordinates(topic, partition, offset)
        if coordinates in found:
            raise CoordinatesFileError(f"{where}: the same coordinates as entry {found[coordinates]}")
        found[coordinates] = index
    return list(found)


def read_coordinates_file(path: str, raw_topic: str | None = None) -> list[Coordinates]:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise CoordinatesFileError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_coordinates(text, path, raw_topic)


# -- sending ------------------------------------------------------------------------------------


class OutgoingRecord(NamedTuple):
    source: Coordinates
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


@dataclass
class SendResult:
    landed: dict[Coordinates, tuple[int, int]]  # source coordinates -> (raw partition, raw offset)
    error: str | None = None  # set when some record was not acknowledged


# Sends records to the raw topic; returns where each acknowledged one landed.
Sender = Callable[[Iterable[OutgoingRecord]], SendResult]


class RedriveNotAcknowledgedError(RuntimeError):
    """Some re-driven records were not acknowledged; their ledger rows stay 'pending'."""


def kafka_sender(settings: Settings, topic: str, client_id: str) -> Sender:
    """Send with the idempotent producer, then wait for every acknowledgement (or its failure)."""

    def send(records: Iterable[OutgoingRecord]) -> SendResult:
        config = settings.kafka.producer_config(client_id=client_id)
        producer = Producer(config)
        result, errors = SendResult({}), []
        # A delivery report carries the key and value but not the headers. Records of the same key
        # and value share a partition, whose reports come in the order produced (idempotence keeps
        # it), so a queue per (key, value) tells which record each report is for.
        waiting: dict[tuple[bytes | None, bytes | None], deque[Coordinates]] = {}

        def queued_for_sending() -> Iterator[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
            for record in records:
                waiting.setdefault((record.key, record.value), deque()).append(record.source)
                yield record.key, record.value, record.headers

        def on_delivery(err, msg) -> None:
            source = waiting[(msg.key(), msg.value())].popleft()
            if err is not None:
                errors.append(f"{json.dumps(source.as_json())}: {err}")
            else:
                result.landed[source] = (msg.partition(), msg.offset())

        queued = produce_all(producer, topic, queued_for_sending(), on_delivery)
        # Past the delivery timeout every record has its report, acknowledged or failed.
        left = producer.flush(config["delivery.timeout.ms"] / 1000 + FLUSH_GRACE_S)
        if left or errors or len(result.landed) != queued:
            cause = errors[0] if errors else f"{left} still queued after the wait"
            result.error = f"{queued - len(result.landed)} of {queued} re-driven records to {topic} not acknowledged ({cause})"
        return result

    return send


# -- the ledger -----------------------------------------------------------------------------------


def _ledger_df(spark: SparkSession, path: str, dataset: str) -> DataFrame:
    if not delta_table_exists(spark, path):
        return spark.createDataFrame([], DLQ_REDRIVES_SCHEMA)
    return spark.read.format("delta").load(path).where(F.col("dataset") == F.lit(dataset))


def _record_intent(spark: SparkSession, path: str, rows: list[tuple]) -> None:
    """Insert 'pending' rows, once per source coordinates (a row already there is left as it is)."""
    from delta.tables import DeltaTable

    ensure_delta_table(spark, path, DLQ_REDRIVES_SCHEMA, [], {})
    is_same_record = " AND ".join(f"ledger.{c} = intent.{c}" for c in SOURCE_COORDINATES)
    (DeltaTable.forPath(spark, path).alias("ledger")
     .merge(spark.createDataFrame(rows, DLQ_REDRIVES_SCHEMA).alias("intent"), is_same_record)
     .whenNotMatchedInsertAll().execute())


def _mark_sent(spark: SparkSession, path: str, landed: dict[Coordinates, tuple[int, int]], at: datetime) -> None:
    """The pending rows of `landed` become 'sent', with where they landed."""
    from delta.tables import DeltaTable

    if not landed:
        return
    schema = StructType([*COORDINATES_SCHEMA.fields, StructField("raw_partition", IntegerType()), StructField("raw_offset", LongType())])
    landed_df = spark.createDataFrame([(*c, p, o) for c, (p, o) in landed.items()], schema)
    is_same_record = " AND ".join(f"ledger.source_{c} = landed.{c}" for c in ("topic", "partition", "offset"))
    (DeltaTable.forPath(spark, path).alias("ledger")
     .merge(landed_df.alias("landed"), f"{is_same_record} AND ledger.state = '{PENDING}'")
     .whenMatchedUpdate(set={"state": F.lit(SENT), "raw_partition": F.col("landed.raw_partition"),
                             "raw_offset": F.col("landed.raw_offset"), "sent_at": F.lit(at)})
     .execute())


def _coordinates(row: Any) -> Coordinates:
    return Coordinates(row.source_topic, row.source_partition, row.source_offset)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class RedriveSummary:
    redrive_id: str
    dataset: str
    selection: dict[str, Any]
    dry_run: bool
    selected: int = 0
    already_redriven: int = 0  # in the ledger already
    failed_again: int = 0  # skipped: came back to the DLQ after a re-drive
    without_coordinates: int = 0  # skipped: no dlq.source.* headers
    pending_found: int = 0  # pending rows of an interrupted run found in the raw topic
    pending_resent: int = 0  # pending rows of an interrupted run sent again
    sent: int = 0  # acknowledged this run (new and pending_resent)
    by_reason: dict[str, Counter] = field(default_factory=dict)
    to_send: list[dict[str, Any]] = field(default_factory=list)  # what was (or, in a dry run, would be) sent

    def count(self, error_class: str | None, what: str) -> None:
        self.by_reason.setdefault(str(error_class), Counter())[what] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "redrive_id": self.redrive_id, "dataset": self.dataset, "selection": self.selection, "dry_run": self.dry_run,
            "selected": self.selected, "already_redriven": self.already_redriven,
            "skipped": {"failed_again_after_redrive": self.failed_again, "without_source_coordinates": self.without_coordinates},
            "pending_found": self.pending_found, "pending_resent": self.pending_resent, "sent": self.sent,
            "by_reason": {k: dict(v) for k, v in sorted(self.by_reason.items())},
        }


def new_redrive_id(dataset: str, at: datetime) -> str:
    return f"redrive-{dataset}-{at.astimezone(UTC):%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


def run_redrive(
    spark: SparkSession,
    settings: Settings,
    dataset: str,
    *,
    reason: str | None = None,
    coordinates: list[Coordinates] | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    sender: Sender | None = None,
    now: datetime | None = None,
) -> RedriveSummary:
    """Re-drive the selected DLQ records of `dataset` (by `reason` or by `coordinates`, written at
    or after `since`); see the module docstring. Raises when a named coordinate is not in the DLQ,
    a pending record's DLQ record is gone, or a record was not acknowledged."""
    if (reason is None) == (coordinates is None):
        raise ValueError("give exactly one of reason and coordinates")
    contract = get_contract(dataset)
    now = now or datetime.now(UTC)
    redrive_id = new_redrive_id(dataset, now)
    ledger_path = ops_table_uri(settings, DLQ_REDRIVES)
    selection = {"reason": reason} if reason is not None else {"coordinates": len(coordinates or [])}
    if since is not None:
        selection["since"] = utc_text(since)
    summary = RedriveSummary(redrive_id, dataset, selection, dry_run)
    context = {"dataset": dataset, "redrive_id": redrive_id, "dry_run": dry_run, "path": ledger_path}
    if coordinates is not None:
        parse_coordinates(json.dumps([c.as_json() for c in coordinates]), "coordinates", contract.raw_topic)
    offset_bounds(settings, contract.raw_topic)  # the raw topic must exist before anything is recorded

    # The whole DLQ (the selection may be narrower): a pending record of an earlier run is re-sent
    # from its DLQ record whenever that was written.
    copies_df, dlq_bounds = read_dlq_records(spark, settings, dataset)
    records_df = copies_df.transform(dedupe_dlq_records).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        if reason is not None:
            selected_df = filter_by_reason(records_df, reason)
        else:
            selected_df = filter_named_coordinates(records_df, spark.createDataFrame(list(coordinates or []), COORDINATES_SCHEMA))
        if since is not None:
            selected_df = selected_df.filter(F.col("dlq_timestamp") >= F.lit(since))
        light = ["source_topic", "source_partition", "source_offset", "dlq_topic", "dlq_partition", "dlq_offset",
                 "error_class", "is_redriven"]
        selected = selected_df.select(*light).orderBy(*SOURCE_COORDINATES).collect()
        if coordinates is not None:
            missing = [c for c in coordinates if c not in {_coordinates(r) for r in selected}]
            if missing:
                where = "" if since is None else f" written since {utc_text(since)}"
                raise LookupError(f"coordinates not in DLQ topic {contract.dlq_topic}{where} (offsets {dlq_bounds.as_json()}): "
                                  + ", ".join(json.dumps(c.as_json()) for c in missing))
        ledger = {_coordinates(r): r for r in _ledger_df(spark, ledger_path, dataset).collect()}

        # -- pending rows of an interrupted run: in the raw topic already, or to send again
        pending = [r for r in ledger.values() if r.state == PENDING]
        found: dict[Coordinates, tuple[int, int]] = {}
        if pending:
            earliest = min(r.recorded_at for r in pending).astimezone(UTC) - CLOCK_MARGIN
            raw_df = read_topic_range(spark, settings, offset_bounds(settings, contract.raw_topic, earliest))
            pending_df = spark.createDataFrame([(r.redrive_id, *_coordinates(r)) for r in pending],
                                               "redrive_id string, source_topic string, source_partition int, source_offset long")
            found = {_coordinates(r): (r.raw_partition, r.raw_offset) for r in landed_redrives(raw_df, pending_df).collect()}
            summary.pending_found = len(found)
            if not dry_run:
                _mark_sent(spark, ledger_path, found, now)
            log.info("pending re-drives resolved", extra={**context, "pending": len(pending), "found_in_raw_topic": len(found),
                                                         "to_send_again": len(pending) - len(found), "raw_topic": contract.raw_topic})
        resend = {_coordinates(r): r.redrive_id for r in pending if _coordinates(r) not in found}
        error_class_of = {c: ledger[c].error_class for c in resend}

        # -- what the selection holds
        new_rows = []
        for row in selected:
            summary.selected += 1
            summary.count(row.error_class, "selected")
            if row.source_topic is None or row.source_partition is None or row.source_offset is None:
                summary.without_coordinates += 1
                summary.count(row.error_class, "skipped")
            elif _coordinates(row) in resend:
                summary.count(row.error_class, "pending_from_interrupted_run")
            elif _coordinates(row) in ledger:
                summary.already_redriven += 1
                summary.count(row.error_class, "already_redriven")
            elif row.is_redriven and coordinates is None:
                summary.failed_again += 1
                summary.count(row.error_class, "failed_again_after_redrive")
            else:
                error_class_of[_coordinates(row)] = row.error_class
                new_rows.append((redrive_id, dataset, *_coordinates(row), row.dlq_topic, row.dlq_partition, row.dlq_offset,
                                 row.error_class, PENDING, None, None, now, None))

        to_send = dict(resend)
        if new_rows and not dry_run:
            _record_intent(spark, ledger_path, new_rows)
            owned = (spark.read.format("delta").load(ledger_path)
                     .where((F.col("redrive_id") == F.lit(redrive_id)) & (F.col("state") == F.lit(PENDING))).collect())
            if len(owned) < len(new_rows):  # another re-drive recorded them first: it sends them
                log.warning("records taken by a concurrent re-drive", extra={**context, "records": len(new_rows) - len(owned)})
            to_send.update({_coordinates(r): redrive_id for r in owned})
        elif new_rows:
            to_send.update({Coordinates(*r[2:5]): redrive_id for r in new_rows})
        summary.to_send = [{**c.as_json(), "redrive_id": rid} for c, rid in sorted(to_send.items())]

        if dry_run or not to_send:
            return _finish(summary, context)

        # -- send, then mark what was acknowledged
        to_send_df = spark.createDataFrame([(*c, rid) for c, rid in to_send.items()], _TO_SEND_SCHEMA)
        outgoing_df = (
            records_df.join(to_send_df, on=SOURCE_COORDINATES, how="inner")
            .transform(to_redrive_records)
            .orderBy(*SOURCE_COORDINATES)
        )
        outgoing = list(_outgoing(outgoing_df))
        # Only a pending row of an earlier run can miss its DLQ record (the DLQ's retention passed):
        # the others are sent all the same, and the run fails afterwards naming it.
        gone = sorted(set(to_send) - {r.source for r in outgoing})
        send = sender or kafka_sender(settings, contract.raw_topic, f"streamlake-dlq-redrive-{dataset}")
        log.info("re-driving", extra={**context, "records": len(outgoing), "pending_again": len(resend), "raw_topic": contract.raw_topic})
        result = send(outgoing) if outgoing else SendResult({})
        _mark_sent(spark, ledger_path, result.landed, datetime.now(UTC))
        for source in result.landed:
            summary.sent += 1
            summary.pending_resent += source in resend
            summary.count(error_class_of.get(source), "sent")
        if result.error is not None:
            raise RedriveNotAcknowledgedError(f"{result.error}; their rows stay '{PENDING}' in {ledger_path}, the next run resolves them")
        if gone:
            raise LookupError(f"pending re-drives whose DLQ record is no longer in {contract.dlq_topic} (retention?): "
                              + ", ".join(json.dumps(c.as_json()) for c in gone) + f"; their rows stay '{PENDING}' in {ledger_path}")
        return _finish(summary, context)
    finally:
        records_df.unpersist()


def _outgoing(outgoing_df: DataFrame) -> Iterator[OutgoingRecord]:
    for row in outgoing_df.toLocalIterator():
        yield OutgoingRecord(
            _coordinates(row),
            None if row.key is None else bytes(row.key),
            None if row.value is None else bytes(row.value),
            [(h.key, None if h.value is None else bytes(h.value)) for h in row.headers],
        )


def _finish(summary: RedriveSummary, context: dict) -> RedriveSummary:
    print(format_summary(summary))
    log.info("dlq re-drive dry run" if summary.dry_run else "dlq re-drive done", extra={**context, **summary.as_json()})
    return summary


def format_summary(summary: RedriveSummary) -> str:
    what = ", ".join(f"{k} {v}" for k, v in summary.selection.items())
    if summary.selected == 0 and not summary.to_send:
        return f"re-drive {summary.redrive_id} ({what}): nothing selected, nothing to re-drive"
    verb = "would re-drive" if summary.dry_run else "re-drove"
    count = len(summary.to_send) if summary.dry_run else summary.sent
    lines = [
        f"re-drive {summary.redrive_id} ({what}){' [dry run: nothing changed]' if summary.dry_run else ''}",
        f"  selected {summary.selected}; already re-driven (ledger) {summary.already_redriven}; "
        f"skipped: failed again after re-drive {summary.failed_again}, without source coordinates {summary.without_coordinates}",
        f"  pending from an interrupted run: {summary.pending_found} found in the raw topic, "
        f"{summary.pending_resent} sent again",
        f"  {verb} {count}",
    ]
    for error_class, counts in sorted(summary.by_reason.items()):
        lines.append(f"  {error_class}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if summary.failed_again:
        lines.append("  records that failed again after a re-drive are re-driven only when named with --coordinates")
    if summary.dry_run:
        for entry in summary.to_send[:LISTED_IN_DRY_RUN]:
            lines.append("  " + json.dumps({k: entry[k] for k in ("topic", "partition", "offset")}))
        if len(summary.to_send) > LISTED_IN_DRY_RUN:
            lines.append(f"  ... and {len(summary.to_send) - LISTED_IN_DRY_RUN} more")
    return "\n".join(lines)


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.reason is None) == (args.coordinates is None):
        parser.error("give exactly one of --reason and --coordinates")
    if args.coordinates is not None:
        raw_topic = DATASETS[args.dataset].raw_topic if args.dataset in DATASETS else None
        try:
            args.coordinates = read_coordinates_file(args.coordinates, raw_topic)
        except CoordinatesFileError as exc:
            parser.error(f"argument --coordinates: {exc}")


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reason", default=None, help="re-drive the DLQ records of this error class, e.g. oversized")
        parser.add_argument("--coordinates", default=None,
                            help='a JSON file listing source coordinates to re-drive: [{"topic": ..., "partition": ..., "offset": ...}]')
        add_since_argument(parser)
        parser.add_argument("--dry-run", action="store_true", help="print what would be re-driven; change nothing")

    def body(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event) -> None:
        run_redrive(spark, settings, args.dataset, reason=args.reason, coordinates=args.coordinates, since=args.since,
                    dry_run=args.dry_run)

    return run_job(JOB, "Re-drive DLQ records to the raw topic after a fix, each at most once.", body, argv, add_arguments,
                   check_arguments)


if __name__ == "__main__":
    sys.exit(main())
