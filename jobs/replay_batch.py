"""Bounded replay: a range of a raw topic -> the Bronze rows Bronze lacks (+ DLQ), then Silver and Gold.

    spark-submit jobs/replay_batch.py --dataset orders --from-offsets '{"0": 100}' --to-offsets '{"0": 200}'
    spark-submit jobs/replay_batch.py --dataset orders --from-time 2026-01-01T00:00:00Z --to-time 2026-01-01T06:00:00Z [--partitions 0,2]
    streamlake replay --dataset orders ...                          (the same, through spark-submit)

Steps, each logged:
    resolve  times become explicit per-partition offsets (Kafka's offsets-for-times; the end is
             exclusive); the range must lie within what Kafka holds and behind what the Bronze stream
             has committed (the stream owns the frontier: its blind appends would double a record a
             replay landed ahead of it). The range is recorded under `<lakehouse>/_ops/replays/<id>/`
             and in the result before anything is read. `--resolve-only` stops here; a later run with
             the same `--replay-id` and no range reads the recorded one (the DAG's steps).
    replay   a bounded Spark batch read through Bronze's own verdict and DLQ sender
             (`jobs.bronze_dlq.valid_rows_after_dlq`, `pipelines.bronze`): invalid records go to the
             DLQ again, marked `dlq.replay.id`; the valid ones Bronze lacks (by topic/partition/
             offset, within the ingestion dates and offsets at hand) are appended, carrying
             `bronze_replay_id`, retried on conflicts (`_insert_missing` says why not a MERGE).
    rebuild  Silver for the ingestion dates it added rows to, then Gold for the event dates touched
             (`jobs.rebuild_batch`), unless `--no-rebuild`.
Running the same range again adds nothing. The run is recorded in `_ops/batch_runs` (job `replay`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from datetime import UTC, date, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts.registry import DatasetContract, get_contract
from jobs.batch_run import RunResult, new_run_id, run_id_argument, write_result, write_result_file
from jobs.bronze_dlq import DlqTarget, TallyParam, valid_rows_after_dlq
from jobs.bronze_table import create_bronze_table
from jobs.entrypoint import run_job
from jobs.kafka_offsets import OffsetRange, OffsetRangeError, checked_range, offsets_for_time, watermarks
from jobs.lakehouse_io import (
    append_delta_idempotent,
    committed_offsets,
    delta_txn_version,
    delta_version,
    kafka_source_options,
    read_text,
    with_retries,
    write_text,
)
from jobs.ops_tables import record_run
from jobs.rebuild_batch import rebuild
from pipelines.bronze import BRONZE_PARTITION_COLUMNS, to_bronze_rows
from pipelines.bronze_verdict import empty_tally

JOB = "replay"
log = logging.getLogger("streamlake.replay")
BRONZE_JOB = "bronze"  # whose checkpoint holds the stream's frontier (jobs.bronze_stream)


# -- arguments ----------------------------------------------------------------------------------


def offsets_argument(text: str) -> dict[int, int]:
    """`{"0": 100, "2": 0}`: partition -> offset."""
    try:
        parsed = json.loads(text)
        offsets = {int(p): int(o) for p, o in parsed.items()}
    except (ValueError, TypeError, AttributeError):
        raise argparse.ArgumentTypeError(f'not a JSON object of partition -> offset, e.g. {{"0": 100}}: {text!r}') from None
    if any(p < 0 or o < 0 for p, o in offsets.items()):
        raise argparse.ArgumentTypeError(f"partitions and offsets are >= 0: {text!r}")
    return offsets


def time_argument(text: str) -> datetime:
    """An ISO-8601 time; without a zone it is UTC."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time, e.g. 2026-01-01T06:00:00Z: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def partitions_argument(text: str) -> list[int]:
    try:
        partitions = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of partitions, e.g. 0,2: {text!r}") from None
    if not partitions or partitions[0] < 0:
        raise argparse.ArgumentTypeError(f"not a list of partitions >= 0: {text!r}")
    return partitions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-offsets", type=offsets_argument, help='first offset per partition (JSON), e.g. {"0": 100}')
    parser.add_argument("--to-offsets", type=offsets_argument, help='end offset per partition, exclusive (JSON), e.g. {"0": 200}')
    parser.add_argument("--from-time", type=time_argument, help="first record time (ISO-8601; UTC when no zone)")
    parser.add_argument("--to-time", type=time_argument, help="end record time, exclusive (ISO-8601)")
    parser.add_argument("--partitions", type=partitions_argument, help="only these partitions, e.g. 0,2 (default: all)")
    parser.add_argument("--replay-id", type=run_id_argument, help="the replay's id (default: a new one); with no range, the id of "
                        "a replay whose range a --resolve-only run recorded")
    parser.add_argument("--resolve-only", action="store_true", help="resolve and record the range, read nothing")
    parser.add_argument("--no-rebuild", action="store_true", help="do not rebuild Silver and Gold afterwards")
    parser.add_argument("--result-file", default=None, help="also write the run's result JSON to this local file")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    by_offsets = args.from_offsets is not None or args.to_offsets is not None
    by_time = args.from_time is not None or args.to_time is not None
    if by_offsets and by_time:
        parser.error("give --from-offsets/--to-offsets or --from-time/--to-time, not both")
    if by_offsets and (args.from_offsets is None or args.to_offsets is None):
        parser.error("--from-offsets and --to-offsets go together")
    if by_time and (args.from_time is None or args.to_time is None):
        parser.error("--from-time and --to-time go together")
    if by_time and args.from_time > args.to_time:
        parser.error(f"--from-time {args.from_time.isoformat()} is after --to-time {args.to_time.isoformat()}")
    if not (by_offsets or by_time) and (args.replay_id is None or args.resolve_only):
        parser.error("give a range (--from-offsets/--to-offsets or --from-time/--to-time), or the --replay-id of a resolved one")


