"""Bronze under failure, with the job as a real spark-submit subprocess.

- kill -9 mid-stream, several times, while events keep arriving: nothing lost, nothing doubled.
- the Bronze store refuses writes (immutable `_delta_log`, which stops root too): a short outage is
  ridden out by retries; a long one makes the job exit non-zero; after a restart nothing is lost,
  and the checkpoint never runs ahead of the data.
- SIGTERM stops the job cleanly (exit 0) without a half-committed batch.
- `streamlake stream health` hears a running job, flags a frozen one, and one that stopped.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from conf.settings import Settings, load_settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from jobs.kafka_offsets import watermarks
from jobs.lakehouse_io import committed_offsets, delta_txn_version, delta_version, last_committed_batch
from jobs.spark_session import spark_submit_command, spark_submit_env
from streamlake import synthetic
from streamlake.demo import format_summary
from streamlake.reconcile import reconcile_dataset
from streamlake.topics import apply_topics, declared_topics

USER_EVENTS = get_contract("user_events")
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")
JOB = Path(__file__).resolve().parent.parent / "jobs" / "bronze_stream.py"
pytestmark = pytest.mark.slow


class BronzeJob:
    """One spark-submit run of the Bronze job in its own process group, log kept for failures."""

    def __init__(self, settings: Settings, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        command = spark_submit_command(settings, JOB, "--dataset", USER_EVENTS.name)
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=spark_submit_env(env), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """kill -9 takes the whole process group (JVM and Python driver) down at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def terminate_driver(self) -> None:
        """SIGTERM to the Python driver, as `kill <pid>` of the job would; it stops gracefully."""
        os.kill(self._driver_pid(), signal.SIGTERM)

    def _driver_pid(self) -> int:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                pgid = os.getpgid(int(proc.name))
            except (OSError, ProcessLookupError):
                continue
            if pgid == self.process.pid and b"python" in argv[0] and any(a.endswith(b"bronze_stream.py") for a in argv):
                return int(proc.name)
        raise AssertionError(f"no Python driver found for the bronze job; log tail:\n{self.tail()}")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"bronze job did not exit within {timeout_s}s; log tail:\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        self.kill()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[list[BronzeJob]]:
    started: list[BronzeJob] = []
    yield started
    for job in started:  # no orphan JVMs, whatever happened in the test
        job.close()


