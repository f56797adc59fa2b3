"""The ops summary: one day's state of every dataset, as JSON and as a self-contained HTML report.

    spark-submit jobs/ops_summary.py [--date 2026-01-01] [--output-dir DIR] [--runs 10]
    streamlake ops summary [--date ...] [--output-dir DIR]      (the same, through spark-submit)

For every registered dataset and the date (default: today, UTC):
    layers    rows in Bronze and quarantine (by ingestion_date), Silver and each Gold table (by
              event_date), and in total; a table not created yet is reported absent (null)
    dlq       the DLQ topic read once, bounded by its watermarks, deduplicated on `dlq.source.*`:
              records by `dlq.error.class` whose source timestamp falls on the date, and all of them
    lag       the raw topic's end offsets against what Bronze has reached: the Bronze stream's last
              committed checkpoint offsets, or max(kafka_offset) + 1 in Bronze without a checkpoint
    runs      the last runs of `_ops/batch_runs` with their checks from `_ops/quality_events`
    replays   `job = 'replay'` runs; re-drives from the `_ops/dlq_redrives` ledger (zero without it)
Written to `<lakehouse>/_ops/reports/<date>/ops_summary.json` and `.html`, and to `--output-dir`
when given. Reads only: the report files are all it writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from conf.settings import Settings
from contracts.registry import DATASETS, DatasetContract
from jobs.batch_run import iso_date
from jobs.bronze_stream import JOB as BRONZE_JOB
from jobs.entrypoint import run_job
from jobs.kafka_offsets import OffsetRange, watermarks
from jobs.lakehouse_io import committed_offsets, delta_table_exists, kafka_source_options, write_text
from jobs.ops_report_html import render_html
from jobs.ops_tables import BATCH_RUNS, DLQ_REDRIVES, QUALITY_EVENTS, ops_table_uri
from pipelines.dlq import dedupe_dlq_records, with_dlq_fields
from pipelines.gold import GOLD_TABLES
from pipelines.ops_summary import (
    END_OFFSETS_SCHEMA,
    REACHED_OFFSETS_SCHEMA,
    count_redrives,
    count_replays,
    count_rows_on_date,
    dlq_by_reason,
    reached_offsets_from_bronze,
    summarize_runs,
    with_lag,
)

JOB = "ops_summary"
REPORT_NAME = "ops_summary"
DEFAULT_RUNS = 10
log = logging.getLogger("streamlake.ops")

# Where Bronze's reached offsets came from (`lag.reached_from`).
FROM_CHECKPOINT, FROM_BRONZE, FROM_NOTHING = "checkpoint", "bronze", "nothing"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=iso_date, default=None, help="the day to report (YYYY-MM-DD, UTC); default: today")
    parser.add_argument("--output-dir", default=None, help="also write the report files to this local folder")
    parser.add_argument("--runs", type=positive_int, default=DEFAULT_RUNS, help="last runs shown per dataset")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.report_date = args.date or datetime.now(UTC).date()


def report_uri(settings: Settings, on_date: date, suffix: str) -> str:
    return f"{ops_table_uri(settings, 'reports')}/{on_date}/{REPORT_NAME}.{suffix}"


# -- reading ------------------------------------------------------------------------------------


def _delta_or_none(spark: SparkSession, path: str) -> DataFrame | None:
    return spark.read.format("delta").load(path) if delta_table_exists(spark, path) else None


# Spark renders it in the session time zone, UTC; Python's own conversion would use the machine's.
UTC_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"


def _collect(df: DataFrame, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts: timestamps as UTC ISO-8601 text, dates as YYYY-MM-DD."""
    columns = [F.date_format(f.name, UTC_TIMESTAMP_FORMAT).alias(f.name) if isinstance(f.dataType, TimestampType) else F.col(f.name)
               for f in df.schema.fields if f.name not in drop]
    return [{k: _iso(v) for k, v in row.asDict().items()} for row in df.select(*columns).collect()]


