"""The jobs on a real Spark standalone cluster (master + worker on loopback, `tests.spark_cluster_support`)
whose executors cannot import the project: it reaches them only as py_files.

- without py_files an executor fails to import `pipelines`; with them it succeeds;
- Silver, Gold and a bounded replay submitted to the cluster (`streamlake batch ...`, `streamlake
  replay`) leave every table exactly as a local-mode run of the same jobs on the same input does;
- the Airflow task's spark-submit goes to the cluster by configuration only (STREAMLAKE_SPARK__MASTER);
- the Bronze stream on the cluster, its lakehouse and checkpoint in a bucket (fake-gcs-server), its
  worker killed -9 mid-stream and replaced: nothing lost, nothing doubled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from conf.settings import ConfigError, Settings, load_settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from contracts.user_events import UserEventV1
from jobs.gold_batch import run_gold
from jobs.replay_batch import parse_arguments, replay_command
from jobs.silver_batch import run_silver
from jobs.spark_session import PY_FILES, spark_submit_command, spark_submit_env
from streamlake.airflow_env import build_py_files, pinned_settings_env
from streamlake.topics import apply_topics, declared_topics
from tests.airflow_support import airflow_env, inspect_dags
from tests.bronze_support import KafkaRecord, produce_raw, write_bronze
from tests.gcs_support import RunningGcs, gcs_env, gcs_settings, point_spark_at
from tests.replay_support import bronze_available_now, lose_ingestion_date, offsets_range, order
from tests.spark_cluster_support import SparkCluster, running_spark_cluster
from tests.test_bronze_resilience import (
    JOB_START_S,
    BronzeJob,
    assert_exactly_once,
    caught_up,
    commits,
    next_offsets,
    steady_producer,
    stream_health,
    wait_for,
)

USER_EVENTS, ORDERS = get_contract("user_events"), get_contract("orders")
D1, D2 = date(2025, 5, 1), date(2025, 5, 2)
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")
# Workers reach the driver (client deploy mode, on this machine) at the address it advertises.
DRIVER_ON_LOOPBACK = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": "1g"}
# Columns that name or time the run that wrote a row, different on every run by design; everything
# else must match the local run exactly. `_ops/` (run records, quality events) is all of that kind.
RUN_SPECIFIC_COLUMNS = ("silver_run_id", "quarantine_run_id", "updated_at")
SUBMIT_TIMEOUT_S = 600
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    # The py_files every cluster submit ships, from this checkout (what `make dist` and the CLI build).
    build_py_files(PY_FILES)
    with running_spark_cluster(tmp_path_factory.mktemp("spark_cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def topics(settings: Settings) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))


def _lake(settings: Settings, folder: Path, **spark) -> Settings:
    return load_settings(kafka={"bootstrap_servers": settings.kafka.bootstrap}, lakehouse={"root": (folder / "lake").as_uri()},
                         spark={"driver_memory": "1g", **spark})


def _cluster_spark(cluster: SparkCluster) -> dict:
    return {"master": cluster.url, "executor_python": str(cluster.python), "conf": DRIVER_ON_LOOPBACK, "driver_memory": "1g"}


def _on_cluster(settings: Settings, cluster: SparkCluster, folder: Path) -> Settings:
    return _lake(settings, folder, **_cluster_spark(cluster))


def _cluster_env(base: dict[str, str], settings: Settings) -> dict[str, str]:
    """`base` with the CLI and the jobs pointed at `settings`' lakehouse and cluster; with what a
    driver importing the project from the zip must be given (the CLI adds the same itself)."""
    spark = settings.spark
    return {**base, **pinned_settings_env(settings), "STREAMLAKE_SPARK__EXECUTOR_PYTHON": spark.executor_python,
            "STREAMLAKE_SPARK__DRIVER_MEMORY": spark.driver_memory}


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=SUBMIT_TIMEOUT_S,
                          start_new_session=True)


def _completed_apps(cluster: SparkCluster) -> int:
    return len(cluster.state()["completedapps"])


# -- executors without the project ---------------------------------------------------------------

PROBE = """\
from pyspark.sql import SparkSession