# -- resolve ------------------------------------------------------------------------------------


def requested_range(args: argparse.Namespace) -> dict:
    """What the operator asked for, as recorded next to what it resolved to."""
    if args.from_offsets is not None:
        asked = {"from_offsets": args.from_offsets, "to_offsets": args.to_offsets}
    else:
        asked = {"from_time": args.from_time.isoformat(), "to_time": args.to_time.isoformat()}
    return json.loads(json.dumps({**asked, "partitions": args.partitions}))


def resolve_range(settings: Settings, topic: str, args: argparse.Namespace) -> OffsetRange:
    """The explicit range the arguments name, checked against what Kafka holds."""
    held = watermarks(settings, topic)
    if args.from_offsets is not None:
        start, end = args.from_offsets, args.to_offsets
        if args.partitions is not None:
            missing = sorted(set(args.partitions) - set(start))
            if missing:
                raise OffsetRangeError(f"--partitions names {missing}, which --from-offsets does not")
            start, end = ({p: o for p, o in offsets.items() if p in args.partitions} for offsets in (start, end))
        return checked_range(topic, start, end, held)
    partitions = args.partitions if args.partitions is not None else sorted(held)
    unknown = sorted(set(partitions) - set(held))
    if unknown:
        raise OffsetRangeError(f"topic {topic} has no partition {unknown[0]} (partitions: {sorted(held)})")
    start = offsets_for_time(settings, topic, partitions, args.from_time)
    end = offsets_for_time(settings, topic, partitions, args.to_time)
    return checked_range(topic, start, end, held)


def check_behind_stream(spark: SparkSession, settings: Settings, offset_range: OffsetRange, dataset: str) -> None:
    """Refuse a range the Bronze stream has not committed yet: it will land those records itself."""
    checkpoint = settings.lakehouse.checkpoint_uri(BRONZE_JOB, dataset)
    reached = committed_offsets(spark, checkpoint, offset_range.topic) or {}
    for partition in offset_range.partitions:
        if offset_range.end[partition] > reached.get(partition, 0):
            raise OffsetRangeError(
                f"{offset_range.topic} partition {partition}: the range ends at {offset_range.end[partition]}, beyond what the "
                f"Bronze stream has committed ({reached.get(partition, 'nothing')}, checkpoint {checkpoint}); the stream lands "
                "those records itself: replay only what it has passed"
            )


def _replay_dir(settings: Settings, replay_id: str) -> str:
    return f"{settings.lakehouse.root}/_ops/replays/{replay_id}"


# -- replay -------------------------------------------------------------------------------------


