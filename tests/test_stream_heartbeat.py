"""The streaming jobs' heartbeat file and the verdict `streamlake stream health` draws from it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

from jobs import bronze_stream, realtime_metrics
from jobs.entrypoint import ProgressLogger
from jobs.stream_heartbeat import IDLE, PROGRESS, STARTED, TERMINATED, Heartbeat, check_heartbeat
from streamlake.cli import STREAMING_JOBS

NOW = 1_000_000.0
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")


def write_heartbeat(path: Path, queries: dict[str, tuple[str, float, int | None]]) -> None:
    path.write_text(json.dumps({"job": "bronze", "dataset": "orders", "pid": 1, "queries": {
        name: {"event": event, "at": at, "batch_id": batch} for name, (event, at, batch) in queries.items()}}))


def test_a_query_heard_from_lately_is_healthy_and_named(tmp_path: Path) -> None:
    path = tmp_path / "bronze.orders.json"
    write_heartbeat(path, {"bronze-orders": (PROGRESS, NOW - 4, 12), "realtime-x": (IDLE, NOW - 9, None)})
    health = check_heartbeat(path, 60, NOW)
    assert health.healthy
    assert health.detail == "bronze-orders: progress 4 s ago (batch 12); realtime-x: idle 9 s ago"


def test_one_silent_query_makes_the_job_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "bronze.orders.json"
    write_heartbeat(path, {"a": (PROGRESS, NOW - 5, 3), "b": (STARTED, NOW - 61, None)})
    health = check_heartbeat(path, 60, NOW)
    assert not health.healthy
    assert health.detail == "b silent for 61 s (more than 60 s; last: started)"


def test_a_terminated_query_is_unhealthy_however_recent(tmp_path: Path) -> None:
    path = tmp_path / "bronze.orders.json"
    write_heartbeat(path, {"bronze-orders": (TERMINATED, NOW - 1, None)})
    assert check_heartbeat(path, 60, NOW).detail == "bronze-orders terminated 1 s ago"
    assert not check_heartbeat(path, 60, NOW).healthy


def test_no_file_an_unreadable_one_or_no_query_is_unhealthy(tmp_path: Path) -> None:
    missing = check_heartbeat(tmp_path / "none.json", 60, NOW)
    assert not missing.healthy
    assert missing.detail == f"no heartbeat at {tmp_path / 'none.json'}: the job has not started a query on this machine"
    (tmp_path / "half.json").write_text('{"queries": {"a": ')
    assert check_heartbeat(tmp_path / "half.json", 60, NOW).detail.startswith(f"unreadable heartbeat {tmp_path / 'half.json'}: ")
    write_heartbeat(tmp_path / "empty.json", {})
    assert check_heartbeat(tmp_path / "empty.json", 60, NOW).detail == f"heartbeat {tmp_path / 'empty.json'} names no query"


def test_a_new_run_forgets_the_last_runs_queries(tmp_path: Path) -> None:
    path = tmp_path / "streams" / "bronze.orders.json"
    path.parent.mkdir()
    write_heartbeat(path, {"old-query": (TERMINATED, NOW - 100, None)})
    heartbeat = Heartbeat(path, "bronze", "orders")
    assert not path.exists()  # until the new run's first query speaks, there is no word from it
    heartbeat.beat("bronze-orders", STARTED)
    heartbeat.beat("bronze-orders", PROGRESS, 0)
    state = json.loads(path.read_text())
    assert (state["job"], state["dataset"], list(state["queries"])) == ("bronze", "orders", ["bronze-orders"])
    assert (state["queries"]["bronze-orders"]["event"], state["queries"]["bronze-orders"]["batch_id"]) == (PROGRESS, 0)
    assert not path.with_name(path.name + ".tmp").exists()


def test_the_health_command_names_a_bad_argument_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "STREAMLAKE_STREAMS__HEARTBEAT_DIR": str(tmp_path)}

    def health(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([STREAMLAKE, "stream", "health", *args], env=env, capture_output=True, text=True, timeout=60)

    not_a_stream = health("silver", "--dataset", "orders")
    assert (not_a_stream.returncode, not_a_stream.stderr.strip()) == (2, "job: 'silver' is not a streaming job (one of bronze, realtime)")
    unknown = health("bronze", "--dataset", "nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "unknown dataset 'nope'; known datasets: orders, user_events")
    negative = health("bronze", "--dataset", "orders", "--max-age-s", "-1")
    assert (negative.returncode, negative.stderr.strip()) == (2, "--max-age-s: must be positive, got -1")
    none_yet = health("bronze", "--dataset", "orders")
    assert none_yet.returncode == 1
    assert none_yet.stderr.strip() == (f"bronze orders: unhealthy: no heartbeat at {tmp_path / 'bronze.orders.json'}: "
                                       "the job has not started a query on this machine")


def test_a_heartbeat_that_cannot_be_written_is_logged_once_not_raised(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="streamlake.jobs")
    streams = tmp_path / "streams"
    streams.write_text("a file where the folder should be")
    heartbeat = Heartbeat(streams / "bronze.orders.json", "bronze", "orders")
    heartbeat.beat("bronze-orders", PROGRESS, 4)  # the query's listener goes on
    heartbeat.beat("bronze-orders", IDLE)
    (record,) = [r for r in caplog.records if r.getMessage() == "heartbeat not written"]
    assert (record.path, record.query) == (str(streams / "bronze.orders.json"), "bronze-orders")
    streams.unlink()
    heartbeat.beat("bronze-orders", PROGRESS, 5)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("heartbeat")] == [
        "heartbeat not cleared", "heartbeat not written", "heartbeat written again"]
    assert json.loads((streams / "bronze.orders.json").read_text())["queries"]["bronze-orders"]["batch_id"] == 5


def test_the_listener_beats_for_each_query_by_name_whatever_the_event(tmp_path: Path) -> None:
    path = tmp_path / "realtime.orders.json"
    listener = ProgressLogger(Heartbeat(path, "realtime", "orders"))
    ids = {name: uuid.uuid4() for name in ("realtime-a", "realtime-b")}
    for name, query_id in ids.items():
        listener.onQueryStarted(SimpleNamespace(id=query_id, runId=uuid.uuid4(), name=name))
    listener.onQueryIdle(SimpleNamespace(id=ids["realtime-a"]))
    listener.onQueryTerminated(SimpleNamespace(id=ids["realtime-b"], exception=None))
    queries = json.loads(path.read_text())["queries"]
    assert {name: q["event"] for name, q in queries.items()} == {"realtime-a": IDLE, "realtime-b": TERMINATED}
    assert check_heartbeat(path, 60).detail.startswith("realtime-b terminated ")


def test_the_health_command_knows_every_streaming_job() -> None:
    assert set(STREAMING_JOBS) == {bronze_stream.JOB, realtime_metrics.JOB}
