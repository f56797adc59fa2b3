"""`make demo`: the main job, Kafka -> Bronze Delta + DLQ, on the embedded defaults.

Starts the local broker (unless one already runs), applies topics, produces synthetic events and a
few poison pills (as a producer writing straight to Kafka could), runs the Bronze job over what is
in Kafka (the same query as `streamlake stream bronze`, stopping once caught up), and reconciles:
each raw topic partition's offsets against the Bronze rows and the DLQ records from it. It stops
what it started.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conf.settings import Settings
from contracts import DATASETS
from contracts.envelope import wrap
from contracts.registry import DatasetContract
from streamlake import synthetic
from streamlake.kafka_broker import LocalBroker
from streamlake.kafka_inspect import partition_offsets
from streamlake.producing import produce_events
from streamlake.topics import apply_topics, declared_topics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DEMO_PRODUCER = "streamlake-demo"


@dataclass(frozen=True)
class PartitionLanding:
    """Where one raw partition's records landed: Bronze rows, DLQ records (deduplicated by source
    offset: a DLQ record may repeat after a crash), and the offsets the two cover together."""

    bronze_rows: int
    dlq_records: int
    distinct_offsets: int
    lowest_offset: int
    highest_offset: int


@dataclass(frozen=True)
class DatasetSummary:
    dataset: str
    offsets_by_partition: dict[int, tuple[int, int]]
    landed_by_partition: dict[int, PartitionLanding]
    dlq_reasons: dict[str, int]
    bronze_path: str

    @property
    def topic_messages(self) -> int:
        return sum(high - low for low, high in self.offsets_by_partition.values())

    @property
    def reconciled(self) -> bool:
        """Every raw offset is in Bronze or in the DLQ, once, and nothing else is: as many records
        as offsets, all distinct, all inside the partition's range."""
        if not set(self.landed_by_partition) <= set(self.offsets_by_partition):
            return False
        for partition, (low, high) in self.offsets_by_partition.items():
            landed = self.landed_by_partition.get(partition)
            if landed is None:
                if high > low:
                    return False
                continue
            if not (landed.bronze_rows + landed.dlq_records == landed.distinct_offsets == high - low
                    and low <= landed.lowest_offset and landed.highest_offset < high):
                return False
        return True