def run_replay(
    spark: SparkSession, settings: Settings, dataset: str, offset_range: OffsetRange, replay_id: str,
    *, results: list[RunResult] | None = None, result_file: str | None = None,
) -> RunResult:
    """Read the range through Bronze's verdict and DLQ sender; insert the valid records Bronze
    lacks; record the run. Returns its result (`dates`: the ingestion dates rows were added to)."""
    contract = get_contract(dataset)
    table = settings.lakehouse.table_uri("bronze", dataset)
    result = RunResult(JOB, replay_id, dataset, [])
    result.details.update({"replay_id": replay_id, "range": offset_range.as_json(), "records_in_range": offset_range.records})
    if results is not None:
        results.append(result)
    context = {"dataset": dataset, "replay_id": replay_id, "topic": offset_range.topic}
    if result_file:
        write_result_file(result_file, [result])  # the resolved range is on record before anything is read
    log.info("replay started", extra={**context, **offset_range.as_json(), "records": offset_range.records, "path": table})

    tally = spark.sparkContext.accumulator(empty_tally(), TallyParam())
    dlq = DlqTarget(
        topic=contract.dlq_topic,
        producer_config=settings.kafka.producer_config(client_id=f"streamlake-replay-{dataset}-dlq"),
        job=f"replay_batch/{dataset} replay_id={replay_id}",
        marks=(("replay.id", replay_id),),
    )
    options = {k: v for k, v in kafka_source_options(settings, offset_range.topic).items() if k != "subscribe"}
    kafka_df = spark.read.format("kafka").options(**options, **offset_range.spark_options()).load()
    # Materialized once, lineage cut: the DLQ records go out with this one pass, and a retried
    # write reuses the judged rows instead of judging (and sending) again.
    staged_df = (
        kafka_df.transform(valid_rows_after_dlq, contract, settings.bronze.max_value_bytes, dlq, tally)
        .transform(to_bronze_rows, contract, None, replay_id)
        .localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    )
    try:
        counts = tally.value
        invalid = sum(counts["invalid"].values())
        result.details.update({"records_read": counts["rows"], "valid": counts["rows"] - invalid, "dlq": counts["invalid"]})
        result.end_phase("read", log)
        if counts["rows"] != offset_range.records:
            raise RuntimeError(f"read {counts['rows']} records of {offset_range.topic} where the range holds {offset_range.records}")
        valid = counts["rows"] > invalid
        inserted = _insert_missing(spark, settings, contract, table, staged_df, offset_range, replay_id, context) if valid else 0
        result.end_phase("write", log)
    finally:
        staged_df.unpersist()

    added = _added_rows(spark, table, replay_id) if inserted else {}
    result.dates = sorted({ingestion for ingestion, _ in added})
    result.details.update({
        "inserted": inserted, "already_in_bronze": result.details["valid"] - inserted,
        "added_by_ingestion_date": {str(d): sum(n for (i, _), n in added.items() if i == d) for d in result.dates},
        "event_dates_touched": sorted({event for _, event in added}), "bronze_version": delta_version(spark, table),
    })
    result.success = True
    record_run(spark, settings, result)
    write_result(spark, f"{_replay_dir(settings, replay_id)}/result.json", result)
    log.info("replay done", extra={**context, **result.summary()})
    return result


class ReplayRaceError(RuntimeError):
    """Another replay of the dataset committed first; this one plans again (retried)."""


def replay_app_id(dataset: str) -> str:
    """The app id every replay of a dataset appends under: replays serialize on it, never the stream."""
    return f"streamlake.replay.{dataset}"


