"""`make demo`: the round trip Kafka -> Spark -> Delta on the embedded defaults.

Starts the local broker (unless one already runs), applies topics, produces synthetic events,
reads them back with Spark's Kafka source into Delta, prints offsets and row counts per topic and
partition, and stops what it started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from conf.settings import Settings
from contracts import DATASETS
from streamlake import synthetic
from streamlake.kafka_broker import LocalBroker
from streamlake.kafka_inspect import partition_offsets
from streamlake.producing import produce_events
from streamlake.topics import apply_topics, declared_topics

DEMO_PRODUCER = "streamlake-demo"


@dataclass(frozen=True)
class DatasetSummary:
    dataset: str
    produced: int
    offsets_by_partition: dict[int, tuple[int, int]]
    delta_rows_by_partition: dict[int, int]
    delta_path: str

    @property
    def topic_messages(self) -> int:
        return sum(high - low for low, high in self.offsets_by_partition.values())

    @property
    def delta_rows(self) -> int:
        return sum(self.delta_rows_by_partition.values())


def run_demo(settings: Settings, events_per_dataset: int, echo: Callable[[str], None] = print) -> list[DatasetSummary]:
    broker = LocalBroker.from_settings(settings)
    uses_local_broker = settings.kafka.bootstrap_servers is None
    started_here = uses_local_broker and broker.status().pid is None
    try:
        if uses_local_broker:
            echo(f"starting kafka broker at {broker.bootstrap} ..." if started_here else f"kafka broker already up at {broker.bootstrap}")
            broker.start()
        for result in apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings)):
            echo(f"  topic {result}")
        for dataset in DATASETS:
            count = produce_events(settings, dataset, synthetic.events(dataset, events_per_dataset), DEMO_PRODUCER)
            echo(f"produced {count} {dataset} events (idempotent producer, acks=all)")
        summaries = _load_into_delta(settings, events_per_dataset, echo)
    finally:
        if started_here:
            echo("stopping the kafka broker this demo started")
            broker.stop()
    return summaries


def _load_into_delta(settings: Settings, produced: int, echo: Callable[[str], None]) -> list[DatasetSummary]:
    # Imported here so that `streamlake kafka ...` and `topics ...` never pay for starting Spark.
    from pyspark.sql import functions as F

    from jobs.raw_snapshot import snapshot_raw_topic
    from jobs.spark_session import build_spark_session

    echo("reading the raw topics back with Spark's Kafka source into Delta ...")
    spark = build_spark_session(settings, "streamlake-demo")
    summaries = []
    try:
        for dataset, contract in DATASETS.items():
            path = snapshot_raw_topic(spark, settings, dataset)
            counts = spark.read.format("delta").load(path).groupBy("partition").agg(F.count("*").alias("rows")).collect()
            offsets = {o.partition: (o.low, o.high) for o in partition_offsets(settings, contract.raw_topic)}
            summaries.append(
                DatasetSummary(dataset, produced, offsets, {r["partition"]: r["rows"] for r in counts}, path)
            )
    finally:
        spark.stop()
    for summary in summaries:
        echo(format_summary(summary))
    return summaries


def format_summary(summary: DatasetSummary) -> str:
    topic = DATASETS[summary.dataset].raw_topic
    lines = [f"{topic}: {summary.topic_messages} messages in Kafka, {summary.delta_rows} rows in Delta {summary.delta_path}"]
    for partition, (low, high) in sorted(summary.offsets_by_partition.items()):
        rows = summary.delta_rows_by_partition.get(partition, 0)
        lines.append(f"  partition {partition}: offsets [{low}, {high}) -> {rows} Delta rows")
    return "\n".join(lines)