def where(_):
    import pipelines
    return pipelines.__file__

spark = SparkSession.builder.getOrCreate()
print("PROBE", spark.sparkContext.parallelize([0], 1).map(where).collect()[0])
spark.stop()
"""


def test_an_executor_imports_the_project_only_from_py_files(cluster: SparkCluster, settings: Settings, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    command = spark_submit_command(_on_cluster(settings, cluster, tmp_path), probe)
    at = command.index("--py-files")
    assert command[at + 1] == str(PY_FILES)
    without = command[:at] + command[at + 2:]

    # Both submitted at once: their JVMs start side by side; the cluster runs the applications in turn.
    failed_log = tmp_path / "without-py-files.log"
    with failed_log.open("wb") as log:
        failing = subprocess.Popen(without, env=spark_submit_env(dict(os.environ)), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        shipped = _run(command, spark_submit_env(dict(os.environ)))
        failed_code = failing.wait(SUBMIT_TIMEOUT_S)
    finally:
        if failing.poll() is None:
            os.killpg(failing.pid, signal.SIGKILL)
            failing.wait(30)
    failed = failed_log.read_text(errors="replace")
    assert failed_code != 0 and "ModuleNotFoundError: No module named 'pipelines'" in failed, failed[-3000:]
    assert shipped.returncode == 0, shipped.stdout[-3000:]
    (line,) = [line for line in shipped.stdout.splitlines() if line.startswith("PROBE ")]
    assert line.endswith("/streamlake.zip/pipelines/__init__.py"), line


def test_a_cluster_submit_without_the_zip_says_to_run_make_dist(tmp_path: Path) -> None:
    missing = tmp_path / "streamlake.zip"
    with pytest.raises(ConfigError, match=r"^spark\.master: 'spark://127\.0\.0\.1:7077' .* does not exist; run `make dist`$"):
        spark_submit_command(load_settings(spark={"master": "spark://127.0.0.1:7077"}), Path("job.py"), py_files=missing)


# -- Silver, Gold and a replay: the cluster's tables equal the local run's ----------------------


def _event(n: int, user_id: int, event_type: str, at: str) -> UserEventV1:
    return UserEventV1(event_id=UUID(int=5000 + n), user_id=user_id, event_type=event_type, page="/",
                       event_timestamp=datetime.fromisoformat(at).replace(tzinfo=UTC), source="web")


def _user_event_records() -> list[KafkaRecord]:
    """Ingested on D1 and D2; the purchase is sent on both days (Silver keeps the D1 copy)."""
    login, purchase = _event(1, 7, "login", "2025-05-01T08:00:00"), _event(2, 7, "purchase", "2025-05-01T08:05:00")
    other, click = _event(3, 8, "login", "2025-05-02T09:00:00"), _event(4, 8, "click", "2025-05-02T09:01:00")

    def record(event: UserEventV1, offset: int, day: date) -> KafkaRecord:
        key, value, _ = wrap(USER_EVENTS, event, "tests", received_at=datetime(2025, 5, 2, 12, tzinfo=UTC))
        return KafkaRecord(key, value, 0, offset, datetime(day.year, day.month, day.day, 12))

    return [record(login, 0, D1), record(purchase, 1, D1), record(other, 2, D2), record(purchase, 3, D2), record(click, 4, D2)]


def _tables(spark: SparkSession, settings: Settings) -> dict[str, list]:
    """Every Delta table of a lakehouse but `_ops/`, as sorted rows without the run-specific columns."""
    root = Path(settings.lakehouse.root.removeprefix("file://"))
    found = {}
    for log_dir in sorted(root.rglob("_delta_log")):
        table = log_dir.parent.relative_to(root).as_posix()
        if table.startswith("_ops/"):
            continue
        df = spark.read.format("delta").load(log_dir.parent.as_uri())
        found[table] = sorted(df.drop(*RUN_SPECIFIC_COLUMNS).collect(), key=repr)
    return found


def test_silver_gold_and_a_replay_on_the_cluster_write_what_a_local_run_writes(
    spark: SparkSession, cluster: SparkCluster, settings: Settings, settings_env: dict[str, str], tmp_path: Path, topics,
) -> None:
    local, remote = _lake(settings, tmp_path / "local"), _on_cluster(settings, cluster, tmp_path / "cluster")
    env = _cluster_env(settings_env, remote)
    write_bronze(spark, local, USER_EVENTS, _user_event_records())
    orders = [order("O-CLU-1", "12.00"), order("O-CLU-2", "3.50", 2), order("O-CLU-3", "1.25", 1, 3)]
    produced = produce_raw(local, ORDERS.raw_topic, orders)
    bronze_available_now(spark, local)  # the stream to the end of the topic, then today's rows lost
    lose_ingestion_date(spark, local, datetime.now(UTC).date())
    # The same Bronze for both, tables and stream checkpoint: a copy of the files costs no second stream.
    shutil.copytree(Path(local.lakehouse.root.removeprefix("file://")), Path(remote.lakehouse.root.removeprefix("file://")))
    from_offsets, to_offsets = offsets_range(produced)
    replay_range = ["--from-offsets", from_offsets, "--to-offsets", to_offsets, "--replay-id", "cluster-r1"]
    apps_before = _completed_apps(cluster)

    started = time.monotonic()
    for args in (["batch", "silver", "--dataset", "user_events", "--from", str(D1), "--to", str(D2)],
                 ["batch", "gold", "--dataset", "user_events", "--dates", f"{D1},{D2}"],
                 ["replay", "--dataset", "orders", *replay_range]):
        done = _run([STREAMLAKE, *args], env)
        assert done.returncode == 0, f"streamlake {' '.join(args)} on the cluster failed:\n{done.stdout[-4000:]}"
        print(f"streamlake {args[0]} {args[1]} on the cluster: {time.monotonic() - started:.0f}s")
        started = time.monotonic()
    assert _completed_apps(cluster) == apps_before + 3  # each ran as an application of the cluster

    for day in (D1, D2):
        run_silver(spark, local, "user_events", day)
    run_gold(spark, local, "user_events", [D1, D2])
    replay_command(spark, local, parse_arguments(["--dataset", "orders", *replay_range]))

    local_tables, cluster_tables = _tables(spark, local), _tables(spark, remote)
    assert sorted(cluster_tables) == sorted(local_tables)
    assert {"bronze/orders", "bronze/user_events", "silver/orders", "silver/orders_current", "silver/user_events",
            "gold/revenue_daily", "gold/conversion_rate_daily"} <= set(cluster_tables)
    for table, rows in local_tables.items():
        assert cluster_tables[table] == rows, table
    assert [(r.event_id, r.ingestion_date) for r in cluster_tables["silver/user_events"]] == sorted(
        [(str(UUID(int=5001)), D1), (str(UUID(int=5002)), D1), (str(UUID(int=5003)), D2), (str(UUID(int=5004)), D2)], key=repr)
    replayed = [r for r in cluster_tables["bronze/orders"] if r.bronze_replay_id == "cluster-r1"]
    assert sorted((r.kafka_partition, r.kafka_offset) for r in replayed) == sorted((p.partition, p.offset) for p in produced)


# -- Airflow: the cluster by configuration only -------------------------------------------------


def test_the_airflow_task_submits_to_the_cluster_by_configuration_only(
    cluster: SparkCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMLAKE_SPARK__MASTER", cluster.url)
    monkeypatch.setenv("STREAMLAKE_SPARK__EXECUTOR_PYTHON", str(cluster.python))
    configured = load_settings()
    parsed = inspect_dags(airflow_env(configured, tmp_path / "airflow_home", PY_FILES),
                          [{"dag_id": "streamlake_daily", "task_id": "silver_user_events",
                            "context": {"run_id": "manual__x", "params": {}, "ds": "2025-05-01"}}])
    (rendered,) = parsed["rendered"]
    command = rendered["command"]
    assert command[:3] == ["spark-submit", "--master", cluster.url]
    assert command[command.index("--py-files") + 1] == str(PY_FILES)
    assert command[command.index("--jars") + 1] == ",".join(str(j) for j in configured.jvm.spark_jars)
    assert f"spark.pyspark.python={cluster.python}" in command
    assert rendered["env"]["STREAMLAKE_SPARK__MASTER"] == cluster.url


# -- the Bronze stream on the cluster, its worker killed ----------------------------------------


@pytest.fixture(scope="module")
def gcs_spark(spark: SparkSession, gcs_emulator: RunningGcs, settings: Settings) -> SparkSession:
    """The session's Spark, its Hadoop conf pointed at the emulator, to read what the stream wrote."""
    point_spark_at(spark, settings, gcs_emulator)
    return spark