def _insert_missing(
    spark: SparkSession, settings: Settings, contract: DatasetContract, table: str, staged_df: DataFrame,
    offset_range: OffsetRange, replay_id: str, context: dict,
) -> int:
    """Append the staged rows Bronze lacks (an anti-join on the Kafka coordinates, limited to the
    ingestion dates and offsets at hand); returns how many.

    Not an insert-only MERGE: Delta's only isolation level here (Serializable) makes a MERGE fail on
    every micro-batch the stream appends to the same date meanwhile. An append conflicts with no
    blind append, and the stream cannot write these offsets again (the range is behind its
    frontier). Replays serialize among themselves: each append carries the next txnVersion of the
    replays' app id, so of two racing replays one commits and the other plans again.
    """
    create_bronze_table(spark, contract, table)
    dates = sorted(r.ingestion_date for r in staged_df.select("ingestion_date").distinct().collect())
    if not dates:
        return 0
    in_range = " OR ".join(
        f"(kafka_partition = {p} AND kafka_offset >= {offset_range.start[p]} AND kafka_offset < {offset_range.end[p]})"
        for p in offset_range.partitions
    )
    coordinates = ["kafka_topic", "kafka_partition", "kafka_offset"]
    app_id = replay_app_id(contract.name)

    def bronze_df() -> DataFrame:
        return spark.read.format("delta").load(table).where(F.col("ingestion_date").isin(dates)).where(in_range)

    def append() -> int:
        version = (delta_txn_version(spark, table, app_id) or -1) + 1  # read before the plan: a later replay's commit raises
        ours_before = bronze_df().where(F.col("bronze_replay_id") == replay_id).count()
        missing_df = staged_df.join(bronze_df().select(*coordinates), on=coordinates, how="left_anti")
        missing = missing_df.count()
        if missing == 0:
            return 0
        append_delta_idempotent(missing_df, table, app_id, version, BRONZE_PARTITION_COLUMNS)
        added = bronze_df().where(F.col("bronze_replay_id") == replay_id).count() - ours_before
        if added != missing:  # Delta skipped the write: another replay took this version first
            raise ReplayRaceError(f"replay {replay_id}: {added} of {missing} rows appended at {app_id} version {version}; planning again")
        return missing

    return with_retries(append, f"replay append to {table}", settings.bronze, {**context, "ingestion_dates": [str(d) for d in dates]})


def _added_rows(spark: SparkSession, table: str, replay_id: str) -> dict[tuple[date, date], int]:
    """(ingestion date, event date) -> rows this replay added to Bronze."""
    rows = (
        spark.read.format("delta").load(table).where(F.col("bronze_replay_id") == replay_id)
        .groupBy("ingestion_date", F.to_date("event_timestamp").alias("event_date")).count().collect()
    )
    return {(r.ingestion_date, r.event_date): r["count"] for r in rows}


# -- the job ------------------------------------------------------------------------------------


def replay_command(
    spark: SparkSession, settings: Settings, args: argparse.Namespace, stop: threading.Event | None = None
) -> list[RunResult]:
    """What `jobs/replay_batch.py` does with its arguments: resolve (and record) the range or read
    the recorded one, replay it, rebuild; the results of the runs, replay first."""
    contract = get_contract(args.dataset)
    replay_id = args.replay_id or new_run_id(JOB, args.dataset, datetime.now(UTC))
    recorded = f"{_replay_dir(settings, replay_id)}/range.json"
    if args.from_offsets is not None or args.from_time is not None:
        offset_range = resolve_range(settings, contract.raw_topic, args)
        check_behind_stream(spark, settings, offset_range, args.dataset)
        requested = requested_range(args)
        write_text(spark, recorded, json.dumps({"replay_id": replay_id, "dataset": args.dataset, "requested": requested,
                                                **offset_range.as_json()}, indent=2) + "\n")
        log.info("replay range resolved", extra={"dataset": args.dataset, "replay_id": replay_id, "requested": requested,
                                                 **offset_range.as_json(), "records": offset_range.records, "recorded": recorded})
        if args.resolve_only:
            print(json.dumps({"replay_id": replay_id, **offset_range.as_json(), "records": offset_range.records}))
            return []
    else:
        text = read_text(spark, recorded)
        if text is None:
            raise FileNotFoundError(f"no resolved range for replay {replay_id} at {recorded}; resolve one first (--resolve-only)")
        offset_range = OffsetRange.from_json(json.loads(text))
    results: list[RunResult] = []
    try:
        replayed = run_replay(spark, settings, args.dataset, offset_range, replay_id, results=results, result_file=args.result_file)
        if args.no_rebuild:
            return results
        if not replayed.dates:
            log.info("the replay added no Bronze rows: nothing to rebuild", extra={"dataset": args.dataset, "replay_id": replay_id})
            return results
        rebuild(spark, settings, args.dataset, replayed.dates, stop_requested=stop, results=results)
        return results
    finally:
        if args.result_file:
            write_result_file(args.result_file, results)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The job's arguments, checked as the job checks them (for the CLI and tests)."""
    parser = argparse.ArgumentParser(prog="replay_batch")
    parser.add_argument("--dataset", required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_job(JOB, "A bounded range of a raw topic -> the Bronze rows Bronze lacks (+ DLQ), then Silver and Gold.",
                   lambda spark, settings, args, stop: replay_command(spark, settings, args, stop), argv, add_arguments, check_arguments)


if __name__ == "__main__":
    sys.exit(main())