def _iso(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def layer_rows(spark: SparkSession, settings: Settings, contract: DatasetContract, on_date: date) -> list[dict[str, Any]]:
    """Rows on the date and in total of each table the dataset has, layer by layer."""
    tables = [("bronze", contract.name, "ingestion_date"), ("silver", contract.name, "event_date"),
              ("quarantine", contract.name, "ingestion_date")]
    tables += [("gold", table.name, "event_date") for table in GOLD_TABLES.get(contract.name, ())]
    layers = []
    for layer, name, date_column in tables:
        path = settings.lakehouse.table_uri(layer, name)
        table_df = _delta_or_none(spark, path)
        entry = {"layer": layer, "table": f"{layer}/{name}", "path": path, "date_column": date_column,
                 "exists": table_df is not None, "rows_on_date": None, "rows_total": None}
        if table_df is not None:
            entry.update(_collect(table_df.transform(count_rows_on_date, date_column, on_date))[0])
        layers.append(entry)
    return layers


def _offset_range(settings: Settings, topic: str) -> OffsetRange | None:
    """What the topic holds now, per partition; None when Kafka has no such topic."""
    try:
        held = watermarks(settings, topic)
    except LookupError:
        return None
    return OffsetRange(topic, {p: w.low for p, w in held.items()}, {p: w.high for p, w in held.items()})


def dlq_summary(spark: SparkSession, settings: Settings, contract: DatasetContract, on_date: date) -> dict[str, Any]:
    """The DLQ topic read once within its current watermarks, deduplicated, by reason."""
    topic = contract.dlq_topic
    held = _offset_range(settings, topic)
    summary: dict[str, Any] = {"topic": topic, "exists": held is not None, "read_offsets": held.as_json() if held else None,
                               "records_read": 0, "records_total": 0, "records_on_date": 0, "duplicates": 0, "by_reason": []}
    if held is None or held.records == 0:
        return summary
    # `assign` with explicit offsets: exactly what the watermarks said, however much arrives meanwhile.
    options = {k: v for k, v in kafka_source_options(settings, topic).items() if k != "subscribe"}
    dlq_df = spark.read.format("kafka").options(**options, **held.spark_options()).load()
    reasons = _collect(dlq_df.transform(with_dlq_fields).transform(dedupe_dlq_records).transform(dlq_by_reason, on_date))
    by_reason = sorted(reasons, key=lambda r: (-r["records_total"], r["error_class"] or ""))
    total = sum(r["records_total"] for r in by_reason)
    # What the range holds is what was read: the DLQ topic is neither compacted nor transactional.
    summary.update({"records_read": held.records, "records_total": total, "duplicates": held.records - total,
                    "records_on_date": sum(r["records_on_date"] for r in by_reason), "by_reason": by_reason})
    return summary


def lag_summary(spark: SparkSession, settings: Settings, contract: DatasetContract, bronze_df: DataFrame | None) -> dict[str, Any]:
    """The raw topic's end offsets against what Bronze has reached, per partition."""
    topic = contract.raw_topic
    checkpoint = settings.lakehouse.checkpoint_uri(BRONZE_JOB, contract.name)
    held = _offset_range(settings, topic)
    checkpointed = committed_offsets(spark, checkpoint, topic)
    if checkpointed is not None:
        reached_from = FROM_CHECKPOINT
        reached_df = spark.createDataFrame(sorted(checkpointed.items()), REACHED_OFFSETS_SCHEMA)
    elif bronze_df is not None:
        reached_from = FROM_BRONZE
        reached_df = bronze_df.transform(reached_offsets_from_bronze, topic)
    else:
        reached_from = FROM_NOTHING
        reached_df = spark.createDataFrame([], REACHED_OFFSETS_SCHEMA)
    summary: dict[str, Any] = {"topic": topic, "exists": held is not None, "reached_from": reached_from,
                               "checkpoint": checkpoint, "partitions": [], "total_lag": None}
    if held is None:
        return summary
    end_df = spark.createDataFrame([(p, held.start[p], held.end[p]) for p in held.partitions], END_OFFSETS_SCHEMA)
    partitions = _collect(end_df.transform(with_lag, reached_df).orderBy("partition"))
    summary.update({"partitions": partitions, "total_lag": sum(p["lag"] for p in partitions)})
    return summary


def ops_sections(spark: SparkSession, settings: Settings, on_date: date, runs: int) -> dict[str, dict[str, Any]]:
    """Per dataset: its last runs, replays and re-drives, from the `_ops` tables (read once for all)."""
    sections: dict[str, dict[str, Any]] = {
        name: {"runs": [], "replays": {"replays_total": 0, "replays_on_date": 0, "replays_failed": 0, "records_inserted": 0},
               "redrives": {"ledger_exists": False, "records_total": 0, "records_on_date": 0, "by_state": []}}
        for name in DATASETS
    }
    batch_runs_df = _delta_or_none(spark, ops_table_uri(settings, BATCH_RUNS))
    if batch_runs_df is not None:
        quality_df = _delta_or_none(spark, ops_table_uri(settings, QUALITY_EVENTS))
        if quality_df is None:
            quality_df = spark.createDataFrame([], "run_id string, table string, check string, column string, success boolean")
        for run in _collect(batch_runs_df.transform(summarize_runs, quality_df, on_date, runs).orderBy("dataset", "started_at")):
            if run["dataset"] in sections:
                sections[run.pop("dataset")]["runs"].insert(0, run)  # latest first
        for replays in _collect(batch_runs_df.transform(count_replays, on_date)):
            if replays["dataset"] in sections:
                sections[replays.pop("dataset")]["replays"] = replays
    redrives_df = _delta_or_none(spark, ops_table_uri(settings, DLQ_REDRIVES))
    if redrives_df is not None:
        for section in sections.values():
            section["redrives"]["ledger_exists"] = True
        for state in _collect(redrives_df.transform(count_redrives, on_date).orderBy("dataset", "state")):
            if state["dataset"] in sections:
                redrives = sections[state.pop("dataset")]["redrives"]
                redrives["by_state"].append(state)
                redrives["records_total"] += state["records_total"]
                redrives["records_on_date"] += state["records_on_date"]
    return sections


def build_summary(spark: SparkSession, settings: Settings, on_date: date, runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (the HTML is rendered from it alone)."""
    sections = ops_sections(spark, settings, on_date, runs)
    datasets = {}
    for name, contract in DATASETS.items():
        bronze_df = _delta_or_none(spark, settings.lakehouse.table_uri("bronze", name))
        datasets[name] = {
            "layers": layer_rows(spark, settings, contract, on_date),
            "dlq": dlq_summary(spark, settings, contract, on_date),
            "lag": lag_summary(spark, settings, contract, bronze_df),
            **sections[name],
        }
    return {"report": REPORT_NAME, "date": on_date.isoformat(), "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lakehouse": settings.lakehouse.root, "runs_shown": runs, "datasets": datasets}


# -- writing ------------------------------------------------------------------------------------


def text_summary(summary: dict[str, Any]) -> list[str]:
    """One line per dataset: rows per layer on the date, DLQ, lag, runs."""
    lines = [f"ops summary for {summary['date']} (lakehouse {summary['lakehouse']})"]
    for name, section in summary["datasets"].items():
        rows = ", ".join(f"{layer['table']} {'absent' if layer['rows_on_date'] is None else layer['rows_on_date']}"
                         for layer in section["layers"])
        dlq, lag = section["dlq"], section["lag"]
        failed = sum(not run["success"] for run in section["runs"])
        lines.append(
            f"{name}: rows on the date: {rows}; DLQ {dlq['records_on_date']} on the date, {dlq['records_total']} in all "
            f"({dlq['duplicates']} duplicates); lag {lag['total_lag']} (reached from {lag['reached_from']}); "
            f"last {len(section['runs'])} runs, {failed} failed; replays {section['replays']['replays_total']}, "
            f"re-drives {section['redrives']['records_total']}"
        )
    return lines


def write_report(spark: SparkSession, settings: Settings, summary: dict[str, Any], output_dir: str | None) -> list[str]:
    """The JSON and the HTML in the lakehouse, and in `output_dir` when given; their locations."""
    on_date = date.fromisoformat(summary["date"])
    files = {"json": json.dumps(summary, indent=2, sort_keys=True) + "\n", "html": render_html(summary)}
    written = []
    for suffix, text in files.items():
        uri = report_uri(settings, on_date, suffix)
        write_text(spark, uri, text)
        written.append(uri)
    if output_dir:
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, text in files.items():
            local = folder / f"{REPORT_NAME}.{suffix}"
            local.write_text(text, encoding="utf-8")
            written.append(str(local.resolve()))
    return written


def main(argv: list[str] | None = None) -> int:
    def body(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event) -> None:
        on_date = args.report_date
        log.info("ops summary started", extra={"date": str(on_date), "datasets": sorted(DATASETS), "lakehouse": settings.lakehouse.root})
        summary = build_summary(spark, settings, on_date, args.runs)
        written = write_report(spark, settings, summary, args.output_dir)
        for line in text_summary(summary):
            print(line)
        for path in written:
            print(path)
        log.info("ops summary written", extra={
            "date": str(on_date), "paths": written,
            "datasets": {name: {"rows_on_date": {layer["table"]: layer["rows_on_date"] for layer in section["layers"]},
                                "dlq_on_date": section["dlq"]["records_on_date"], "dlq_total": section["dlq"]["records_total"],
                                "lag": section["lag"]["total_lag"], "reached_from": section["lag"]["reached_from"]}
                         for name, section in summary["datasets"].items()},
        })

    return run_job(JOB, "Every dataset's rows per layer, DLQ, Kafka lag, runs and checks for a date: JSON and HTML.",
                   body, argv, add_arguments, check_arguments, all_datasets=True)


if __name__ == "__main__":
    sys.exit(main())