def _worker_cores_used(cluster: SparkCluster, worker_port: int) -> int:
    return next(w["coresused"] for w in cluster.alive_workers() if w["port"] == worker_port)


def test_the_bronze_stream_on_the_cluster_loses_nothing_when_its_worker_is_killed(
    gcs_spark: SparkSession, gcs_emulator: RunningGcs, cluster: SparkCluster, settings: Settings, settings_env: dict[str, str],
    tmp_path: Path, topics,
) -> None:
    prefix = f"cluster-{tmp_path.name}"
    remote = gcs_settings(settings, gcs_emulator, prefix, spark=_cluster_spark(cluster))
    env = {**_cluster_env(gcs_env(settings_env, gcs_emulator, prefix), remote), "STREAMLAKE_BRONZE__TRIGGER_INTERVAL": "1 second",
           "STREAMLAKE_BRONZE__MAX_OFFSETS_PER_TRIGGER": "500"}
    job = None
    produced_from = next_offsets(remote)
    try:
        with steady_producer(remote):
            job = BronzeJob(remote, env, tmp_path / "job.log")
            wait_for(lambda: commits(gcs_spark, remote) >= 0, JOB_START_S, "a committed batch on the cluster", job)
            (app,) = cluster.state()["activeapps"]
            time.sleep(1.0)  # land the kill inside the next batch
            cluster.kill_worker(cluster.workers[-1])
            killed_at = commits(gcs_spark, remote)
            replacement = cluster.start_worker()
            wait_for(lambda: commits(gcs_spark, remote) > killed_at + 2, JOB_START_S, "batches on the new worker", job)
            # The same application carried on, its executors now on the new worker.
            assert [a["id"] for a in cluster.state()["activeapps"]] == [app["id"]]
            # Its driver imports the project from the zip, and beats where the health check looks.
            health = stream_health(env)
            assert health.returncode == 0, health.stderr
            assert _worker_cores_used(cluster, replacement.port) > 0
        produced_to = next_offsets(remote)  # the producer has stopped
        wait_for(lambda: caught_up(gcs_spark, remote), 300, "the stream to commit every produced offset", job)
        assert job.process.poll() is None, job.tail()  # the query rode out the lost worker
        job.terminate_driver()
        assert job.wait(120) == 0, job.tail()
    finally:
        if job is not None:
            job.close()
    assert_exactly_once(gcs_spark, remote, produced_from, produced_to)
    assert remote.lakehouse.checkpoint_uri("bronze", "user_events").startswith(f"gs://{gcs_emulator.bucket}/{prefix}/")
    assert any(n.startswith(f"{prefix}/_checkpoints/bronze/user_events/commits/") for n in gcs_emulator.objects(prefix + "/"))
    assert len(cluster.alive_workers()) == 1
