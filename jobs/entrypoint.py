"""The skeleton every Spark job shares: arguments, settings, session, SIGTERM, exit status.

    run_job(...)            a dataset job: `--dataset`, `--env` and the job's own arguments
                            (`all_datasets=True`: a job over every dataset, no `--dataset`)
    run_streaming_job(...)  the same, for jobs that run streaming queries until stopped

Exit status: 0 after a clean end or a stop asked for with SIGTERM, 1 when the job fails (its last
log line names the error), 2 for a configuration error (bad setting, unknown dataset, bad argument),
before any Spark starts. A job file only says what is specific to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from conf.logging import configure_logging
from conf.settings import ConfigError, Settings, load_settings
from contracts.registry import UnknownDatasetError, get_contract
from jobs.lakehouse_io import error_headline
from jobs.spark_session import build_spark_session
from jobs.stream_heartbeat import IDLE, PROGRESS, STARTED, TERMINATED, Heartbeat, heartbeat_path

log = logging.getLogger("streamlake.jobs")

# What a job does once its session is up: return normally when done, raise when it failed.
JobBody = Callable[[SparkSession, Settings, argparse.Namespace, threading.Event], None]
StartQueries = Callable[[SparkSession, Settings, str, bool], list[StreamingQuery]]
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def run_job(
    job: str,
    description: str,
    body: JobBody,
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    check_arguments: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = None,
    *,
    all_datasets: bool = False,
) -> int:
    """Parse arguments, load settings, build the session, run `body`, stop the session; the exit status.

    A job that covers every registered dataset (`all_datasets`) takes no `--dataset`; its
    `args.dataset` is None.

    `check_arguments` may refuse a combination of arguments with `parser.error` (exit 2), before
    anything starts. `body` gets an event that is set on SIGTERM: a long job checks it and ends cleanly. An error
    raised after SIGTERM is the stop cutting work short, not a failure (every write is atomic and
    idempotent, so the cut work is redone on the next run).
    """
    parser = argparse.ArgumentParser(description=description)
    if not all_datasets:
        parser.add_argument("--dataset", required=True)
    parser.add_argument("--env", default=None)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)  # a bad argument: argparse names it and exits with 2
    if all_datasets:
        args.dataset = None
    if check_arguments is not None:
        check_arguments(parser, args)
    configure_logging()
    try:
        settings: Settings = load_settings(args.env)
        if args.dataset is not None:
            get_contract(args.dataset)
    except (ConfigError, UnknownDatasetError) as exc:
        log.error("cannot start", extra={"job": job, "error": str(exc)})
        return EXIT_CONFIG
    spark = build_spark_session(settings, f"streamlake-{job}-{args.dataset or 'all'}")
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        body(spark, settings, args, stop_requested)
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the job's last word must say what failed
        if stop_requested.is_set():
            log.info("stopped on SIGTERM", extra={"job": job, "dataset": args.dataset, "detail": error_headline(exc)[:300]})
            return EXIT_OK
        log.error(f"{job} job failed", extra={"job": job, "dataset": args.dataset, "error": error_headline(exc)[:2000]})
        return EXIT_FAILED
    finally:
        spark.stop()


def run_streaming_job(
    job: str, description: str, start_queries: StartQueries, argv: list[str] | None = None, available_now_help: str = ""
) -> int:
    """`run_job` for streaming queries: start them, log their progress (and beat the job's heartbeat,
    `jobs.stream_heartbeat`), wait until they end, fail when one fails, and on SIGTERM let each
    finish its in-flight batch before stopping it."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--available-now", action="store_true",
                            help=available_now_help or "process what is there now, then exit")

    def body(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event) -> None:
        heartbeat = Heartbeat(heartbeat_path(settings, job, args.dataset), job, args.dataset)
        spark.streams.addListener(ProgressLogger(heartbeat))
        queries = start_queries(spark, settings, args.dataset, args.available_now)
        await_queries(queries, stop_requested, args.dataset)

    return run_job(job, description, body, argv, add_arguments)


def await_queries(queries: list[StreamingQuery], stop_requested: threading.Event, dataset: str) -> None:
    """Wait until every query has ended; raise the first failure; on a stop request, stop them all."""
    while True:
        failed = next((q for q in queries if q.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]  # a StreamingQueryException
        active = [q for q in queries if q.isActive]
        if not active:
            return
        if stop_requested.is_set():
            log.info("SIGTERM received: stopping after the current batch", extra={"dataset": dataset})
            for query in active:
                stop_gracefully(query)
            return
        active[0].awaitTermination(1)


def stop_gracefully(query: StreamingQuery, timeout_s: float = 60.0) -> None:
    """Let an in-flight batch finish (it commits or never started), then stop the query."""
    deadline = time.monotonic() + timeout_s
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()


class ProgressLogger(StreamingQueryListener):
    """Logs each query progress report (input and processing rates, batch duration, end offsets)
    and beats the heartbeat on every event, idle ones included."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        super().__init__()
        self.heartbeat = heartbeat
        self._names: dict[str, str] = {}  # query id -> name: termination events carry only the id

    def onQueryStarted(self, event) -> None:  # noqa: N802 - PySpark's name
        self._names[str(event.id)] = event.name
        self.heartbeat.beat(event.name, STARTED)
        log.info("query started", extra={"query": event.name, "id": str(event.id), "run_id": str(event.runId)})

    def onQueryProgress(self, event) -> None:  # noqa: N802 - PySpark's name
        p = event.progress
        self.heartbeat.beat(p.name, PROGRESS, p.batchId)
        log.info(
            "query progress",
            extra={
                "query": p.name,
                "batch_id": p.batchId,
                "input_rows": p.numInputRows,
                "input_rows_per_s": round(p.inputRowsPerSecond, 1),
                "processed_rows_per_s": round(p.processedRowsPerSecond, 1),
                "batch_duration_ms": p.batchDuration,
                "end_offsets": json.loads(p.sources[0].endOffset) if p.sources and p.sources[0].endOffset else None,
            },
        )

    def onQueryIdle(self, event) -> None:  # noqa: N802 - PySpark's name
        self.heartbeat.beat(self._names.get(str(event.id), str(event.id)), IDLE)

    def onQueryTerminated(self, event) -> None:  # noqa: N802 - PySpark's name
        self.heartbeat.beat(self._names.get(str(event.id), str(event.id)), TERMINATED)
        log.info("query terminated", extra={"id": str(event.id), "error": event.exception})