@pytest.fixture
def job_settings(settings: Settings, settings_env: dict[str, str], tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    overrides = {
        "STREAMLAKE_LAKEHOUSE__ROOT": (tmp_path / "lake").as_uri(),
        "STREAMLAKE_BRONZE__TRIGGER_INTERVAL": "1 second",
        "STREAMLAKE_BRONZE__MAX_OFFSETS_PER_TRIGGER": "500",
        "STREAMLAKE_BRONZE__WRITE_ATTEMPTS": "4",
        "STREAMLAKE_BRONZE__RETRY_BACKOFF_S": "1",
        "STREAMLAKE_BRONZE__RETRY_BACKOFF_MAX_S": "2",
        "STREAMLAKE_SPARK__DRIVER_MEMORY": "1g",
    }
    env = {**settings_env, **overrides}
    job_conf = load_settings(
        kafka={"bootstrap_servers": settings.kafka.bootstrap},
        lakehouse={"root": overrides["STREAMLAKE_LAKEHOUSE__ROOT"]},
        spark={"driver_memory": "1g"},
    )
    return job_conf, env


@contextmanager
def steady_producer(settings: Settings, rate_per_s: int = 50) -> Iterator[None]:
    """Events keep arriving (2% poison) until the block ends."""
    stop = threading.Event()
    producer = Producer(settings.kafka.producer_config(client_id="tests-steady"))
    rng = random.Random(3)

    def loop() -> None:
        for event in synthetic.user_events(10**9, seed=17):
            if stop.is_set():
                return
            key, value, headers = wrap(USER_EVENTS, event, "tests")
            if rng.random() < 0.02:
                value = b"{broken"
            producer.produce(USER_EVENTS.raw_topic, key=key, value=value, headers=headers)
            producer.poll(0)
            time.sleep(1 / rate_per_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        assert producer.flush(30) == 0


# A job's start (JVM, Spark session, Bronze table, first batch with a cold JIT) took over 120 s
# once on a busy run of this 2-core VM; the budgets only bound how long a real failure takes.
JOB_START_S = 300


def wait_for(condition, timeout_s: float, what: str, job: BronzeJob | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if job is not None and job.process.poll() is not None:
            raise AssertionError(f"bronze job exited ({job.process.returncode}) while waiting for {what}:\n{job.tail()}")
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}" + (f"; log tail:\n{job.tail()}" if job else ""))


def commits(spark: SparkSession, settings: Settings) -> int:
    """The last batch id the stream committed; -1 before its first (batch 0)."""
    batch = last_committed_batch(spark, settings.lakehouse.checkpoint_uri("bronze", USER_EVENTS.name))
    return -1 if batch is None else batch


def next_offsets(settings: Settings) -> dict[int, int]:
    """Per raw partition, the offset the next record will get: taken before and after a test
    produces, where its own records start and end. The topic is the session's, shared with other
    modules whose records (and DLQ records naming offsets of their own) a fresh lakehouse's Bronze
    stream also reads; they stay out of the account."""
    return {p: marks.high for p, marks in watermarks(settings, USER_EVENTS.raw_topic).items()}


def caught_up(spark: SparkSession, settings: Settings) -> bool:
    """The stream's checkpoint has committed every offset the raw topic holds. A batch commits after
    its Delta write and DLQ sends, so a reconciliation may follow; polling this costs two small reads."""
    checkpoint = settings.lakehouse.checkpoint_uri("bronze", USER_EVENTS.name)
    reached = committed_offsets(spark, checkpoint, USER_EVENTS.raw_topic) or {}
    return all(reached.get(p, 0) >= marks.high for p, marks in watermarks(settings, USER_EVENTS.raw_topic).items())


def assert_exactly_once(spark: SparkSession, settings: Settings, from_offsets: dict[int, int], to_offsets: dict[int, int]) -> None:
    result = reconcile_dataset(spark, settings, USER_EVENTS, from_offsets, to_offsets)
    assert result.reconciled, format_summary(result)  # each offset the test produced in Bronze or the DLQ, once
    assert result.messages > 0, format_summary(result)


def job_log_records(log_path: Path, message: str) -> list[dict]:
    """The JSON log lines of the jobs' runs with this message (Spark's own lines are not JSON)."""
    records = []
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a run killed while writing it
            continue
        if record.get("message") == message:
            records.append(record)
    return records


def assert_logs_say_what_each_batch_did(spark: SparkSession, settings: Settings, log_path: Path) -> None:
    table = settings.lakehouse.table_uri("bronze", USER_EVENTS.name)
    batches = job_log_records(log_path, "bronze batch committed")
    assert {(b["dataset"], b["path"], b["topic"], b["dlq_topic"]) for b in batches} == {
        (USER_EVENTS.name, table, USER_EVENTS.raw_topic, USER_EVENTS.dlq_topic)
    }
    partitions = {str(p.partition) for p in watermarks(settings, USER_EVENTS.raw_topic).values()}
    assert all(b["duration_ms"] >= 0 and set(b["offsets"]) <= partitions for b in batches)
    written = [b for b in batches if b["rows"] > 0]  # a replayed batch Delta already held logs 0 rows
    versions = [b["delta_version"] for b in written]
    assert len(set(versions)) == len(versions), versions  # each batch that wrote made its own commit
    assert max(versions) == delta_version(spark, table)
    # Spark's progress report of a batch counts the rows the batch's log line counted.
    progress = {p["batch_id"]: p for p in job_log_records(log_path, "query progress")}
    paired = [(b, progress[b["batch_id"]]) for b in written if b["batch_id"] in progress]
    assert paired and all(p["input_rows"] == b["rows"] for b, p in paired)
    assert all(set(p["end_offsets"]) == {USER_EVENTS.raw_topic} and p["batch_duration_ms"] > 0 for p in progress.values())


def test_kill_9_mid_stream_loses_and_doubles_nothing(spark: SparkSession, job_settings, jobs, tmp_path: Path) -> None:
    settings, env = job_settings
    rng = random.Random(42)
    produced_from = next_offsets(settings)
    with steady_producer(settings):
        for _ in range(3):
            job = BronzeJob(settings, env, tmp_path / "job.log")
            jobs.append(job)
            before = commits(spark, settings)
            wait_for(lambda before=before: commits(spark, settings) > before, JOB_START_S, "a committed batch", job)
            time.sleep(rng.uniform(0.0, 2.0))  # land the kill anywhere in the next batch
            job.kill(signal.SIGKILL)
            job.wait(30)
    job = BronzeJob(settings, env, tmp_path / "job.log")
    jobs.append(job)
    produced_to = next_offsets(settings)  # the producer has stopped
    wait_for(lambda: caught_up(spark, settings), 300, "the stream to commit every produced offset", job)
    job.terminate_driver()
    assert job.wait(120) == 0, job.tail()
    assert "SIGTERM received: stopping after the current batch" in job.tail(60)
    assert_exactly_once(spark, settings, produced_from, produced_to)
    assert_logs_say_what_each_batch_did(spark, settings, tmp_path / "job.log")


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_store_outage_is_retried_then_fails_loudly_and_recovers(spark: SparkSession, job_settings, jobs, tmp_path: Path) -> None:
    settings, env = job_settings
    table = settings.lakehouse.table_uri("bronze", USER_EVENTS.name)
    delta_log = Path(table.removeprefix("file://")) / "_delta_log"
    app_id = settings.bronze.app_id("bronze", USER_EVENTS.name)
    produced_from = next_offsets(settings)
    with steady_producer(settings):
        job = BronzeJob(settings, env, tmp_path / "job.log")
        jobs.append(job)
        wait_for(lambda: commits(spark, settings) >= 1, JOB_START_S, "the first batches", job)

        # A short outage (shorter than the retry budget): the job rides it out.
        with immutable(delta_log):
            time.sleep(2.5)
        assert job.process.poll() is None, job.tail()

        # A long outage: retries run out, the job exits 1 naming the write, the checkpoint stays behind.
        with immutable(delta_log):
            assert job.wait(120) == 1
            assert "Bronze Delta write to " in job.tail() and "failed 4 times, giving up" in job.tail()
            assert commits(spark, settings) <= delta_txn_version(spark, table, app_id)

        job = BronzeJob(settings, env, tmp_path / "job.log")
        jobs.append(job)
        wait_for(lambda: commits(spark, settings) > delta_txn_version(spark, table, app_id) - 1, JOB_START_S, "restart", job)
    produced_to = next_offsets(settings)  # the producer has stopped
    wait_for(lambda: caught_up(spark, settings), 300, "recovery after the outage", job)
    job.terminate_driver()
    assert job.wait(120) == 0, job.tail()
    assert "SIGTERM received: stopping after the current batch" in job.tail(60)
    assert_exactly_once(spark, settings, produced_from, produced_to)


def stream_health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STREAMLAKE, "stream", "health", "bronze", "--dataset", USER_EVENTS.name, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_health_check_hears_a_running_job_and_flags_a_frozen_or_stopped_one(job_settings, jobs, tmp_path: Path) -> None:
    settings, env = job_settings
    env = {**env, "STREAMLAKE_STREAMS__HEARTBEAT_DIR": str(tmp_path / "streams")}
    heartbeat = tmp_path / "streams" / "bronze.user_events.json"
    job = BronzeJob(settings, env, tmp_path / "job.log")
    jobs.append(job)
    wait_for(lambda: stream_health(env).returncode == 0, JOB_START_S, "the job's first heartbeat", job)
    assert stream_health(env).stdout.startswith("bronze user_events: healthy: bronze-user_events: ")

    job.kill(signal.SIGSTOP)  # the whole job frozen, as a hung JVM would be: alive, and silent
    try:
        frozen_at = heartbeat.read_text()
        time.sleep(20)
        frozen = stream_health(env, "--max-age-s", "15")
        assert heartbeat.read_text() == frozen_at
    finally:
        job.kill(signal.SIGCONT)
    assert frozen.returncode == 1, frozen.stdout
    assert "bronze-user_events silent for" in frozen.stderr and "(more than 15 s; last: " in frozen.stderr
    # Thawed, it speaks again, idle or not: Spark reports an idle query every 10 s.
    wait_for(lambda: stream_health(env, "--max-age-s", "15").returncode == 0, 120, "the thawed job's heartbeat", job)

    job.terminate_driver()
    assert job.wait(120) == 0, job.tail()
    stopped = stream_health(env)
    assert stopped.returncode == 1 and "bronze-user_events terminated" in stopped.stderr, stopped.stderr
