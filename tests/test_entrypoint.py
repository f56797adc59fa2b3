"""The skeleton every job shares: exit status 2 for configuration errors before any Spark starts,
and how streaming queries are awaited (all to their end, a failure raised, a stop request obeyed)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from jobs import bronze_stream, realtime_metrics
from jobs.entrypoint import EXIT_CONFIG, await_queries


@pytest.fixture(autouse=True)
def _root_logger_restored():
    """A job's main configures the root logger for its process; this test process keeps its own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def logged(stderr: str, message: str) -> list[dict]:
    """The job's JSON log lines with this message (a job logs JSON to stderr)."""
    return [record for line in stderr.splitlines() if line.startswith("{")
            for record in [json.loads(line)] if record["message"] == message]


@pytest.mark.parametrize("job", [bronze_stream, realtime_metrics])
def test_an_unknown_dataset_exits_2_before_spark_starts(job, capsys: pytest.CaptureFixture) -> None:
    assert job.main(["--dataset", "no_such_dataset"]) == EXIT_CONFIG
    [record] = logged(capsys.readouterr().err, "cannot start")
    assert (record["job"], record["level"]) == (job.JOB, "ERROR")
    assert record["error"].startswith("unknown dataset 'no_such_dataset'")


def test_a_bad_setting_exits_2_naming_the_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("STREAMLAKE_BRONZE__WRITE_ATTEMPTS", "0")
    assert bronze_stream.main(["--dataset", "orders"]) == EXIT_CONFIG
    [record] = logged(capsys.readouterr().err, "cannot start")
    assert record["error"] == (
        "invalid StreamLake configuration: bronze.write_attempts: Input should be greater than or equal to 1 (got '0')"
    )


def test_a_missing_argument_exits_2_naming_it(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        bronze_stream.main([])
    assert exited.value.code == EXIT_CONFIG
    assert "the following arguments are required: --dataset" in capsys.readouterr().err


def _source(spark: SparkSession, folder: Path) -> str:
    path = (folder / "source").as_uri()
    spark.range(3).write.format("delta").mode("overwrite").save(path)
    return path


def _start(spark: SparkSession, source: str, folder: Path, name: str, sink, **trigger):
    return (
        spark.readStream.format("delta").load(source).writeStream.foreachBatch(sink)
        .option("checkpointLocation", str(folder / name)).queryName(name).trigger(**trigger).start()
    )


def test_every_query_is_awaited_to_its_end(spark: SparkSession, tmp_path: Path) -> None:
    source = _source(spark, tmp_path)
    seen: list[tuple[str, int]] = []
    queries = [
        _start(spark, source, tmp_path, name, lambda df, _id, name=name: seen.append((name, df.count())), availableNow=True)
        for name in ("first", "second")
    ]

    await_queries(queries, threading.Event(), "orders")

    assert [q.isActive for q in queries] == [False, False]
    assert sorted(seen) == [("first", 3), ("second", 3)]


def test_a_failed_query_is_raised_with_its_error(spark: SparkSession, tmp_path: Path) -> None:
    source = _source(spark, tmp_path)

    def failing(batch_df: DataFrame, batch_id: int) -> None:
        raise RuntimeError("the store is gone")

    healthy = _start(spark, source, tmp_path, "healthy", lambda df, _id: None, processingTime="1 second")
    broken = _start(spark, source, tmp_path, "broken", failing, availableNow=True)
    try:
        with pytest.raises(StreamingQueryException, match="RuntimeError: the store is gone"):
            await_queries([healthy, broken], threading.Event(), "orders")
    finally:
        healthy.stop()


def test_a_stop_request_stops_every_query(spark: SparkSession, tmp_path: Path) -> None:
    source = _source(spark, tmp_path)
    queries = [_start(spark, source, tmp_path, name, lambda df, _id: None, processingTime="1 second") for name in ("a", "b")]
    stop_requested = threading.Event()
    stop_requested.set()

    await_queries(queries, stop_requested, "orders")

    assert [q.isActive for q in queries] == [False, False]
