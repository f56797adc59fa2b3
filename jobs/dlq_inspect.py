"""What a dataset's DLQ holds: one bounded read, deduplicated, summarised by reason and hour.

    spark-submit jobs/dlq_inspect.py --dataset orders [--since 2026-01-02T03:00:00Z] [--output report.json]

Reads `streamlake.<dataset>.dlq` between offsets fixed once at the start (from the low watermark, or
from the first record at or after `--since`, by Kafka's offsets-for-times, to the high watermark),
counts each raw record once by its source coordinates, and writes the report as JSON to
`<lakehouse>/_ops/dlq_reports/<dataset>/<UTC stamp>.json` (and `--output`), with a readable table on
stdout. Read only: it changes nothing. The DLQ record shaping is `pipelines/dlq.py`; the offset
bounds and the read are shared with `jobs/dlq_redrive.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from conf.settings import Settings
from contracts.registry import get_contract
from jobs.entrypoint import run_job
from jobs.kafka_offsets import offsets_for_time, watermarks
from jobs.lakehouse_io import read_kafka_batch, write_text
from pipelines.dlq import (
    dedupe_dlq_records,
    sample_records,
    summarise_by_reason,
    summarise_by_reason_and_hour,
    with_dlq_fields,
)

JOB = "dlq_inspect"
SAMPLES_PER_REASON = 3
VALUE_PREFIX_BYTES = 200
log = logging.getLogger("streamlake.dlq")


def iso_time(text: str) -> datetime:
    """An ISO-8601 time (`2026-01-02T03:00:00Z`, `2026-01-02T05:00+02:00`, `2026-01-02`); without a
    zone it is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r} (e.g. 2026-01-02T03:00:00Z)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def utc_text(at: datetime | None) -> str | None:
    if at is None:
        return None
    # A naive time is one Spark handed back, in this process's local zone.
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class OffsetBounds:
    """Where a bounded read of a topic starts and ends, per partition (end exclusive)."""

    topic: str
    start: dict[int, int]
    end: dict[int, int]

    def spark_options(self) -> tuple[str, str]:
        """Spark's startingOffsets and endingOffsets JSON."""
        return (json.dumps({self.topic: {str(p): o for p, o in sorted(self.start.items())}}),
                json.dumps({self.topic: {str(p): o for p, o in sorted(self.end.items())}}))

    @property
    def records(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.end)

    def as_json(self) -> dict[str, list[int]]:
        return {str(p): [self.start[p], self.end[p]] for p in sorted(self.end)}


def offset_bounds(settings: Settings, topic: str, since: datetime | None = None) -> OffsetBounds:
    """Per partition of `topic`: from the low watermark, or the first offset whose Kafka timestamp
    is at or after `since`, to the high watermark, both read now (so every read of the range sees
    the same records). LookupError naming the topic when Kafka does not have it."""
    try:
        held = watermarks(settings, topic)
    except LookupError:
        held = {}
    if not held:
        raise LookupError(f"topic {topic} does not exist on {settings.kafka.bootstrap}; run `streamlake topics apply`")
    start, end = {p: w.low for p, w in held.items()}, {p: w.high for p, w in held.items()}
    if since is not None:
        # A partition with no record at or after `since` resolves to its end: nothing to read there.
        found = offsets_for_time(settings, topic, sorted(held), since)
        start = {p: max(found[p], start[p]) for p in start}
    return OffsetBounds(topic, start, end)


def read_topic_range(spark: SparkSession, settings: Settings, bounds: OffsetBounds) -> DataFrame:
    starting, ending = bounds.spark_options()
    return read_kafka_batch(spark, settings, bounds.topic, starting, ending)


def read_dlq_records(
    spark: SparkSession, settings: Settings, dataset: str, since: datetime | None = None
) -> tuple[DataFrame, OffsetBounds]:
    """The DLQ's records in the range (`pipelines.dlq.with_dlq_fields`), every copy, and the range."""
    bounds = offset_bounds(settings, get_contract(dataset).dlq_topic, since)
    return with_dlq_fields(read_topic_range(spark, settings, bounds)), bounds


def _text(data: bytes | bytearray | None) -> str | None:
    """Bytes as text for a report: UTF-8 where it is, escapes where it is not."""
    return None if data is None else bytes(data).decode("utf-8", errors="backslashreplace")


def _sample_json(row: Any) -> dict[str, Any]:
    return {
        "coordinates": {"topic": row.source_topic, "partition": row.source_partition, "offset": row.source_offset},
        "dlq": {"topic": row.dlq_topic, "partition": row.dlq_partition, "offset": row.dlq_offset},
        "key": _text(row.key),
        "value_prefix": _text(row.value_prefix),
        "value_bytes": row.value_bytes,
        "error_reason": row.error_reason,
        "is_redriven": row.is_redriven,
        "headers": [[h.key, _text(h.value)] for h in row.headers or []],
    }


