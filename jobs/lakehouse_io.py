"""Reads and writes of the lakehouse and Kafka, shared by every job (never copied per job)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from conf.settings import BronzeSettings, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreUnavailableError(RuntimeError):
    """A write kept failing after every retry; the batch is not committed."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint is behind what the Delta table says this app id already wrote."""


class KafkaDataLossError(RuntimeError):
    """Offsets a batch needs are gone from Kafka (retention, a deleted topic): no retry brings them back."""


# The start of the message of Spark's Kafka source when it cannot read offsets it was asked for and
# `failOnDataLoss` is true (KafkaExceptions, Spark 4.0).
_KAFKA_DATA_LOSS = "Some data may have been lost because they are not available in Kafka any more"


def kafka_source_options(settings: Settings, topic: str) -> dict[str, str]:
    return {
        "kafka.bootstrap.servers": settings.kafka.bootstrap,
        "subscribe": topic,
        "includeHeaders": "true",
        # Offsets gone from Kafka's retention are data loss: stop loudly unless told otherwise.
        "failOnDataLoss": str(settings.bronze.fail_on_data_loss).lower(),
    }


def read_kafka_batch(
    spark: SparkSession, settings: Settings, topic: str, starting: str = "earliest", ending: str = "latest"
) -> DataFrame:
    """A bounded read of a topic between two offset specs (Spark's JSON offset format or keywords)."""
    return (
        spark.read.format("kafka")
        .options(**kafka_source_options(settings, topic))
        .option("startingOffsets", starting)
        .option("endingOffsets", ending)
        .load()
    )


def append_delta_idempotent(
    df: DataFrame, path: str, app_id: str, version: int, partition_by: list[str] | None = None
) -> None:
    """Append once per (app_id, version): Delta skips a write it has already committed for them."""
    writer = df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def ensure_delta_table(
    spark: SparkSession, path: str, schema: StructType, partition_by: list[str], properties: dict[str, str]
) -> None:
    """Create the table with an explicit schema and properties unless it exists (idempotent)."""
    from delta.tables import DeltaTable

    if delta_table_exists(spark, path):
        return
    # Delta compares the location with its own normalised form (`file:/x` for `file:///x`).
    hadoop_path, fs = _hadoop_path(spark, path)
    builder = DeltaTable.create(spark).location(fs.makeQualified(hadoop_path).toString()).addColumns(schema).partitionedBy(*partition_by)
    for key, value in properties.items():
        builder = builder.property(key, value)
    builder.execute()


def with_retries(action: Callable[[], T], what: str, policy: BronzeSettings, context: dict) -> T:
    """Run `action`, retrying failures with bounded exponential backoff; then raise loudly.

    Records gone from Kafka are not retried: they stay gone, and the operator must decide (runbook).
    """
    delay = policy.retry_backoff_s
    for attempt in range(1, policy.write_attempts + 1):
        try:
            return action()
        except Exception as exc:  # storage and Kafka errors arrive as many types; the last one is raised
            if _KAFKA_DATA_LOSS in str(exc):
                raise KafkaDataLossError(
                    f"{what} stopped: offsets it needs are no longer in Kafka ({_data_loss_reason(exc)}); Kafka's "
                    "retention or a deleted topic removed them, and retrying cannot bring them back. "
                    "See docs/runbook.md, 'Offsets fell out of retention' (setting bronze.fail_on_data_loss)"
                ) from exc
            if attempt == policy.write_attempts:
                raise StoreUnavailableError(f"{what} failed {attempt} times, giving up: {error_headline(exc)[:500]}") from exc
            log.warning(
                "write failed, retrying",
                extra={**context, "what": what, "attempt": attempt, "retry_in_s": delay, "error": error_headline(exc)[:300]},
            )
            time.sleep(delay)
            delay = min(delay * 2, policy.retry_backoff_max_s)
    raise AssertionError("unreachable")


