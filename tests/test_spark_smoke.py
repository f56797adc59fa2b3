"""Smoke: the session's Spark writes and reads Delta, and reads Kafka with headers (real jars)."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Producer
from pyspark.sql import Row, SparkSession

from conf.settings import Settings
from jobs.lakehouse_io import append_delta_idempotent, read_kafka_batch


def test_delta_round_trip_exact_rows(spark: SparkSession, tmp_path) -> None:
    path = (tmp_path / "people").as_uri()
    rows = [Row(id=1, name="ada"), Row(id=2, name=None), Row(id=3, name="grace")]
    spark.createDataFrame(rows, "id INT, name STRING").write.format("delta").save(path)
    assert sorted(spark.read.format("delta").load(path).collect()) == rows


def test_idempotent_append_commits_a_batch_once(spark: SparkSession, tmp_path) -> None:
    path = (tmp_path / "events").as_uri()
    batch = spark.createDataFrame([Row(id=1), Row(id=2)], "id INT")
    append_delta_idempotent(batch, path, app_id="test-app", version=0)
    append_delta_idempotent(batch, path, app_id="test-app", version=0)  # a retried batch 0
    append_delta_idempotent(batch, path, app_id="test-app", version=1)
    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == [1, 1, 2, 2]


def test_kafka_source_reads_key_value_headers_and_partition(spark: SparkSession, settings: Settings, new_topic) -> None:
    topic = new_topic(partitions=3)
    produced_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    producer = Producer(settings.kafka.producer_config(client_id="smoke"))
    producer.produce(
        topic,
        key=b"user-1",
        value=b'{"hello": "lake"}',
        partition=2,
        headers=[("trace", b"abc"), ("trace", b"def")],
        timestamp=int(produced_at.timestamp() * 1000),
    )
    assert producer.flush(30) == 0

    [row] = read_kafka_batch(spark, settings, topic).collect()
    assert (row.key, row.value, row.topic, row.partition, row.offset, row.timestamp) == (
        b"user-1",
        b'{"hello": "lake"}',
        topic,
        2,
        0,
        produced_at.replace(tzinfo=None),
    )
    assert [(h.key, h.value) for h in row.headers] == [("trace", b"abc"), ("trace", b"def")]


def _zip_directory_kept(batches):
    """In a Python worker: does `invalidate_caches()` leave a zip importer's directory as it was?"""
    import importlib
    import shutil
    import sys
    import tempfile
    import zipfile
    from pathlib import Path

    import pyarrow as pa

    folder = Path(tempfile.mkdtemp())
    archive = folder / "probe.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("streamlake_zip_probe.py", "")
    sys.path.append(str(archive))
    try:
        importlib.import_module("streamlake_zip_probe")
        importer = sys.path_importer_cache[str(archive)]
        before = importer._files
        importlib.invalidate_caches()  # what PySpark calls before every task
        kept = importer._files is before
    finally:
        sys.path.remove(str(archive))
        sys.modules.pop("streamlake_zip_probe", None)
        shutil.rmtree(folder)
    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"kept": [kept], "python": [f"{sys.version_info[0]}.{sys.version_info[1]}"]})


def test_python_workers_do_not_reread_the_zips_on_their_path_before_each_task(spark: SparkSession) -> None:
    # The workers start from `jobs.python_daemon`: on Python 3.11 an importer left to
    # invalidate_caches() re-reads its whole zip (pyspark.zip, spark-core's jar) for every task.
    [row] = spark.range(1, numPartitions=1).mapInArrow(_zip_directory_kept, "kept boolean, python string").collect()
    assert (row.kept, row.python) == (True, "3.11")


def _preload_seen_by_a_task(batches):
    """In a Python worker: which of the daemon's modules were there before this task, and how many
    objects the daemon froze out of the per-task collections."""
    import gc
    import sys

    import pyarrow as pa

    from jobs.python_daemon import WORKER_MODULES

    for _ in batches:
        pass
    missing = [name for name in WORKER_MODULES if name not in sys.modules]
    yield pa.RecordBatch.from_pydict({"missing": [",".join(missing)], "frozen": [gc.get_freeze_count()]})


def test_python_workers_start_with_their_modules_imported_and_frozen(spark: SparkSession) -> None:
    # The daemon imports the tasks' modules before it forks a worker and freezes them: a worker's
    # first task does not pay for the imports, and the full collection PySpark runs after every
    # task does not walk them. Nothing in this test's module imports them.
    [row] = spark.range(1, numPartitions=1).mapInArrow(_preload_seen_by_a_task, "missing string, frozen long").collect()
    assert row.missing == ""
    assert row.frozen > 50_000  # PySpark, pandas, pyarrow, pydantic, the contracts: ~90k objects