def build_report(spark: SparkSession, settings: Settings, dataset: str, since: datetime | None, now: datetime) -> dict[str, Any]:
    """The DLQ report of `dataset` (see the module docstring); nothing is written."""
    contract = get_contract(dataset)
    copies_df, bounds = read_dlq_records(spark, settings, dataset, since)
    copies_df = copies_df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        records_df = copies_df.transform(dedupe_dlq_records)
        copies = copies_df.count()
        records = records_df.count()
        by_reason = [
            {"error_class": r.error_class, "records": r.records, "redriven_records": r.redriven_records,
             "first_source_timestamp": utc_text(r.first_source_timestamp), "last_source_timestamp": utc_text(r.last_source_timestamp)}
            for r in records_df.transform(summarise_by_reason).collect()
        ]
        by_hour = [
            {"error_class": r.error_class, "hour": utc_text(r.hour), "records": r.records, "redriven_records": r.redriven_records}
            for r in records_df.transform(summarise_by_reason_and_hour).collect()
        ]
        samples: dict[str, list[dict[str, Any]]] = {}
        for row in records_df.transform(sample_records, SAMPLES_PER_REASON, VALUE_PREFIX_BYTES).collect():
            samples.setdefault(str(row.error_class), []).append(_sample_json(row))
    finally:
        copies_df.unpersist()
    return {
        "dataset": dataset,
        "dlq_topic": contract.dlq_topic,
        "generated_at": utc_text(now),
        "since": utc_text(since),
        "offsets": bounds.as_json(),
        "dlq_records": copies,
        "duplicates": copies - records,
        "records": records,
        "redriven_records": sum(r["redriven_records"] for r in by_reason),
        "by_reason": by_reason,
        "by_hour": by_hour,
        "samples": samples,
    }


def report_uri(settings: Settings, dataset: str, now: datetime) -> str:
    return f"{settings.lakehouse.root}/_ops/dlq_reports/{dataset}/{now.astimezone(UTC):%Y%m%dT%H%M%S}Z.json"


def format_report(report: dict[str, Any]) -> str:
    """The report as a table for people: counts per reason, per hour, then the samples."""
    since = f" since {report['since']}" if report["since"] else ""
    head = f"DLQ {report['dlq_topic']}{since}:"
    if report["records"] == 0:
        return f"{head} empty, no records to inspect"
    lines = [f"{head} {report['records']} records ({report['dlq_records']} DLQ records, duplicate copies removed: {report['duplicates']}), "
             f"{report['redriven_records']} of them failed again after a re-drive", ""]
    width = max(len(str(r["error_class"])) for r in report["by_reason"]) + 2
    lines.append(f"{'error class':<{width}}{'records':>8}{'re-driven':>11}  first .. last raw record")
    for r in report["by_reason"]:
        lines.append(f"{r['error_class']!s:<{width}}{r['records']:>8}{r['redriven_records']:>11}  "
                     f"{r['first_source_timestamp']} .. {r['last_source_timestamp']}")
    lines += ["", f"{'error class':<{width}}{'hour (UTC)':<22}{'records':>8}"]
    for r in report["by_hour"]:
        lines.append(f"{r['error_class']!s:<{width}}{r['hour']!s:<22}{r['records']:>8}")
    for error_class, samples in report["samples"].items():
        lines += ["", f"samples of {error_class}:"]
        for s in samples:
            c = s["coordinates"]
            lines.append(f"  {{\"topic\": \"{c['topic']}\", \"partition\": {c['partition']}, \"offset\": {c['offset']}}}"
                         f"  key={s['key']!r}  {s['value_bytes']} bytes  {s['error_reason']}")
            lines.append(f"    value: {s['value_prefix']!r}")
    return "\n".join(lines)


def run_inspect(
    spark: SparkSession, settings: Settings, dataset: str, since: datetime | None = None, output: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build the report, write it to the lakehouse (and `output`), print it; return it."""
    now = now or datetime.now(UTC)
    report = build_report(spark, settings, dataset, since, now)
    text = json.dumps(report, indent=2, sort_keys=True)
    uri = report_uri(settings, dataset, now)
    write_text(spark, uri, text)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    print(format_report(report))
    print(f"\nreport: {uri}" + (f" and {output}" if output else ""))
    log.info("dlq inspected", extra={
        "dataset": dataset, "dlq_topic": report["dlq_topic"], "since": report["since"], "offsets": report["offsets"],
        "records": report["records"], "dlq_records": report["dlq_records"], "duplicates": report["duplicates"],
        "redriven_records": report["redriven_records"],
        "by_reason": {str(r["error_class"]): r["records"] for r in report["by_reason"]}, "path": uri, "output": output,
    })
    return report


def add_since_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=iso_time, default=None,
                        help="only DLQ records written at or after this ISO-8601 time (UTC without a zone)")


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_since_argument(parser)
        parser.add_argument("--output", default=None, help="also write the report's JSON to this local file")

    def body(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event) -> None:
        run_inspect(spark, settings, args.dataset, args.since, args.output)

    return run_job(JOB, "What a dataset's DLQ holds, by reason and hour, with samples (read only).", body, argv, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