def error_headline(exc: BaseException) -> str:
    """The line of an error that says what went wrong.

    Spark reports an exception raised in Python (a worker, or a foreachBatch function) as its own
    wrapper text first ("An exception was thrown from the Python worker..."), then the traceback,
    which ends with the exception itself: that line is the headline. Any other error: its first line.
    """
    lines = str(exc).splitlines()
    tracebacks = [i for i, line in enumerate(lines) if line.endswith("Traceback (most recent call last):")]
    if tracebacks:  # the last one: a chained error's final exception
        raised = [line for line in lines[tracebacks[-1] + 1:] if line and not line[0].isspace()]
        if raised:
            return raised[0]
    # A JVM error reached through py4j: "An error occurred while calling o123.save." says only which
    # call failed; the Java exception and its message follow, on the line after.
    if len(lines) > 1 and lines[0].startswith("An error occurred while calling ") and lines[1].startswith(": "):
        return lines[1].removeprefix(": ").strip()
    return next((line.strip() for line in lines if line.strip()), type(exc).__name__)


def _data_loss_reason(exc: BaseException) -> str:
    """Which offsets Spark's Kafka source could not read: its "Reason: ..." line, or the headline."""
    for line in str(exc).splitlines():
        if line.startswith("Reason: "):
            return line.removeprefix("Reason: ").strip()
    return error_headline(exc)


def _hadoop_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def delta_table_exists(spark: SparkSession, path: str) -> bool:
    log_path, fs = _hadoop_path(spark, f"{path}/_delta_log")
    return bool(fs.exists(log_path))


def delta_version(spark: SparkSession, path: str) -> int:
    jvm = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return int(delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty()).version())


def delta_txn_version(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The last txnVersion committed to the table by `app_id`, or None."""
    if not delta_table_exists(spark, path):
        return None
    jvm = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    snapshot = delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty())
    found = snapshot.transactions().get(app_id)
    return int(found.get()) if found.isDefined() else None


def last_committed_batch(spark: SparkSession, checkpoint: str) -> int | None:
    """The highest batch id in a streaming checkpoint's commit log, or None if it has none."""
    commits, fs = _hadoop_path(spark, f"{checkpoint}/commits")
    if not fs.exists(commits):
        return None
    ids = [int(s.getPath().getName()) for s in fs.listStatus(commits) if s.getPath().getName().isdigit()]
    return max(ids) if ids else None


def committed_offsets(spark: SparkSession, checkpoint: str, topic: str) -> dict[int, int] | None:
    """The end offsets per partition of `topic` of the last batch a streaming checkpoint committed
    (the next offset it will read), or None when it has committed none."""
    batch = last_committed_batch(spark, checkpoint)
    if batch is None:
        return None
    lines = (read_text(spark, f"{checkpoint}/offsets/{batch}") or "").splitlines()
    # Spark's offset log: a version line, the batch's metadata, then one JSON line per source.
    for source in lines[2:]:
        offsets = json.loads(source) if source.startswith("{") else {}
        if topic in offsets:
            return {int(partition): int(offset) for partition, offset in offsets[topic].items()}
    return None


def check_checkpoint_matches_table(spark: SparkSession, checkpoint: str, table: str, app_id: str) -> None:
    """Refuse to start when the checkpoint is behind the table for this app id.

    After a crash the checkpoint may trail Delta by one batch (written, not yet committed); that
    batch is replayed and Delta skips it. Any larger gap means the checkpoint was reset or replaced:
    new batch ids would be <= the table's txnVersion and Delta would silently skip real data.
    """
    written = delta_txn_version(spark, table, app_id)
    committed = last_committed_batch(spark, checkpoint)
    if written is not None and (committed is None or committed < written - 1):
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint} has last committed batch {committed}, but table {table} already holds "
            f"batch {written} from app id {app_id!r}. A reset checkpoint needs a new app id "
            f"(setting bronze.app_ids); see docs/runbook.md"
        )


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a Spark SQL setting for the block only, then restore what it was."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write (or overwrite) a small text file at a storage URI, through Hadoop's file systems."""
    path, fs = _hadoop_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, uri: str) -> str | None:
    """The text of a small file at a storage URI, or None when there is none."""
    path, fs = _hadoop_path(spark, uri)
    if not fs.exists(path):
        return None
    jvm = spark.sparkContext._jvm
    stream = fs.open(path)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
    finally:
        stream.close()


def copy_local_tree(spark: SparkSession, local_dir: str, uri: str) -> None:
    """Copy a local folder's files to a storage URI (overwriting), through Hadoop's file systems."""
    jvm = spark.sparkContext._jvm
    target, fs = _hadoop_path(spark, uri)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(f"file://{local_dir}"), target)