def poison_pills(contract: DatasetContract, seed: int = 5) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) of records the API would refuse but a direct producer can still send."""
    event = next(iter(synthetic.events(contract.name, 1, seed=seed)))
    key, value, _ = wrap(contract, event, DEMO_PRODUCER)
    document = json.loads(value)
    wrong_type = {**document, "payload": {**document["payload"], contract.business_key: [1]}}
    newer = {**document, "schema_version": "99"}
    return [
        ("malformed JSON", key, value[: len(value) // 2]),
        (f"{contract.business_key} of the wrong type", key, json.dumps(wrong_type).encode()),
        ("an unknown schema_version", key, json.dumps(newer).encode()),
    ]


def produce_poison_pills(settings: Settings, contract: DatasetContract) -> list[str]:
    producer = Producer(settings.kafka.producer_config(client_id=DEMO_PRODUCER))
    pills = poison_pills(contract)
    for _, key, value in pills:
        producer.produce(contract.raw_topic, key=key, value=value)
    if producer.flush(60):
        raise RuntimeError(f"poison pills not acknowledged by {contract.raw_topic}")
    return [kind for kind, _, _ in pills]


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
        for dataset, contract in DATASETS.items():
            count = produce_events(settings, dataset, synthetic.events(dataset, events_per_dataset), DEMO_PRODUCER)
            echo(f"produced {count} {dataset} events (idempotent producer, acks=all)")
            kinds = produce_poison_pills(settings, contract)
            echo(f"produced {len(kinds)} poison pills straight to {contract.raw_topic}: {', '.join(kinds)}")
        summaries = _run_bronze(settings, echo)
    finally:
        if started_here:
            echo("stopping the kafka broker this demo started")
            broker.stop()
    return summaries


def still_in_kafka(landed_df: DataFrame, offsets: dict[int, tuple[int, int]]) -> DataFrame:
    """The rows of `landed_df` (`partition`, `offset` of a raw record) whose offset Kafka still holds.

    Retention deletes a raw topic's oldest records, while Bronze and the DLQ (kept longer) keep what
    came of them: those offsets are no longer in the topic, so they are out of its reconciliation.
    Rows of a partition Kafka does not list stay in, and fail it.
    """
    from pyspark.sql import functions as F

    low = F.coalesce(*[F.when(F.col("partition") == p, F.lit(first)) for p, (first, _) in offsets.items()], F.lit(0))
    return landed_df.filter(F.col("offset") >= low)


def _run_bronze(settings: Settings, echo: Callable[[str], None]) -> list[DatasetSummary]:
    # Imported here so that `streamlake kafka ...` and `topics ...` never pay for starting Spark.
    from pyspark.sql import functions as F

    from jobs.bronze_stream import start_bronze_query
    from jobs.lakehouse_io import read_kafka_batch
    from jobs.spark_session import build_spark_session
    from pipelines.bronze import dlq_header

    spark = build_spark_session(settings, "streamlake-demo")
    summaries = []
    try:
        for dataset, contract in DATASETS.items():
            echo(f"running the Bronze job over {contract.raw_topic} until it has caught up ...")
            query = start_bronze_query(spark, settings, dataset, available_now=True)
            query.awaitTermination()
            if query.exception() is not None:
                raise RuntimeError(f"the Bronze job for {dataset} failed: {query.exception()}")
            bronze_path = settings.lakehouse.table_uri("bronze", dataset)
            offsets = {o.partition: (o.low, o.high) for o in partition_offsets(settings, contract.raw_topic)}
            bronze_df = spark.read.format("delta").load(bronze_path).select(
                F.col("kafka_partition").alias("partition"), F.col("kafka_offset").alias("offset"), F.lit("bronze").alias("landed_in")
            ).transform(still_in_kafka, offsets)
            dlq_df = (
                read_kafka_batch(spark, settings, contract.dlq_topic)
                .select(dlq_header("source.topic").alias("topic"), dlq_header("source.partition").cast("int").alias("partition"),
                        dlq_header("source.offset").cast("long").alias("offset"), dlq_header("error.class").alias("error_class"))
                .filter(F.col("topic") == contract.raw_topic)
                .transform(still_in_kafka, offsets)
                .dropDuplicates(["partition", "offset"])
                .cache()  # read from Kafka once, for the reconciliation and the reasons alike
            )
            landed = (
                bronze_df.unionByName(dlq_df.select("partition", "offset", F.lit("dlq").alias("landed_in")))
                .groupBy("partition")
                .agg(F.count_if(F.col("landed_in") == "bronze").alias("bronze_rows"),
                     F.count_if(F.col("landed_in") == "dlq").alias("dlq_records"),
                     F.count_distinct("offset").alias("distinct_offsets"),
                     F.min("offset").alias("lowest_offset"), F.max("offset").alias("highest_offset"))
                .collect()
            )
            reasons = {r["error_class"]: r["count"] for r in dlq_df.groupBy("error_class").count().collect()}
            dlq_df.unpersist()
            summaries.append(DatasetSummary(
                dataset, offsets,
                {r["partition"]: PartitionLanding(**{k: v for k, v in r.asDict().items() if k != "partition"}) for r in landed},
                dict(sorted(reasons.items())), bronze_path,
            ))
    finally:
        spark.stop()
    for summary in summaries:
        echo(format_summary(summary))
    return summaries


def format_summary(summary: DatasetSummary) -> str:
    contract = DATASETS[summary.dataset]
    bronze_rows = sum(landed.bronze_rows for landed in summary.landed_by_partition.values())
    dlq_records = sum(landed.dlq_records for landed in summary.landed_by_partition.values())
    lines = [
        f"{contract.raw_topic}: {summary.topic_messages} messages in Kafka -> {bronze_rows} Bronze rows "
        f"({summary.bronze_path}) + {dlq_records} DLQ records ({contract.dlq_topic})"
    ]
    for partition, (low, high) in sorted(summary.offsets_by_partition.items()):
        landed = summary.landed_by_partition.get(partition, PartitionLanding(0, 0, 0, low, low))
        lines.append(f"  partition {partition}: offsets [{low}, {high}) -> {landed.bronze_rows} Bronze rows + "
                     f"{landed.dlq_records} DLQ records")
    reasons = ", ".join(f"{error_class} {n}" for error_class, n in summary.dlq_reasons.items()) or "none"
    lines.append(f"  DLQ reasons: {reasons}")
    return "\n".join(lines)
