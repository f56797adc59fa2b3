"""The lakehouse on `gs://`, against a real fake-gcs-server, the session broker and real Spark + Delta.

- Bronze lands exactly the valid rows (the poison ones in the DLQ), its checkpoint in the bucket.
- kill -9 of the spark-submit Bronze job mid-load, then a restart: every offset once.
- Delta's commit files are create-if-absent through the connector (an existing NNN.json is refused),
  and what the emulator does not enforce (a true race) is pinned, since the docs rely on it.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from uuid import UUID

import pytest
from confluent_kafka.admin import AdminClient
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from conf.settings import Settings
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.gold_batch import run_gold
from jobs.silver_batch import run_silver
from streamlake import synthetic
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import dlq_headers, produce_raw, read_topic, write_bronze
from tests.factories import envelope_value, order_poison_cases
from tests.gcs_support import RunningGcs, gcs_env, gcs_settings, point_spark_at
from tests.test_bronze_resilience import (
    JOB_START_S,
    BronzeJob,
    assert_exactly_once,
    caught_up,
    commits,
    next_offsets,
    steady_producer,
    wait_for,
)

ORDERS = get_contract("orders")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gcs_spark(spark: SparkSession, gcs_emulator: RunningGcs, settings: Settings) -> SparkSession:
    """The session's Spark, its Hadoop conf pointed at the emulator (the profile's `spark.hadoop.*` keys)."""
    point_spark_at(spark, settings, gcs_emulator)
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    return spark


def fresh_prefix() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


def _hadoop_fs(spark: SparkSession, uri: str):
    path = spark._jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark._jsc.hadoopConfiguration())


def test_bronze_lands_on_gs_with_its_checkpoint_in_the_bucket(
    gcs_spark: SparkSession, gcs_emulator: RunningGcs, settings: Settings
) -> None:
    prefix = fresh_prefix()
    lake = gcs_settings(settings, gcs_emulator, prefix, bronze={"max_value_bytes": 4096, "retry_backoff_s": 0.2})
    first, second, third = synthetic.orders(3, seed=303)
    poison = order_poison_cases(ORDERS, second, lake.bronze.max_value_bytes)
    records = [envelope_value(ORDERS, first)] + [(case.key, case.value) for case in poison] + [envelope_value(ORDERS, third)]
    produced = produce_raw(lake, ORDERS.raw_topic, records)
    valid = {(produced[0].partition, produced[0].offset), (produced[-1].partition, produced[-1].offset)}

    query = start_bronze_query(gcs_spark, lake, "orders", available_now=True)
    query.awaitTermination()
    assert query.exception() is None

    table = lake.lakehouse.table_uri("bronze", "orders")
    assert table == f"gs://{gcs_emulator.bucket}/{prefix}/bronze/orders"
    ours = [r for r in gcs_spark.read.format("delta").load(table).collect() if (r.kafka_partition, r.kafka_offset) in valid]
    assert sorted((r.order_id, r.amount) for r in ours) == sorted([(first.order_id, first.amount), (third.order_id, third.amount)])
    dlq = {(int(h["dlq.source.partition"]), int(h["dlq.source.offset"])): h
           for m in read_topic(lake, ORDERS.dlq_topic) for h in [dlq_headers(m)]}
    for case, sent in zip(poison, produced[1:-1], strict=True):
        assert dlq[(sent.partition, sent.offset)]["dlq.error.class"] == case.error_class, case.kind

    # What the stream wrote is in the bucket, as the emulator stores it: data, log, checkpoint.
    names = set(gcs_emulator.objects(prefix + "/"))
    assert f"{prefix}/bronze/orders/_delta_log/00000000000000000000.json" in names
    checkpoint = f"{prefix}/_checkpoints/bronze/orders"
    assert f"{checkpoint}/metadata" in names
    assert f"{checkpoint}/offsets/0" in names and f"{checkpoint}/commits/0" in names
    assert any(n.startswith(f"{prefix}/bronze/orders/") and n.endswith(".parquet") for n in names)


def test_kill_9_of_the_bronze_job_on_gs_loses_and_doubles_nothing(
    gcs_spark: SparkSession, gcs_emulator: RunningGcs, settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = fresh_prefix()
    lake = gcs_settings(settings, gcs_emulator, prefix)
    env = {**gcs_env(settings_env, gcs_emulator, prefix), "STREAMLAKE_BRONZE__TRIGGER_INTERVAL": "1 second",
           "STREAMLAKE_BRONZE__MAX_OFFSETS_PER_TRIGGER": "500", "STREAMLAKE_SPARK__DRIVER_MEMORY": "1g"}
    jobs: list[BronzeJob] = []
    produced_from = next_offsets(lake)
    try:
        with steady_producer(lake):
            job = BronzeJob(lake, env, tmp_path / "job.log")
            jobs.append(job)
            wait_for(lambda: commits(gcs_spark, lake) >= 0, JOB_START_S, "a committed batch on gs://", job)
            time.sleep(1.0)  # land the kill inside the next batch
            job.kill(signal.SIGKILL)
            job.wait(30)
        job = BronzeJob(lake, env, tmp_path / "job.log")
        jobs.append(job)
        produced_to = next_offsets(lake)  # the producer has stopped
        wait_for(lambda: caught_up(gcs_spark, lake), 300, "the stream to commit every produced offset", job)
        job.terminate_driver()
        assert job.wait(120) == 0, job.tail()
    finally:
        for job in jobs:  # no orphan JVMs, whatever happened
            job.close()
    assert_exactly_once(gcs_spark, lake, produced_from, produced_to)
    assert any(n.startswith(f"{prefix}/_checkpoints/bronze/user_events/commits/") for n in gcs_emulator.objects(prefix + "/"))


def test_an_existing_delta_commit_file_is_never_overwritten(gcs_spark: SparkSession, gcs_emulator: RunningGcs) -> None:
    table = gcs_emulator.root(f"{fresh_prefix()}/atomic")
    gcs_spark.range(3).write.format("delta").save(table)
    commit = f"{table}/_delta_log/00000000000000000000.json"
    before = gcs_spark.read.text(commit).collect()

    path, fs = _hadoop_fs(gcs_spark, commit)
    with pytest.raises(Py4JJavaError) as refused:
        fs.create(path, False).close()  # what GCSLogStore does for a commit
    assert "org.apache.hadoop.fs.FileAlreadyExistsException" in str(refused.value.java_exception.getClass())
    assert gcs_spark.read.text(commit).collect() == before
    # And through Delta: a second writer that commits after the first sees the new version and appends on top.
    gcs_spark.range(3, 5).write.format("delta").mode("append").save(table)
    assert sorted(r.id for r in gcs_spark.read.format("delta").load(table).collect()) == [0, 1, 2, 3, 4]
    history = gcs_spark.sql(f"DESCRIBE HISTORY delta.`{table}`").select("version").collect()
    assert sorted(r.version for r in history) == [0, 1]


def test_the_emulator_does_not_enforce_if_absent_between_two_open_writers(
    gcs_spark: SparkSession, gcs_emulator: RunningGcs
) -> None:
    """Pinned limitation: fake-gcs-server ignores ifGenerationMatch=0, so two writers that both passed
    the connector's existence check both succeed and the last one wins. Real GCS refuses the second
    (412). Hence one writer per table, and no concurrency claim proven on the emulator."""
    uri = gcs_emulator.root(f"{fresh_prefix()}/race.json")
    path, fs = _hadoop_fs(gcs_spark, uri)
    first, second = fs.create(path, False), fs.create(path, False)
    first.write(b"first")
    second.write(b"second")
    first.close()
    second.close()
    assert [r.value for r in gcs_spark.read.text(uri).collect()] == ["second"]


def test_silver_and_gold_build_from_gs_bronze_and_the_sql_server_reads_them(
    gcs_spark: SparkSession, gcs_emulator: RunningGcs, settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.serving_support import pyhive_rows, running_thrift_server
    from tests.test_batch_jobs import D1, D2, USER_EVENTS, _gold, _records, _silver

    prefix = fresh_prefix()
    lake = gcs_settings(settings, gcs_emulator, prefix)
    write_bronze(gcs_spark, lake, USER_EVENTS, _records())
    results = [run_silver(gcs_spark, lake, "user_events", day) for day in (D1, D2)]
    assert [(r.details["inserted"], r.details["duplicates_in_silver"]) for r in results] == [(2, 0), (2, 1)]
    # Four distinct events: A2's D2 copy is a duplicate of its D1 copy.
    assert sorted((r.event_id, r.ingestion_date) for r in _silver(gcs_spark, lake)) == [
        (str(UUID(int=1001)), D1), (str(UUID(int=1002)), D1), (str(UUID(int=1003)), D2), (str(UUID(int=1004)), D2)
    ]
    run_gold(gcs_spark, lake, "user_events", [D1, D2])
    conversion = [(r.event_date, r.dau_count, r.purchasing_users) for r in _gold(gcs_spark, lake, "conversion_rate_daily")]
    assert conversion == [(D1, 1, 1), (D2, 1, 0)]
    assert f"{prefix}/gold/conversion_rate_daily/_delta_log/00000000000000000000.json" in gcs_emulator.objects(prefix + "/")

    with running_thrift_server(gcs_env(settings_env, gcs_emulator, prefix), tmp_path / "serve") as server:
        served = pyhive_rows(server, "SELECT event_date, dau_count, purchasing_users FROM gold.conversion_rate_daily "
                                     "ORDER BY event_date")
        assert served == [(d.isoformat(), dau, buyers) for d, dau, buyers in conversion]  # PyHive: dates as text
        assert pyhive_rows(server, "SELECT count(*) FROM silver.user_events") == [(4,)]
