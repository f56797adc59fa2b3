"""What the batch jobs (Silver, Gold) share: their date arguments, run ids and run results.

A batch run owns a set of dates (`--date D`, `--dates D1,D2`, `--from D1 --to D2` inclusive) and
reports what it touched, so the next step rebuilds exactly that.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from conf.settings import Settings
from jobs.entrypoint import run_job
from jobs.lakehouse_io import write_text


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def iso_dates(text: str) -> list[date]:
    return sorted({iso_date(part.strip()) for part in text.split(",") if part.strip()})


def add_date_arguments(parser: argparse.ArgumentParser, *, listed: bool, by_replay: bool = False) -> None:
    """`--date D` (or, when `listed`, `--dates D1,D2,...` or `--silver-dates D1,...`), or
    `--from D1 --to D2` (inclusive), or (when `by_replay`) `--replay-id R`."""
    group = parser.add_mutually_exclusive_group(required=True)
    if by_replay:
        group.add_argument("--replay-id", type=run_id_argument, help="the ingestion dates that replay added Bronze rows to")
    if listed:
        group.add_argument("--dates", type=iso_dates, help="comma-separated dates, e.g. 2026-01-01,2026-01-03")
        group.add_argument("--silver-dates", type=iso_dates,
                           help="the event dates that Silver runs of these ingestion dates touched (_ops/batch_runs)")
    else:
        group.add_argument("--date", type=iso_date, help="one date, e.g. 2026-01-01")
    group.add_argument("--from", dest="from_date", type=iso_date, help="first date of a range (with --to)")
    parser.add_argument("--to", dest="to_date", type=iso_date, help="last date of the range, inclusive")
    parser.add_argument("--result-file", default=None, help="also write the run's result JSON to this local file")


def check_dates(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set `args.run_dates` to the dates the arguments name, in order; a bad combination is an
    argument error (exit 2). With `--silver-dates` or `--replay-id` the dates are looked up once the
    job runs (`jobs.ops_tables`)."""
    looked_up = getattr(args, "silver_dates", None) or getattr(args, "replay_id", None)
    args.run_dates = [] if looked_up else _named_dates(parser, args)


def parse_date_arguments(argv: list[str], *, listed: bool, prog: str, by_replay: bool = False) -> argparse.Namespace:
    """The date arguments alone, checked exactly as the job checks them: the CLI refuses a bad one
    (exit 2, naming it) before it starts Spark."""
    parser = argparse.ArgumentParser(prog=prog)
    add_date_arguments(parser, listed=listed, by_replay=by_replay)
    args = parser.parse_args(argv)
    check_dates(parser, args)
    return args


def _named_dates(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[date]:
    if args.from_date is not None or args.to_date is not None:
        if args.from_date is None or args.to_date is None:
            parser.error("--from and --to go together")
        if args.from_date > args.to_date:
            parser.error(f"--from {args.from_date} is after --to {args.to_date}")
        return [args.from_date + timedelta(days=n) for n in range((args.to_date - args.from_date).days + 1)]
    named = getattr(args, "dates", None) or ([args.date] if getattr(args, "date", None) else [])
    if not named:
        parser.error("no dates given")
    return named


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def run_id_argument(text: str) -> str:
    """A run id given on the command line: letters, digits, `.`, `_`, `-` (it names files)."""
    if not _RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a run id (letters, digits, '.', '_', '-'; at most 200): {text!r}")
    return text


def new_run_id(job: str, dataset: str, at: datetime) -> str:
    """Sortable by time, unique across concurrent runs: `silver-orders-20260102T030405Z-1a2b3c4d`."""
    return f"{job}-{dataset}-{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunResult:
    """A batch run's result: logged as its last line, written as JSON under `<lakehouse>/_quality/`."""

    job: str
    run_id: str
    dataset: str
    dates: list[date]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    success: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    _phase_started: float = field(default_factory=time.monotonic, repr=False)

    def as_json(self) -> dict[str, Any]:
        return json.loads(json.dumps({
            "job": self.job, "run_id": self.run_id, "dataset": self.dataset, "dates": self.dates,
            "started_at": self.started_at, "success": self.success, **self.details,
        }, default=str))


    @classmethod
    def start(cls, job: str, dataset: str, dates: list[date]) -> RunResult:
        """A new run, its id derived from the job, the dataset and its start time."""
        result = cls(job, "", dataset, dates)
        result.run_id = new_run_id(job, dataset, result.started_at)
        return result

    def end_phase(self, phase: str, log: logging.Logger) -> None:
        """Close a phase of the run (write, audit, publish): its seconds go to `phase_s`, and a
        progress line to the log."""
        now = time.monotonic()
        seconds = round(now - self._phase_started, 1)
        self._phase_started = now
        self.details.setdefault("phase_s", {})[phase] = seconds
        log.info(f"{self.job} {phase} done", extra={"dataset": self.dataset, "run_id": self.run_id, "seconds": seconds})

    def summary(self) -> dict[str, Any]:
        """The result without its per-check outcomes: the run's one-line summary."""
        return {k: v for k, v in self.as_json().items() if k != "outcomes"}


def write_result(spark: SparkSession, uri: str, result: RunResult) -> None:
    write_text(spark, uri, json.dumps(result.as_json(), indent=2) + "\n")


# A batch job's work once its session is up: run its dates, appending each run's result.
RunDates = Callable[[SparkSession, Settings, argparse.Namespace, threading.Event, list[RunResult]], None]


def run_batch_job(
    job: str, description: str, run_dates: RunDates, argv: list[str] | None, *, listed: bool, by_replay: bool = False
) -> int:
    """`jobs.entrypoint.run_job` with the date arguments, and the results written to
    `--result-file` whatever happened (a failed run is reported too)."""

    def body(spark: SparkSession, settings: Settings, args: argparse.Namespace, stop_requested: threading.Event) -> None:
        results: list[RunResult] = []
        try:
            run_dates(spark, settings, args, stop_requested, results)
        finally:
            if args.result_file:
                write_result_file(args.result_file, results)

    return run_job(job, description, body, argv, lambda parser: add_date_arguments(parser, listed=listed, by_replay=by_replay), check_dates)


def write_result_file(path: str, results: list[RunResult]) -> None:
    """The results of a command's runs (one per date for Silver), for an orchestrator to read."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"runs": [r.as_json() for r in results]}, out, indent=2)
        out.write("\n")
